"""Every method of the comparison on the same core (issue 13 item 4): the rows of
``make bench`` that put HDP's rule, SpAtten's top-k, the LeOPArd-style threshold and
channel pruning side by side on the same workloads.

- **LeOPArd-style threshold**: the core built with ``selector="threshold"``; each
  workload's ``pruned`` head with the ``score_threshold`` whose rule keeps the fraction
  of pairs closest to what HDP's rule keeps on that head (the golden model: a
  bisection, the kept fraction never rises as the threshold does).
- **Channel pruning**: the ``hdp`` build itself (``channel_pruning``), each workload's
  head with block pruning off and ``head_dim / 2`` channels of Q and K kept (the
  largest ``sum |q_c| * sum |k_c|``: a cycle count does not depend on which). The kept
  channels fill half the MAC array's score chunks; ``P x V`` runs them all.

Every head is checked bit-exact against the golden model by the bench's host driver
(``tb/cocotb_bench.py``); the cycles are the core's counters.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.host import Counters

from .topk_match import hdp_matched, keep_fraction

__all__ = ["threshold_config", "threshold_for_keep", "threshold_jobs", "channel_mask_for",
           "channel_jobs", "method_rows", "report"]


def threshold_config(config: HDPConfig) -> HDPConfig:
    """The same core with the LeOPArd-style threshold behind the selection seam."""
    return config.replace(selector="threshold")


def threshold_for_keep(q, k, v, config: HDPConfig, regs: Registers, target: float):
    """``(score_threshold, kept fraction)`` of the threshold whose rule keeps the
    fraction of pairs closest to ``target`` (``config.selector`` must be
    ``"threshold"``); a tie goes to the higher threshold (less work)."""
    if config.selector != "threshold":
        raise ValueError(f"threshold_for_keep needs a threshold config, not {config.selector!r}")
    cache = {}

    def keep(t):
        if t not in cache:
            cache[t] = keep_fraction(q, k, v, config,
                                     dataclasses.replace(regs, score_threshold=t))
        return cache[t]

    lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
    while lo < hi:                   # the highest threshold keeping >= target
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if keep(mid) >= target else (lo, mid - 1)
    best = min((lo, min(lo + 1, (1 << (config.sint_bits - 1)) - 1)),
               key=lambda t: (abs(keep(t) - target), -t))
    return best, keep(best)


def threshold_jobs(config: HDPConfig, heads, pruned: dict) -> list[tuple]:
    """``(q, k, v, meta)`` of one threshold head a workload (``heads`` as the bench's:
    ``(label, q, k, v, register dict)``; ``pruned`` the HDP pruned mode's fields)."""
    th = threshold_config(config)
    jobs = []
    for label, q, k, v, regs, target in hdp_matched(config, heads, pruned):
        t, keep = threshold_for_keep(q, k, v, th, regs, target)
        jobs.append((q, k, v, {
            "label": f"{label} [threshold {t}]", "workload": label, "mode": "threshold",
            "regs": dataclasses.replace(regs, score_threshold=t).to_dict(),
            "score_threshold": t, "keep_hdp": target, "keep_method": keep}))
    return jobs


def channel_mask_for(q, k, keep: int, head_dim: int):
    """The ``keep`` channels of largest ``sum_r |q[r, c]| * sum_r |k[r, c]|`` (a
    contribution-size criterion on the head itself; ties to the lower channel), as
    ``head_dim`` bools. A head narrower than ``head_dim`` is zero-padded: its padding
    channels are the last kept."""
    size = np.zeros(head_dim, dtype=np.int64)
    width = np.shape(q)[1]
    size[:width] = (np.abs(np.asarray(q, np.int64)).sum(axis=0)
                    * np.abs(np.asarray(k, np.int64)).sum(axis=0))
    mask = np.zeros(head_dim, dtype=bool)
    mask[np.argsort(-size, kind="stable")[:keep]] = True
    return mask


def channel_jobs(config: HDPConfig, heads, fields: dict) -> list[tuple]:
    """``(q, k, v, meta)`` of one channel-pruned head a workload on the ``hdp`` build:
    ``head_dim / 2`` channels kept, the registers ``fields`` over the workload's (the
    bench's dense mode: channel pruning alone). Empty without ``channel_pruning``."""
    if not config.channel_pruning:
        return []
    keep = config.head_dim // 2
    jobs = []
    for label, q, k, v, base in heads:
        mask = channel_mask_for(q, k, keep, config.head_dim)
        jobs.append((q, k, v, {
            "label": f"{label} [channels {keep}/{config.head_dim}]", "workload": label,
            "mode": "channels", "regs": {**base, **fields},
            "channel_mask": [bool(x) for x in mask], "channels_kept": keep}))
    return jobs


def method_rows(config: HDPConfig, hdp_rows: list[dict], topk_rows: list[dict],
                results: list[dict]) -> list[dict]:
    """A row a workload: dense, HDP pruned, top-k, threshold and channels' kept pairs
    and total cycles (what ran; a method without a head on the workload is None)."""
    by = {}
    for r in hdp_rows:
        by.setdefault(r["workload"], {})[r["mode"]] = {"keep": r["keep"], "total": r["total"],
                                                       "int": r["int"]}
    for r in topk_rows:
        by.setdefault(r["workload"], {})["topk"] = {"keep": r["keep"], "total": r["total"],
                                                    "int": r["int"]}
    for r in results:
        c = Counters(**r["counters"])
        # kept / valid pairs: P x V runs every channel of a kept pair (the integer
        # pass's MACs shrink with a channel mask, so they do not count the pairs)
        n, causal = r["regs"]["seq_len"], r["regs"].get("causal", 0)
        valid = n * (n + 1) // 2 if causal else n * n
        keep = c.pv_macs / (config.head_dim * valid)
        by.setdefault(r["workload"], {})[r["mode"]] = {
            "keep": keep, "total": c.cycles_total, "int": c.cycles_int,
            "attn": c.cycles_attn, "score_macs": c.score_macs, "pv_macs": c.pv_macs}
    return [{"workload": w, "n": next(r["n"] for r in hdp_rows if r["workload"] == w), **m}
            for w, m in by.items()]


def _cell(m: dict | None, dense: int) -> str:
    if not m:
        return "-"
    return f"{m['keep']:.0%}: {m['total']} ({m['total'] / dense:.2f}x)"


def report(config: HDPConfig, preset: str, rows: list[dict], cmd: str) -> str:
    """The side-by-side table of every method's cycles."""
    keep = config.head_dim // 2
    lines = [
        f"Every method on the same core (preset `{preset}`; issue 13): per workload, the "
        f"pairs each method keeps and the core's total cycles for the head (against the "
        f"dense head). HDP: the delta rule of the `pruned` rows above; top-k: SpAtten's "
        f"per-row top-k (`selector = \"topk\"`, the rows below); threshold: LeOPArd's "
        f"per-layer score threshold (a `selector = \"threshold\"` build), its "
        f"`score_threshold` matched to HDP's kept fraction on each head; channels: "
        f"channel pruning alone on the `hdp` build, {keep} of {config.head_dim} Q/K "
        f"channels kept and block pruning off (`channel_drop` = {config.head_dim - keep}; "
        f"the kept channels fill half the MAC array's score chunks). Every head checked "
        f"bit-exact against the golden model. Reproduce with `{cmd}`.", "",
        "| workload | n | dense | HDP delta rule | SpAtten top-k | LeOPArd threshold "
        f"| channels {keep}/{config.head_dim} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        dense = r["dense"]["total"]
        lines.append(f"| {r['workload']} | {r['n']} | {dense} | {_cell(r.get('pruned'), dense)} "
                     f"| {_cell(r.get('topk'), dense)} | {_cell(r.get('threshold'), dense)} "
                     f"| {_cell(r.get('channels'), dense)} |")
    lines += ["", "Cells: kept pairs / valid pairs, then total cycles (and against dense). "
              "Channel pruning keeps every pair and saves the score chunks of the dropped "
              "channels instead; LeOPArd's bit-serial early "
              "termination is a standalone unit (docs/units.md), not in these builds."]
    return "\n".join(lines) + "\n"
