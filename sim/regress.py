"""Random-config regression (``make regress``).

``python -m sim.regress [--configs 20] [--heads 50] [--first-seed 100] [--jobs 2]``
builds one random valid config per seed (``sim.random_configs``) on Verilator and runs
``--heads`` random heads with random registers on it against the golden model, under
random idle and back-pressure, through the host driver (:mod:`hdp_rtl.host`, in
``tb/cocotb_regress.py``). Prints one line per seed with, for a failure, the first
failed check (the head, and for a hang the stage it hung in) and the command that
reproduces it; exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from xml.etree import ElementTree

__all__ = ["run_seed", "main"]


def run_seed(seed: int, heads: int) -> tuple[int, bool, str, float]:
    """Run ``heads`` heads on the config of ``seed``: ``(seed, passed, why, seconds)``."""
    from hdp_rtl.rtl.top import HDPCoprocessor
    from sim.random_configs import random_config
    from sim.runner import build_dir_for, run_cocotb

    start = time.perf_counter()
    name = f"regress-{seed}"
    results = build_dir_for(name, "verilator") / "results.xml"
    results.unlink(missing_ok=True)            # no stale message if the build fails
    try:
        run_cocotb(component=HDPCoprocessor(random_config(seed)), toplevel="hdp_coprocessor",
                   test_module="cocotb_regress", simulator="verilator", name=name,
                   env={"HDP_SEED": seed, "HDP_HEADS": heads})
        return seed, True, "", time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its seed
        why = _failure(results) or str(exc)
        return seed, False, why.splitlines()[0], time.perf_counter() - start


def _failure(results: Path) -> str:
    """The first failure message in a cocotb results file: the host's check or hang
    message, which names the head (and, for a hang, the stage); "" when there is none."""
    try:
        failure = ElementTree.parse(results).find(".//failure")
    except (OSError, ElementTree.ParseError):
        return ""
    return "" if failure is None else failure.get("message", "")


def main(argv=None) -> int:
    from tqdm import tqdm

    from sim.random_configs import random_config

    p = argparse.ArgumentParser(prog="python -m sim.regress", description=__doc__.split("\n")[0])
    p.add_argument("--configs", type=int, default=20)
    p.add_argument("--heads", type=int, default=50)
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.configs)
    failures = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_seed, s, args.heads) for s in seeds]
        bar = tqdm(as_completed(futures), total=len(futures), unit="config")
        for fut in bar:
            seed, ok, why, secs = fut.result()
            tqdm.write(f"seed {seed:5d} {'pass' if ok else 'FAIL'} {secs:6.1f} s  "
                       f"{random_config(seed)}" + ("" if ok else f"\n    {why}"))
            if not ok:
                failures.append(seed)
    total = args.configs * args.heads
    if failures:
        print(f"{len(failures)} of {args.configs} configs failed; reproduce one with:")
        for s in sorted(failures):
            print(f"  python -m sim.regress --first-seed {s} --configs 1 --heads {args.heads}"
                  f"   (log: build/sim/regress-{s}/verilator)")
        return 1
    print(f"all {args.configs} configs x {args.heads} heads = {total} heads match the golden model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
