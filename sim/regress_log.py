"""The random-config regression's JSON-lines log (``sim.regress --log``).

One line a finished task, written by the client as each result arrives (never by a
worker: a task Dask runs again after losing its worker still has one result, so one
line). ``--resume`` reads it back and skips the tasks it records as done; each line
keeps its batch's coverage counts, so a resumed run's coverage is the whole run's.
"""
from __future__ import annotations

import fcntl
import json
import shlex
from pathlib import Path
from typing import NamedTuple

__all__ = ["Batch", "reproduce_command", "record", "read_done", "open_log"]


class Batch(NamedTuple):
    """One task: heads ``first_head`` .. ``first_head + heads - 1`` of ``seed``'s config;
    ``batch`` counts the seed's batches in this run."""

    seed: int
    batch: int
    first_head: int
    heads: int

    def key(self, simulator: str) -> tuple:
        """What names the task's work, whatever the run's ``--batch`` was."""
        return self.seed, self.first_head, self.heads, simulator


def reproduce_command(batch: Batch, simulator: str, want=()) -> str:
    """The command that runs ``batch`` again, alone, with a log of its own (and steered
    toward the bins ``want`` it was steered toward)."""
    sim = "" if simulator == "verilator" else f" --sim {simulator}"
    steer = f" --want {shlex.quote(','.join(want))}" if want else ""
    return (f"python -m sim.regress --first-seed {batch.seed} --configs 1"
            f" --first-head {batch.first_head} --heads {batch.heads} --batch {batch.heads}{sim}"
            f"{steer} --log build/regress/seed{batch.seed}-head{batch.first_head}.jsonl")


def record(batch: Batch, simulator: str, checkout: str, config: dict, result: dict,
           want=()) -> dict:
    """A log line: ``batch``, where it ran and what came of it: ``result``, what
    :func:`sim.regress_tasks.run_batch` returned, or for a task that never returned,
    ``done`` false and the error; ``want``, the bins the batch was steered toward, and
    ``coverage``, its counts (:meth:`sim.coverage.Coverage.to_dict`)."""
    return {**batch._asdict(), "sim": simulator, "done": result.get("done", True),
            "passed": result["passed"], "failure": result["failure"],
            "seconds": round(result.get("seconds", 0.0), 2),
            "build_seconds": round(result.get("build_seconds", 0.0), 2),
            "worker": result.get("worker", ""), "run_dir": result.get("run_dir", ""),
            "checkout": checkout, "config": config, "want": list(want),
            "coverage": result.get("coverage", {}),
            "command": reproduce_command(batch, simulator, want)}


def read_done(path: Path) -> dict[tuple, dict]:
    """The tasks ``path`` records as done (passed or failed), by :meth:`Batch.key`; a
    missing log or a line cut short by an interrupt records nothing."""
    done = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("done"):
            batch = Batch(rec["seed"], rec["batch"], rec["first_head"], rec["heads"])
            done[batch.key(rec["sim"])] = rec
    return done


def open_log(path: Path, resume: bool):
    """The log opened for this run's lines: appended to on ``resume``, else started anew.

    Raises
    ------
    SystemExit
        When another run has it open: two runs would interleave their lines.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1)                      # line-buffered: a line per result
    try:
        fcntl.flock(log, fcntl.LOCK_EX | fcntl.LOCK_NB)     # until this run closes it
    except BlockingIOError:
        log.close()
        raise SystemExit(f"{path} is the log of a run still going; give this one another --log")
    if not resume:
        log.truncate(0)
    elif path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        log.write("\n")                                  # after a line an interrupt cut short
    return log
