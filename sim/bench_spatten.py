"""SpAtten's rows of ``make bench`` (issue 12 item 4): the jobs for the ``topk`` build
and for the cascade's gathered heads, and their report.

- **Top-k rows**: each workload's ``pruned`` head (the HDP rows' registers) on the same
  core built with ``selector="topk"``, with the ``block_k`` whose per-row top-k keeps
  the fraction of pairs closest to what HDP's rule keeps on that head (the golden
  model, :func:`sim.topk_match.block_k_for_keep`). Beside it: the HDP row's cycles, and
  per block row the top-k engine's select-side cycles for the radix passes the
  engine takes on that row against SpAtten's quick-select latency model.
- **Cascade rows**: SpAtten's cascade token and head pruning over 6 layers
  (:mod:`sim.cascade`), per layer the tokens alive, the heads skipped, the input beats
  the host sends for the gathered heads, and the core's measured cycles of gathered
  heads (two a layer, dense: every pair of the alive tokens).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.host import Counters

from .topk_match import block_k_for_keep, hdp_matched, selection_rows, selection_summary

__all__ = ["topk_config", "topk_jobs", "cascade", "cascade_jobs", "topk_rows",
           "cascade_rows", "report", "plot"]

#: The cascade's final keep ratios (tokens, heads): SpAtten's pruning reaches half the
#: tokens and half the heads in the last layer.
TOKEN_KEEP, HEAD_KEEP = 0.5, 0.5


def topk_config(config: HDPConfig) -> HDPConfig:
    """The same core with SpAtten's per-row top-k behind the selection seam."""
    return config.replace(selector="topk")


def topk_jobs(config: HDPConfig, heads, pruned: dict) -> list[tuple]:
    """``(q, k, v, meta)`` of one top-k head a workload: ``heads`` yields ``(label, q, k,
    v, register dict)`` (the HDP rows' heads), ``pruned`` the HDP pruned mode's
    register fields, kept as they are but for ``block_k``."""
    tk = topk_config(config)
    jobs = []
    for label, q, k, v, regs, target in hdp_matched(config, heads, pruned):
        block_k, keep = block_k_for_keep(q, k, v, tk, regs, target)
        regs = dataclasses.replace(regs, block_k=block_k)
        res = golden.attention_head(q, k, v, tk, regs, matmul=golden.float64_matmul)
        jobs.append((q, k, v, {
            "label": f"{label} [topk {block_k}]", "workload": label, "mode": "topk",
            "regs": regs.to_dict(), "block_k": block_k, "keep_hdp": target, "keep_topk": keep,
            "selection": selection_summary(selection_rows(res, block_k, tk))}))
    return jobs


def cascade(config: HDPConfig, quick: bool):
    """``(Cascade, source)``: on MiniLM when the eval extra and model are installed
    (128 tokens, 64 with ``quick`` or on a smaller core), else on random heads."""
    from .cascade import minilm_cascade, synthetic_cascade

    n = min(64 if quick else 128, config.seq_max)
    try:
        return minilm_cascade(config, n, TOKEN_KEEP, HEAD_KEEP)
    except (ImportError, FileNotFoundError) as e:       # ModuleNotFoundError included
        c, source = synthetic_cascade(config, n, TOKEN_KEEP, HEAD_KEEP)
        return c, f"{source}; MiniLM not available: {e}"


def cascade_jobs(config: HDPConfig, casc) -> list[tuple]:
    """The cascade's gathered heads for the ``hdp`` build (pruning off; with the
    importance unit, its reports are checked too: what a host would feed
    :class:`golden.spatten.CascadeState` with)."""
    return [(q, k, v, {"label": f"cascade L{layer}H{head} ({regs.seq_len} alive)",
                       "workload": f"cascade L{layer}", "mode": "cascade", "layer": layer,
                       "head": head, "regs": regs.to_dict(),
                       "importances": bool(config.importance_report)})
            for layer, head, q, k, v, regs in casc.core_heads]


# ---- rows --------------------------------------------------------------------------------

def _ideal(config: HDPConfig, c: Counters) -> float:
    return c.int_macs / config.int_lanes + (c.score_macs + c.pv_macs) / config.mac_lanes


