"""Random-config regression (``make regress``), on a Dask cluster.

``python -m sim.regress [--configs 20] [--heads 50] [--batch 25] [--first-seed 100]
[--jobs 2 | --scheduler ADDRESS] [--sim verilator|icarus] [--log FILE] [--resume]
[--fill-configs N] [--want BINS]``
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

Functional coverage (:mod:`sim.coverage`): each batch returns its bin counts, which
the log keeps; the run's total (every config of the run, every head of the log's
batches) goes to ``coverage.json`` and ``coverage.md`` beside the log
(:func:`coverage_paths`), and its holes are printed at the end. The run steers toward
the holes: ``--fill-configs`` more seeds, beyond the run's, whose configs hit config
holes (:func:`fill_seeds`), and every batch after the first ones steered toward the head
and error-case holes of the results so far (``HDP_WANT``; ``--want`` fixes the list,
as the log's command does to reproduce a steered batch).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from pathlib import Path

from sim.coverage import STEERS, Coverage, config_bins
from sim.regress_log import Batch, open_log, read_done, record

__all__ = ["plan", "fill_seeds", "coverage_of", "coverage_paths", "main"]

DEFAULT_LOG = Path("build/regress/log.jsonl")
#: Seeds :func:`fill_seeds` looks at, beyond the run's.
FILL_SCAN = 2000


def plan(seeds, heads: int, batch: int, first_head: int = 0) -> list[Batch]:
    """Every seed's heads ``first_head`` .. ``first_head + heads - 1``, in batches of at
    most ``batch``; every seed's first batch comes before any second one, so that the
    workers start on different configs rather than wait on one config's build."""
    starts = range(first_head, first_head + heads, batch)
    return [Batch(seed, b, start, min(batch, first_head + heads - start))
            for b, start in enumerate(starts) for seed in seeds]


def fill_seeds(holes, start: int, count: int,
               scan: int = FILL_SCAN) -> list[tuple[int, list[str]]]:
    """Up to ``count`` seeds of ``start`` .. ``start + scan - 1`` whose configs hit the
    config bins ``holes``: each the seed hitting the most holes still open (the lowest
    of equals), until none is open or no seed hits one; with the holes each fills."""
    from sim.random_configs import random_config

    open_ = set(holes)
    hits = {seed: config_bins(random_config(seed)) for seed in range(start, start + scan)}
    picked = []
    while open_ and len(picked) < count:
        seed = max(hits, key=lambda s: (len(hits[s] & open_), -s))
        filled = hits.pop(seed) & open_
        if not filled:
            break
        picked.append((seed, sorted(filled)))
        open_ -= filled
    return picked


def coverage_paths(log: Path) -> tuple[Path, Path]:
    """The coverage files of the run logging to ``log``: ``coverage.json`` and
    ``coverage.md`` beside the default log, ``<log stem>-coverage.*`` beside another."""
    stem = "coverage" if log == DEFAULT_LOG else f"{log.stem}-coverage"
    return log.with_name(stem + ".json"), log.with_name(stem + ".md")


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
    p.add_argument("--fill-configs", type=int, metavar="N",
                   help="add up to N seeds, beyond the run's, whose configs fill config "
                        "coverage holes (default: --configs / 5)")
    p.add_argument("--want", type=lambda text: [b for b in text.split(",") if b],
                   metavar="BINS", help="steer every batch toward these comma-separated "
                   "coverage bins ('' for none), not toward the holes of the results so far")
    return p


def main(argv=None) -> int:
    from sim.random_configs import random_config
    from sim.regress_tasks import checkout_id

    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.configs, args.heads, args.batch, args.jobs) < 1 or args.first_head < 0:
        parser.error("--configs, --heads, --batch and --jobs must be positive, "
                     "--first-head not negative")
    unknown = [b for b in args.want or () if b not in STEERS]
    if unknown:
        parser.error(f"--want: not a steerable bin: {unknown[0]!r} (sim/coverage.py)")
    seeds = list(range(args.first_seed, args.first_seed + args.configs))
    seeds += _fill(seeds, args)
    batches = plan(seeds, args.heads, args.batch, args.first_head)
    done = read_done(args.log) if args.resume else {}
    records = {b: done[b.key(args.sim)] for b in batches if b.key(args.sim) in done}
    todo = [b for b in batches if b not in records]
    checkout = checkout_id()
    print(f"{len(batches)} tasks ({len(seeds)} configs x {args.heads} heads, "
          f"batches of {args.batch}) at {checkout} on {args.sim}"
          + (f"; {len(records)} done in {args.log}" if records else "") + f"; log: {args.log}")
    elsewhere = sum(r["checkout"] != checkout for r in records.values())
    if elsewhere:
        print(f"note: {elsewhere} of the done tasks ran at another checkout")
    with open_log(args.log, args.resume) as log:
        if todo:
            configs = {s: random_config(s).to_dict() for s in seeds}
            with _client(args.scheduler, args.jobs) as client:
                records.update(_run(client, todo, args, checkout, configs, log,
                                    coverage_of(records.values())))
    done = [records[b] for b in batches if b in records]
    _report(coverage_of(done), args.log)
    return _summary([records[b] for b in batches], len(seeds), args)


