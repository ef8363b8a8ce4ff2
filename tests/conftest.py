"""Fixtures shared by several test modules."""
import fcntl
import os

import pytest

from hdp_rtl.cli import main


def _run_dir(tmp_path_factory):
    """A directory of this pytest run that every xdist worker sees (each worker's base
    temporary directory is a child of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def edge_generated(tmp_path_factory):
    """The directory `hdp-rtl generate --preset edge` wrote; tests must not change it.

    It costs about 25 CPU seconds (a conversion and a Yosys run per unit), and tests on
    both xdist workers read it: the first worker generates it under a lock, the other
    waits for it and reads the same files."""
    run_dir = _run_dir(tmp_path_factory)
    out, done = run_dir / "edge-generated", run_dir / "edge-generated.done"
    with open(run_dir / "edge-generated.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            assert main(["generate", "--preset", "edge", "-o", str(out)]) == 0
            done.touch()
    return out