def topk_rows(config: HDPConfig, results: list[dict], hdp_rows: list[dict]) -> list[dict]:
    """A row a top-k head, its workload's HDP pruned row beside it."""
    hdp = {r["workload"]: r for r in hdp_rows if r["mode"] == "pruned"}
    rows = []
    for r in results:
        c = Counters(**r["counters"])
        h = hdp[r["workload"]]
        ideal = _ideal(config, c)
        rows.append({
            "workload": r["workload"], "n": r["regs"]["seq_len"], "block_k": r["block_k"],
            "keep_hdp": h["keep"], "keep": (c.score_macs / c.int_macs) if c.int_macs else 0.0,
            "int": c.cycles_int, "total": c.cycles_total, "ideal": ideal,
            "vs_ideal": c.cycles_total / max(1.0, ideal),
            "hdp_int": h["int"], "hdp_total": h["total"], "hdp_vs_ideal": h["vs_ideal"],
            "selection": r["selection"]})
    return rows


def cascade_rows(casc, results: list[dict]) -> list[dict]:
    """A row a layer: the cascade's record and the core's cycles of its gathered heads
    (every alive head of a layer has the same tokens, and a dense head's cycles depend
    on its length only, so a layer costs its heads times the measured head's cycles;
    both measured heads of a layer are shown)."""
    measured = {}
    for r in results:
        measured.setdefault(r["layer"], []).append(Counters(**r["counters"]).cycles_total)
    full = np.mean(measured[0])          # layer 0 computes every token: the full head
    rows = []
    for rec in casc.records:
        got = measured.get(rec["layer"], [])
        head = float(np.mean(got)) if got else float("nan")
        rows.append({**rec, "measured": got, "head_cycles": head, "cycles": rec["heads"] * head,
                     "cycles_full": (rec["heads"] + rec["heads_skipped"]) * full})
    return rows


# ---- report ------------------------------------------------------------------------------

def _topk_table(rows: list[dict]) -> list[str]:
    lines = ["| workload | n | block_k | keep: HDP / top-k | int: HDP / top-k "
             "| total: HDP / top-k | top-k / HDP total | total/ideal: HDP / top-k |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['n']} | {r['block_k']} | {r['keep_hdp']:.1%} / "
            f"{r['keep']:.1%} | {r['hdp_int']} / {r['int']} | {r['hdp_total']} / {r['total']} "
            f"| {r['total'] / r['hdp_total']:.2f}x | {r['hdp_vs_ideal']:.2f} / "
            f"{r['vs_ideal']:.2f} |")
    return lines


