"""Random-config regression (``make regress``), on a Dask cluster.

``python -m sim.regress [--configs 20] [--heads 50] [--batch 25] [--first-seed 100]
[--jobs 2 | --scheduler ADDRESS] [--sim verilator|icarus] [--log FILE] [--resume]``
builds one random valid config per seed (``sim.random_configs``) and runs ``--heads``
random heads with random registers on it against the golden model, under random idle
and back-pressure, through the host driver (:mod:`hdp_rtl.host`, in
``tb/cocotb_regress.py``). Each Dask task is one batch of ``--batch`` heads of one seed
(:mod:`sim.regress_tasks`); a worker builds a config once and runs its later batches on
that build. The work goes to an embedded ``LocalCluster`` of ``--jobs`` worker processes,
or with ``--scheduler`` to a running cluster (docs/verification.md).

Every result becomes a line of the JSON-lines ``--log`` (:mod:`sim.regress_log`) as it
arrives, with the command that reproduces it; ``--resume`` skips the tasks the log
records as done. Prints one line per task with, for a failure, the first failed check
(the head, and for a hang the stage it hung in); exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from pathlib import Path

from sim.regress_log import Batch, open_log, read_done, record

__all__ = ["plan", "main"]

DEFAULT_LOG = Path("build/regress/log.jsonl")


def plan(seeds, heads: int, batch: int, first_head: int = 0) -> list[Batch]:
    """Every seed's heads ``first_head`` .. ``first_head + heads - 1``, in batches of at
    most ``batch``; every seed's first batch comes before any second one, so that the
    workers start on different configs rather than wait on one config's build."""
    starts = range(first_head, first_head + heads, batch)
    return [Batch(seed, b, start, min(batch, first_head + heads - start))
            for b, start in enumerate(starts) for seed in seeds]


@contextlib.contextmanager
def _client(scheduler: str | None, jobs: int):
    """A Dask client of the cluster at ``scheduler``, else of an embedded one: ``jobs``
    worker processes of one thread (a batch is one simulator process)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.regress", description=__doc__.split("\n")[0])
    p.add_argument("--configs", type=int, default=20, help="seeds, each a random config")
    p.add_argument("--heads", type=int, default=50, help="heads per config")
    p.add_argument("--batch", type=int, default=25, help="heads per task")
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--first-head", type=int, default=0,
                   help="number of each config's first head (reproduces a later batch)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes of the embedded cluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://host:8786), not an embedded cluster")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--log", type=Path, default=DEFAULT_LOG,
                   help=f"JSON-lines log, started anew unless --resume (default {DEFAULT_LOG})")
    p.add_argument("--resume", action="store_true",
                   help="append to --log and skip the tasks it records as done")
    return p


def main(argv=None) -> int:
    from sim.random_configs import random_config
    from sim.regress_tasks import checkout_id

    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.configs, args.heads, args.batch, args.jobs) < 1 or args.first_head < 0:
        parser.error("--configs, --heads, --batch and --jobs must be positive, "
                     "--first-head not negative")
    seeds = range(args.first_seed, args.first_seed + args.configs)
    batches = plan(seeds, args.heads, args.batch, args.first_head)
    done = read_done(args.log) if args.resume else {}
    records = {b: done[b.key(args.sim)] for b in batches if b.key(args.sim) in done}
    todo = [b for b in batches if b not in records]
    checkout = checkout_id()
    print(f"{len(batches)} tasks ({args.configs} configs x {args.heads} heads, "
          f"batches of {args.batch}) at {checkout} on {args.sim}"
          + (f"; {len(records)} done in {args.log}" if records else "") + f"; log: {args.log}")
    elsewhere = sum(r["checkout"] != checkout for r in records.values())
    if elsewhere:
        print(f"note: {elsewhere} of the done tasks ran at another checkout")
    with open_log(args.log, args.resume) as log:
        if todo:
            configs = {s: random_config(s).to_dict() for s in seeds}
            with _client(args.scheduler, args.jobs) as client:
                records.update(_run(client, todo, args, checkout, configs, log))
    return _summary([records[b] for b in batches], args)


def _run(client, todo: list[Batch], args, checkout: str, configs: dict, log) -> dict:
    """Submit ``todo`` and log each result as it arrives, under a progress bar of heads
    done and failed; returns the records by batch."""
    from distributed import as_completed
    from tqdm import tqdm

    from sim.regress_tasks import run_batch

    workers = len(client.nthreads())
    print(f"scheduler {client.scheduler.address}, {workers} workers"
          + ("; the tasks wait for workers to join" if not workers else ""))
    run = uuid.uuid4().hex[:8]                  # keys of their own on a shared scheduler
    futures = {client.submit(run_batch, b.seed, b.first_head, b.heads, args.sim, checkout,
                             key=f"regress-seed{b.seed}-head{b.first_head}-{run}"): b
               for b in todo}
    records = {}
    bar = tqdm(total=sum(b.heads for b in todo), unit="head")
    failed = lost = 0
    for future in as_completed(futures):
        b = futures[future]
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - the task never returned: not done
            result = {"done": False, "passed": False, "failure": f"{type(exc).__name__}: {exc}"}
        rec = records[b] = record(b, args.sim, checkout, configs[b.seed], result)
        log.write(json.dumps(rec) + "\n")
        failed += rec["done"] and not rec["passed"]    # a batch stops at its first failed head
        lost += not rec["done"]
        bar.update(b.heads)
        bar.set_postfix(failed=failed, **({"lost": lost} if lost else {}))
        tqdm.write(_line(rec))
    bar.close()
    return records


def _line(rec: dict) -> str:
    """A task's line: seed, heads, outcome, time and worker; for a failure, the config,
    the failed check and the command that reproduces it."""
    last = rec["first_head"] + rec["heads"] - 1
    outcome = "pass" if rec["passed"] else "FAIL" if rec["done"] else "LOST"
    line = (f"seed {rec['seed']:5d} heads {rec['first_head']:3d}-{last:<3d} {outcome} "
            f"{rec['seconds']:6.1f} s  {rec['worker']}")
    if not rec["passed"]:
        line += f"\n    {rec['failure']}\n    config {rec['config']}\n    {rec['command']}"
    return line


def _summary(records: list[dict], args) -> int:
    """Print the run's outcome; 0 when every batch passed."""
    heads = sum(r["heads"] for r in records)
    failed = [r for r in records if r["done"] and not r["passed"]]
    lost = [r for r in records if not r["done"]]
    if failed:
        print(f"{len(failed)} of {len(records)} batches failed "
              f"(seeds {', '.join(str(s) for s in sorted({r['seed'] for r in failed}))}); "
              f"reproduce one with:")
        for r in sorted(failed, key=lambda r: (r["seed"], r["first_head"])):
            print(f"  {r['command']}   (log: {r['run_dir']})")
    if lost:
        print(f"{len(lost)} batches did not finish ({lost[0]['failure']}); run them with "
              f"the same command and --resume")
    if failed or lost:
        return 1
    print(f"all {args.configs} configs x {args.heads} heads = {heads} heads match the golden model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
