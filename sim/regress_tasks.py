"""One task of the random-config regression, as a Dask worker runs it (``sim.regress``).

A task is a batch of heads of one seed's config (``tb/cocotb_regress.py``). The worker
builds the config's simulator once, into a directory named by the config's hash and
the checkout (:func:`checkout_id`), and every later batch of that config on the same
machine (or shared file system) runs on that build. The batch's functional coverage
(:mod:`sim.coverage`) comes back in its result.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

from sim.runner import BUILD_ROOT, ROOT

__all__ = ["TOPLEVEL", "SOURCE_DIRS", "CheckoutMismatch", "checkout_id", "build_name",
           "run_dir_for", "run_batch"]

TOPLEVEL = "hdp_coprocessor"
#: What a batch's result depends on: the generator, the golden model, the testbench and
#: this regression (docs and tests may change without a rebuild).
SOURCE_DIRS = ("hdp_rtl", "golden", "tb", "sim")


class CheckoutMismatch(RuntimeError):
    """A worker's checkout is not the client's: its results would not be the client's."""


def checkout_id() -> str:
    """What the tests are built and run from: the short commit, and when
    :data:`SOURCE_DIRS` have changes, ``-dirty-`` and a hash of them (the diff to the
    commit and the untracked files), so that a build is never reused across edits.
    Without git, a hash of their Python files."""
    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(ROOT), *args], check=True,
                              capture_output=True).stdout

    try:
        commit = git("rev-parse", "--short=10", "HEAD").decode().strip()
        diff = git("diff", "HEAD", "--binary", "--", *SOURCE_DIRS)
        untracked = git("ls-files", "--others", "--exclude-standard", "-z", "--",
                        *SOURCE_DIRS).split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return "nogit-" + _hash_files(sorted(path for package in SOURCE_DIRS
                                              for path in (ROOT / package).rglob("*.py")))
    untracked = sorted(ROOT / name.decode() for name in untracked if name)
    if not diff and not untracked:
        return commit
    return f"{commit}-dirty-{_hash_files(untracked, diff)}"


def _hash_files(paths, prefix: bytes = b"") -> str:
    h = hashlib.sha256(prefix)
    for path in paths:
        if path.is_file():
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def build_name(config, checkout: str) -> str:
    """The build directory's name under ``build/sim`` for ``config`` at ``checkout``."""
    return f"regress-{config.digest()}-{checkout}"


def run_dir_for(config, checkout: str, simulator: str, first_head: int, heads: int) -> Path:
    """Where one batch's results and simulator log go: beside its build, one per batch."""
    return (BUILD_ROOT / build_name(config, checkout) / f"{simulator}-runs"
            / f"heads-{first_head}-{first_head + heads - 1}")


def run_batch(seed: int, first_head: int, heads: int, simulator: str, checkout: str,
              want=()) -> dict:
    """Run heads ``first_head`` .. ``first_head + heads - 1`` of ``seed``'s config.

    Parameters
    ----------
    seed : int
        Names the config (``sim.random_configs.random_config``) and seeds the heads.
    first_head, heads : int
        The batch: ``tb/cocotb_regress.py``'s ``HDP_FIRST_HEAD`` and ``HDP_HEADS``.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    checkout : str
        The client's :func:`checkout_id`, which this worker's must equal.
    want : sequence of str
        Bins of :mod:`sim.coverage` to steer the heads toward (``HDP_WANT``).

    Returns
    -------
    dict
        ``passed``; ``failure``, the first failed check (it names the head) or why the
        build failed; ``seconds`` in all and ``build_seconds`` (near 0 for a build that
        was there); ``worker``, this worker's address; ``run_dir``, where the batch's
        results and simulator log are; ``want``; ``coverage``, the counts of the heads
        checked (:meth:`sim.coverage.Coverage.to_dict`; empty when none ran).

    Raises
    ------
    CheckoutMismatch
        When this worker runs another checkout than the client.
    """
    from sim.random_configs import random_config
    from sim.runner import build_once, design_key, test_built

    start = time.perf_counter()
    here = checkout_id()
    if here != checkout:
        raise CheckoutMismatch(f"worker {_worker_address()} at {ROOT} runs checkout {here}, "
                               f"the client {checkout}")
    config = random_config(seed)
    run_dir = run_dir_for(config, checkout, simulator, first_head, heads)
    coverage_file = run_dir / "coverage.json"
    for stale in (run_dir / "results.xml", coverage_file):   # nothing stale if the build fails
        stale.unlink(missing_ok=True)
    build_seconds = 0.0
    try:
        from hdp_rtl.rtl.top import HDPCoprocessor      # a generator that fails to import fails
        build_dir = build_once(lambda: HDPCoprocessor(config), toplevel=TOPLEVEL,
                               simulator=simulator, name=build_name(config, checkout),
                               key=design_key("top", config))
        build_seconds = time.perf_counter() - start
        test_built(build_dir, toplevel=TOPLEVEL, test_module="cocotb_regress",
                   simulator=simulator, test_dir=run_dir,
                   env={"HDP_SEED": seed, "HDP_FIRST_HEAD": first_head, "HDP_HEADS": heads,
                        "HDP_WANT": list(want), "HDP_COVERAGE_OUT": str(coverage_file)})
        passed, why = True, ""
    except Exception as exc:  # noqa: BLE001 - a failed build or head is this batch's result
        passed = False
        why = (_failure(run_dir / "results.xml") or str(exc) or repr(exc)).splitlines()[0]
    return {"passed": passed, "failure": why, "seconds": time.perf_counter() - start,
            "build_seconds": build_seconds, "worker": _worker_address(),
            "run_dir": str(run_dir), "want": list(want), "coverage": _coverage(coverage_file)}


def _coverage(path: Path) -> dict:
    """The counts the batch wrote; {} when it wrote none (a failed build)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _failure(results: Path) -> str:
    """The first failure message in a cocotb results file: the host's check or hang
    message, which names the head (and, for a hang, the stage it hung in); "" when
    there is none."""
    try:
        failure = ElementTree.parse(results).find(".//failure")
    except (OSError, ElementTree.ParseError):
        return ""
    return "" if failure is None else failure.get("message", "")


def _worker_address() -> str:
    """This Dask worker's address; host and process id outside a worker."""
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