def _selection_table(rows: list[dict]) -> list[str]:
    lines = ["| workload | block rows | radix passes a row: mean (max) | top-k select side a row "
             "(`select_plan`) | of it, counting passes | SpAtten quick-select a row "
             "(model) | rows paced, top-k: sum max(scorer, nb + 1, select) | int measured, "
             "top-k | rows paced, HDP: sum max(scorer, nb + 1) | int measured, HDP |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        s = r["selection"]
        if not s["rows"]:
            lines.append(f"| {r['workload']} | 0 (no valid block) | - | - | - | - "
                         f"| - | {r['int']} | - | {r['hdp_int']} |")
            continue
        lines.append(
            f"| {r['workload']} | {s['rows']} | {s['passes']:.1f} ({s['max_passes']}) | "
            f"{s['row_cycles']:.1f} | {s['counting']:.1f} | {s['quickselect']:.1f} | "
            f"{s['paced_topk']} | {r['int']} | {s['paced_hdp']} | {r['hdp_int']} |")
    return lines


def _cascade_table(rows: list[dict]) -> list[str]:
    lines = ["| layer | tokens alive | heads computed | heads skipped | input beats sent "
             "| full heads' beats | beats saved | core cycles a head (measured) | layer cycles "
             "| full layer | layer vs full | next tokens: SpAtten top-k (model) |",
             "|" + " ---: |" * 12]
    for r in rows:
        heads = " / ".join(str(c) for c in r["measured"]) or "-"
        topk = f"{r['token_topk_cycles']:.1f}" if r["token_topk_cycles"] else "-"
        lines.append(
            f"| {r['layer']} | {r['tokens']} | {r['heads']} | {r['heads_skipped']} | "
            f"{r['beats']} | {r['beats_full']} | {1 - r['beats'] / r['beats_full']:.1%} | "
            f"{heads} | {r['cycles']:.0f} | {r['cycles_full']:.0f} | "
            f"{r['cycles'] / r['cycles_full']:.2f}x | {topk} |")
    beats, full = sum(r["beats"] for r in rows), sum(r["beats_full"] for r in rows)
    cyc, cfull = sum(r["cycles"] for r in rows), sum(r["cycles_full"] for r in rows)
    lines.append(f"| all | | {sum(r['heads'] for r in rows)} | "
                 f"{sum(r['heads_skipped'] for r in rows)} | {beats} | {full} | "
                 f"{1 - beats / full:.1%} | | {cyc:.0f} | {cfull:.0f} | {cyc / cfull:.2f}x | |")
    return lines


def report(config: HDPConfig, preset: str, topk: list[dict], casc_rows: list[dict],
           source: str, cmd: str) -> str:
    n_topk = len(topk)
    lines = [
        f"SpAtten on the same core (preset `{preset}`, {config.int_lanes} integer and "
        f"{config.mac_lanes} MAC lanes): a second Verilator build with `selector = "
        f"\"topk\"`, the same workloads, every head checked bit-exact against the golden "
        f"model through the host driver. Reproduce with `{cmd}`.", "",
        f"Top-k against HDP ({n_topk} heads): the HDP rows' `pruned` registers, `block_k` "
        f"the value whose top-k keeps the fraction of pairs closest to HDP's on that head "
        f"(the golden model: a bisection over `block_k`, the kept fraction never falls as "
        f"it grows). Cycles from the core's counters; `int` is the integer pass, where "
        f"both select.", "", *_topk_table(topk), "",
        "Selection a block row (from the golden head's block importances and the top-k "
        "engine's rule, `hdp_rtl.rtl.topk.select_plan(row, block_k, sint_bits, 8)`, "
        "equal to the RTL's cycles: radix-16 counting passes on the keys less the row's "
        "minimum, each reading only the words that still hold a candidate, then a final "
        "pass; `counting` is the counting passes' words and gaps; SpAtten's quick-select model, `golden.spatten.quickselect_cycles` "
        "with 8 comparators, mean of pivot seeds 0-4, counts its rounds only, no final "
        "pass). `rows paced` is the integer pass the block rows allow when each takes the "
        "longest of the scorer's cycles, the selector's `nb + 1` to take it and its select "
        "side (docs/units.md), the last row's tail not counted; against the measured "
        "integer pass:", "", *_selection_table(topk), "",
        f"SpAtten's cascade ({source}): the evaluation's policy "
        f"(`hdp_rtl.eval.spatten.SpAttenAttention`: tokens and heads by accumulated "
        f"importance, a linear ramp from every token and head in layer 0 to "
        f"{TOKEN_KEEP:.0%} of the tokens and {HEAD_KEEP:.0%} of the heads in the last); "
        f"each alive head runs on every pair of the alive tokens, gathered by the host "
        f"(`3 x alive x {config.beats_per_row}` input beats a head). Two gathered heads a "
        f"layer (its first and last alive head) ran on the core, bit-exact"
        + (", their importance reports checked too" if config.importance_report else "")
        + "; a layer's cycles are its heads times the measured head's (a dense head's "
        "cycles depend only on its length); full = every head on every token.", "",
        *_cascade_table(casc_rows)]
    return "\n".join(lines) + "\n"


def plot(topk: list[dict], out: Path, prefix: str = "bench") -> Path:
    """Total cycles of each workload's HDP pruned row and top-k row (log scale), the
    integer pass as a narrower hatched bar inside each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9.5, 0.55 * len(topk) + 1.4))
    y = np.arange(len(topk))
    for off, key, label, color in ((-0.2, "hdp_", "HDP", "tab:blue"),
                                   (0.2, "", "SpAtten top-k", "tab:orange")):
        ax.barh(y + off, [r[key + "total"] for r in topk], 0.38, color=color, alpha=0.45,
                label=f"{label}: total")
        ax.barh(y + off, [r[key + "int"] for r in topk], 0.14, color=color, hatch="//",
                edgecolor="k", linewidth=0.3, label=f"{label}: integer pass")
    ax.set_yticks(y, [f"{r['workload']} (k={r['block_k']})" for r in topk])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set(xlabel="cycles (log)", title="HDP vs SpAtten top-k, same keep, same MAC array")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path = out / f"{prefix}_spatten.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
