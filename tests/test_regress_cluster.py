"""``make regress`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on localhost, and ``python -m sim.regress --scheduler`` sending them work;
and the pieces under it: the batch plan, the log's resume, the shared build.

Kept cheap for ``make test``: one tiny config on Icarus (seed 176: 3 tokens, head_dim
2, a build of a few seconds, reused across runs of the same checkout) and one or two
heads a task.
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sim.regress import plan
from sim.regress_log import Batch, read_done
from sim.runner import ROOT, build_dir_for, build_once

SEED = 176
DASK = Path(sys.executable).parent / "dask"
STARTUP_SECONDS = 60


class Cluster:
    """A scheduler and named workers, each a process group of its own."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.processes: dict[str, subprocess.Popen] = {}
        # the workers run cocotb, whose runner acts differently under pytest
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}

    def start(self, name: str, *args: str) -> None:
        with open(self.directory / f"{name}.log", "w") as log:
            self.processes[name] = subprocess.Popen(
                [str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                env=self.env, start_new_session=True)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}"
                         for path in sorted(self.directory.glob("*.log")))

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        """Signal ``name``'s whole process group: the nanny, its worker, their simulators."""
        try:
            os.killpg(self.processes[name].pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in sorted(self.processes, key=lambda n: n == "scheduler"):  # workers first
            self.kill(name, signal.SIGTERM)
            try:
                self.processes[name].wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.kill(name)                     # whatever of the group is left
            self.processes[name].wait()


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and workers ``w0`` and ``w1``, connected; ``cluster.addresses`` maps
    names to worker addresses. Every process is stopped afterwards, also on failure."""
    from distributed import Client

    cluster = Cluster(tmp_path)
    try:
        # the timeouts end a cluster whose test process died before it could stop it
        cluster.start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                      "--no-dashboard", "--scheduler-file", str(cluster.scheduler_file),
                      "--idle-timeout", "300")
        for name in ("w0", "w1"):
            cluster.start(name, "worker", "--scheduler-file", str(cluster.scheduler_file),
                          "--nworkers", "1", "--nthreads", "1", "--name", name,
                          "--no-dashboard", "--local-directory", str(tmp_path / name),
                          "--death-timeout", "60")
        deadline = time.monotonic() + STARTUP_SECONDS
        while not cluster.scheduler_file.exists():
            assert time.monotonic() < deadline, f"no scheduler\n{cluster.logs()}"
            time.sleep(0.1)
        with Client(scheduler_file=str(cluster.scheduler_file), timeout=STARTUP_SECONDS) as client:
            try:
                client.wait_for_workers(2, timeout=STARTUP_SECONDS)
            except TimeoutError:
                pytest.fail(f"the workers did not connect\n{cluster.logs()}")
            cluster.address = client.scheduler.address
            cluster.addresses = {w["name"]: address
                                 for address, w in client.scheduler_info()["workers"].items()}
        yield cluster
    finally:
        cluster.stop()


def _regress(cluster, log: Path, heads: int, batch: int, resume=False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sim.regress", "--scheduler", cluster.address, "--sim", "icarus",
         "--first-seed", str(SEED), "--configs", "1", "--heads", str(heads),
         "--batch", str(batch), "--log", str(log), *(["--resume"] if resume else [])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(log: Path) -> list[dict]:
    """The log's complete lines (the client may be writing the next one)."""
    return [json.loads(line) for line in log.read_text().split("\n")[:-1]]


def test_plan_batches_every_head_once():
    batches = plan(range(7, 9), heads=5, batch=2, first_head=10)
    assert batches[:2] == [Batch(7, 0, 10, 2), Batch(8, 0, 10, 2)]   # first batches first
    for seed in (7, 8):
        mine = [b for b in batches if b.seed == seed]
        assert [(b.first_head, b.heads) for b in mine] == [(10, 2), (12, 2), (14, 1)]


def test_resume_skips_only_done_tasks(tmp_path):
    log = tmp_path / "log.jsonl"
    line = {"seed": 1, "batch": 0, "first_head": 0, "heads": 2, "sim": "icarus"}
    log.write_text(json.dumps({**line, "done": True, "passed": False}) + "\n"
                   + json.dumps({**line, "first_head": 2, "done": False}) + "\n"
                   + '{"seed": 1, "batch": 1, "first_he')          # cut short by an interrupt
    assert list(read_done(log)) == [Batch(1, 0, 0, 2).key("icarus")]
    assert read_done(tmp_path / "missing.jsonl") == {}


@pytest.mark.sim
def test_build_once_waits_for_the_lock_then_reuses_the_build():
    from tb.infra_passthrough import Passthrough

    name = f"build-once-test-{uuid.uuid4().hex[:8]}"
    build = dict(component=Passthrough, toplevel="passthrough", simulator="icarus", name=name)
    lock = build_dir_for(name, "icarus").parent / "icarus.lock"
    lock.parent.mkdir(parents=True)
    try:
        with open(lock, "w") as held, ThreadPoolExecutor(1) as pool:
            fcntl.flock(held, fcntl.LOCK_EX)       # another process building this config
            first = pool.submit(build_once, **build)
            time.sleep(1)
            assert not first.done() and not build_dir_for(name, "icarus").exists()
            fcntl.flock(held, fcntl.LOCK_UN)
            build_dir = first.result(timeout=120)
        assert (build_dir / "sim.vvp").exists()
        mark = build_dir / "mark"                  # gone when the directory is built again
        mark.touch()
        assert build_once(**build) == build_dir and mark.exists()
        (build_dir / "build.done").unlink()        # as if the build had been cut short
        build_once(**build)
        assert not mark.exists() and (build_dir / "sim.vvp").exists()
    finally:
        shutil.rmtree(lock.parent)


@pytest.mark.sim
@pytest.mark.slow
def test_batches_run_on_both_workers(cluster, tmp_path):
    log = tmp_path / "log.jsonl"
    run = _regress(cluster, log, heads=4, batch=2)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, f"{out}\n{cluster.logs()}"
    records = _records(log)
    assert [(r["first_head"], r["heads"]) for r in sorted(records, key=lambda r: r["batch"])] \
        == [(0, 2), (2, 2)]
    assert all(r["done"] and r["passed"] and r["seed"] == SEED for r in records), out
    assert {r["worker"] for r in records} == set(cluster.addresses.values()), out
    assert "all 1 configs x 4 heads = 4 heads match the golden model" in out

    again = _regress(cluster, log, heads=4, batch=2, resume=True)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "2 done in" in out, out
    assert len(_records(log)) == len(records)          # nothing run, nothing logged again


@pytest.mark.sim
@pytest.mark.slow
def test_a_lost_worker_loses_no_batch(cluster, tmp_path):
    """A worker killed while the run goes on: the scheduler gives its batch to the other
    worker, and the client, which alone writes the log, records every batch once."""
    log = tmp_path / "log.jsonl"
    tasks = 4
    run = _regress(cluster, log, heads=tasks, batch=1)
    try:
        deadline = time.monotonic() + 240
        while not (log.exists() and _records(log)):
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, f"no result\n{cluster.logs()}"
            time.sleep(0.1)
        first = _records(log)[0]
        # the other worker: busy with its first batch (or waiting on the build)
        victim = next(n for n, a in cluster.addresses.items() if a != first["worker"])
        cluster.kill(victim)
        assert len(_records(log)) < tasks, "the run ended before a worker could be killed"
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, f"{out}\n{cluster.logs()}"
    records = _records(log)
    assert sorted(r["first_head"] for r in records) == list(range(tasks)), out
    assert all(r["done"] and r["passed"] and r["heads"] == 1 for r in records), out
    assert sum(r["heads"] for r in records) == tasks
    assert f"all 1 configs x {tasks} heads = {tasks} heads match the golden model" in out
