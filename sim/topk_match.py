"""SpAtten's top-k on the benchmark's workloads: the ``block_k`` that keeps about what
HDP keeps, and what selecting those blocks costs a block row (``make bench``).

Everything here is the golden model plus the top-k engine's cycle rule
(:func:`hdp_rtl.rtl.topk.select_plan`, equal to the RTL's cycles); nothing runs a
simulator.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import golden
from golden.spatten import quickselect_cycles
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.topk import PASS_GAP, radix_passes, select_plan

__all__ = ["keep_fraction", "hdp_matched", "block_k_for_keep", "radix_passes", "selection_rows",
           "selection_summary", "COMPARATORS"]

#: Values the top-k selector compares a cycle (``TopKSelector.from_config``'s default);
#: SpAtten's quick-select model gets as many comparators.
COMPARATORS = 8


def keep_fraction(q, k, v, config: HDPConfig, regs: Registers) -> float:
    """Kept pairs / valid pairs of the golden head (0 for a head-pruned head)."""
    res = golden.attention_head(q, k, v, config, regs, matmul=golden.float64_matmul)
    return res.pairs_kept / res.pairs_valid


def hdp_matched(config: HDPConfig, heads, pruned: dict):
    """For each bench head ``(label, q, k, v, register dict)``: ``(label, q, k, v, regs,
    target)`` with ``regs`` the head's registers under HDP's pruned-mode ``pruned``
    fields and ``target`` the fraction of pairs HDP's rule keeps there (the golden
    model): what another policy's register is matched to."""
    for label, q, k, v, base in heads:
        regs = Registers(**{**base, **pruned})
        yield label, q, k, v, regs, keep_fraction(q, k, v, config, regs)


def block_k_for_keep(q, k, v, config: HDPConfig, regs: Registers, target: float):
    """``(block_k, kept fraction)`` of the ``block_k`` whose top-k keeps the fraction of
    pairs closest to ``target`` (``config.selector`` must be ``"topk"``; the other
    registers as in ``regs``). The kept fraction never falls as ``block_k`` grows, so
    it is a bisection for the smallest ``block_k`` reaching ``target`` and a look at
    the one below; a tie goes to the smaller ``block_k``."""
    if config.selector != "topk":
        raise ValueError(f"block_k_for_keep needs a topk config, not {config.selector!r}")
    cache = {}

    def keep(b):
        if b not in cache:
            cache[b] = keep_fraction(q, k, v, config, dataclasses.replace(regs, block_k=b))
        return cache[b]

    lo, hi = 1, -(-regs.seq_len // config.block_cols)     # block_k = nb keeps every block
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if keep(mid) >= target else (mid + 1, hi)
    best = min((max(1, lo - 1), lo), key=lambda b: (abs(keep(b) - target), b))
    return best, keep(best)


def selection_rows(res: golden.HeadResult, block_k: int, config: HDPConfig,
                   seeds: int = 5) -> list[dict]:
    """Per block row of a golden head (``res`` of the ``topk`` config): its valid
    blocks ``nb``, the counting passes on its ``BI``, the select side's cycles
    (:func:`select_plan`) and the counting part of them (every pass but the final
    one, with the gaps after them), and SpAtten's quick-select
    model on the same row (:func:`golden.spatten.quickselect_cycles`, the mean over
    pivot seeds ``0 .. seeds-1``; it counts its rounds only, no final pass).
    A head-pruned head has its rows too: the selector works through the integer pass,
    whose end decides the head pruning."""
    p = min(COMPARATORS, 1 << (config.block_col_count - 1).bit_length())
    # the head scorer spends d / int_lanes cycles a valid pair (docs/units.md)
    per_pair = -(-config.head_dim // config.int_lanes)
    rows = []
    for br, (bi, bvalid) in enumerate(zip(res.block_importance, res.block_valid)):
        vals = [int(x) for x in bi[bvalid]]
        nb = len(vals)
        if not nb:
            continue
        plan = select_plan(vals, block_k, config.sint_bits, p)
        passes = plan["passes"]
        pairs = int(res.valid[br * config.block_rows:(br + 1) * config.block_rows].sum())
        rows.append({
            "nb": nb, "scorer": per_pair * pairs, "passes": passes,
            "row_cycles": plan["cycles"],
            "counting": sum(plan["words"][:-1]) + passes * (PASS_GAP - 1),
            "quickselect": float(np.mean([quickselect_cycles(vals, block_k, p, s)
                                          for s in range(seeds)])),
        })
    return rows


def selection_summary(rows: list[dict]) -> dict:
    """Means over a head's block rows, and the block rows' pace: a row takes the
    longest of the scorer's ``scorer`` cycles, the selector's ``nb + 1`` to take it and
    (``topk``) its ``row_cycles`` to select it (docs/units.md), so ``paced_topk`` (and
    ``paced_hdp``, without the selection) is the integer pass those rows allow, its
    tail not counted."""
    if not rows:
        return {"rows": 0, "passes": 0.0, "max_passes": 0, "row_cycles": 0.0,
                "counting": 0.0, "quickselect": 0.0, "paced_topk": 0, "paced_hdp": 0}
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {"rows": len(rows), "passes": mean("passes"),
            "max_passes": max(r["passes"] for r in rows), "row_cycles": mean("row_cycles"),
            "counting": mean("counting"), "quickselect": mean("quickselect"),
            "paced_topk": sum(max(r["scorer"], r["nb"] + 1, r["row_cycles"]) for r in rows),
            "paced_hdp": sum(max(r["scorer"], r["nb"] + 1) for r in rows)}