def _fill(seeds: list[int], args) -> list[int]:
    """The seeds added to fill the config holes of ``seeds`` (``--fill-configs``)."""
    from sim.random_configs import random_config

    count = args.configs // 5 if args.fill_configs is None else args.fill_configs
    cov = Coverage()
    for s in seeds:
        cov.sample_config(random_config(s))
    holes = cov.holes("configs")
    picked = fill_seeds(holes, seeds[-1] + 1, count) if count > 0 and holes else []
    if holes:
        print(f"{len(holes)} config bins no seed of the run hits"
              + ("; added to fill them (--fill-configs):" if picked else
                 " (--fill-configs N adds seeds that fill them)" if count <= 0 else ""))
    for seed, filled in picked:
        print(f"  seed {seed}: {'; '.join(filled)}")
    return [seed for seed, _ in picked]


def coverage_of(records) -> Coverage:
    """The coverage of ``records``: their configs (once each) and their heads."""
    from hdp_rtl.config import HDPConfig

    cov, seen = Coverage(), set()
    for rec in records:
        if not rec.get("done", True):
            continue
        if rec["seed"] not in seen:
            seen.add(rec["seed"])
            cov.sample_config(HDPConfig.from_dict(rec["config"]))
        cov.merge(Coverage.from_dict(rec.get("coverage", {})))
    return cov


def _want(coverage: Coverage, args) -> list[str]:
    """The bins a batch submitted now is steered toward: ``--want``, else the steerable
    holes of the results so far (none before the first result)."""
    if args.want is not None:
        return args.want
    return _steerable_holes(coverage) if coverage.samples["heads"] else []


def _steerable_holes(coverage: Coverage) -> list[str]:
    """The head and error-case holes: those a batch can be steered toward."""
    return [b for b in coverage.holes() if b in STEERS]


def _run(client, todo: list[Batch], args, checkout: str, configs: dict, log,
         coverage: Coverage) -> dict:
    """Submit ``todo`` and log each result as it arrives, under a progress bar of heads
    done and failed; returns the records by batch.

    Every seed's first batch goes at once (each starts a build); the others go as
    workers free up, at most two a worker in flight, each steered toward the holes of
    ``coverage`` (the results so far, to which every result adds)."""
    from distributed import as_completed
    from tqdm import tqdm

    from sim.regress_tasks import run_batch

    workers = len(client.nthreads())
    print(f"scheduler {client.scheduler.address}, {workers} workers"
          + ("; the tasks wait for workers to join" if not workers else ""))
    run = uuid.uuid4().hex[:8]                  # keys of their own on a shared scheduler
    pending, futures, running = list(todo), {}, as_completed()

    def top_up():
        slots = 2 * max(1, sum(client.nthreads().values()))
        while pending and (pending[0].batch == 0 or len(futures) < slots):
            b = pending.pop(0)
            want = _want(coverage, args)
            future = client.submit(run_batch, b.seed, b.first_head, b.heads, args.sim,
                                   checkout, want,
                                   key=f"regress-seed{b.seed}-head{b.first_head}-{run}")
            futures[future] = b, want
            running.add(future)

    top_up()
    records = {}
    bar = tqdm(total=sum(b.heads for b in todo), unit="head")
    failed = lost = 0
    for future in running:
        b, want = futures.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - the task never returned: not done
            result = {"done": False, "passed": False, "failure": f"{type(exc).__name__}: {exc}"}
        rec = records[b] = record(b, args.sim, checkout, configs[b.seed], result, want)
        log.write(json.dumps(rec) + "\n")
        coverage.merge(Coverage.from_dict(rec["coverage"]))   # the heads' bins steer
        failed += rec["done"] and not rec["passed"]    # a batch stops at its first failed head
        lost += not rec["done"]
        bar.update(b.heads)
        bar.set_postfix(failed=failed, holes=len(_steerable_holes(coverage)),
                        **({"lost": lost} if lost else {}))
        tqdm.write(_line(rec))
        top_up()
    bar.close()
    return records


def _line(rec: dict) -> str:
    """A task's line: seed, heads, outcome, time and worker; for a failure, the config,
    the failed check and the command that reproduces it."""
    last = rec["first_head"] + rec["heads"] - 1
    outcome = "pass" if rec["passed"] else "FAIL" if rec["done"] else "LOST"
    line = (f"seed {rec['seed']:5d} heads {rec['first_head']:3d}-{last:<3d} {outcome} "
            f"{rec['seconds']:6.1f} s  {rec['worker']}"
            + (f"  steered: {len(rec['want'])} wanted" if rec.get("want") else ""))
    if not rec["passed"]:
        line += f"\n    {rec['failure']}\n    config {rec['config']}\n    {rec['command']}"
    return line


def _report(coverage: Coverage, log: Path) -> None:
    """Write the coverage report beside ``log``; print its summary and its holes."""
    json_path, md_path = coverage_paths(log)
    json_path.write_text(coverage.to_json() + "\n")
    md_path.write_text(coverage.report(f"Functional coverage of {log}"))
    print(coverage.summary())
    holes: dict[str, list[str]] = {}
    for hole in coverage.holes():
        group, name = hole.split(":", 1)
        holes.setdefault(group, []).append(name)
    print(f"holes ({sum(map(len, holes.values()))}):" if holes else "no holes")
    for group, names in holes.items():
        print(f"  {group}: {'; '.join(names)}")
    print(f"coverage report: {md_path} ({len(coverage.excluded())} bins excluded, with why)")


def _summary(records: list[dict], configs: int, args) -> int:
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
    print(f"all {configs} configs x {args.heads} heads = {heads} heads match the golden model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
