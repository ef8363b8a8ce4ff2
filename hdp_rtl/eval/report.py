"""The evaluation's outputs: markdown tables (every row; the one comparison of
:data:`hdp_rtl.eval.sweep.METHODS`), a JSON dump and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path

from .sweep import comparison_rows, pruned_work

__all__ = ["markdown_table", "comparison_table", "write_report", "plot", "comparison_plot"]

COLUMNS = ("setting", "pruned", "attention work pruned", "by blocks / tokens", "by heads",
           "heads pruned", "tokens pruned", "model MACs saved", "cos mean", "cos min",
           "Spearman", "NN agree", "s")

COMPARISON_COLUMNS = ("method", "setting", "attention work pruned", "pairs pruned",
                      "score channels kept", "model MACs saved", "cos mean", "cos min",
                      "Spearman", "NN agree", "calibrated")

#: Groups that are reference points, not lines of the plots.
REFERENCE_GROUPS = ("reference", "quantisation only", "quantisation only, approximation on",
                    "dense")


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _row(r) -> str:
    def pct(x):
        return f"{100 * x:.1f}%"
    label = r["label"]
    if r.get("lsb_rows") is not None:
        label += f" (LSBs: {100 * r['lsb_rows']:.1f}% of rows)"
    cells = [label, pct(r["pruned"]), pct(pruned_work(r)), pct(r["block_pruned"]),
             pct(r["head_pruned"]),
             pct(r["heads_pruned"]), pct(r.get("tokens_pruned", 0.0)),
             pct(r.get("model_macs_pruned", 0.0)),
             f"{r['cos_mean']:.4f}", f"{r['cos_min']:.4f}",
             f"{r['spearman']:.4f}", f"{r['nn_agree']:.2f}", f"{r['seconds']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows) -> str:
    """One markdown table of result rows (sorted by group, then pruned fraction)."""
    rows = sorted(rows, key=lambda r: (r["group"], r["pruned"]))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    return "\n".join(lines + [_row(r) for r in rows])


def _calibration_cell(r) -> str:
    mode = r.get("calibration")
    if not mode:
        return "-"
    return {"2-fold cross-fitted": "other half", "in-sample": "same inputs"}.get(mode, mode)


def comparison_table(rows, dataset: str) -> str:
    """The one comparison of ``dataset``: every method of
    :data:`hdp_rtl.eval.sweep.METHODS` with its rows, by pruned attention work."""
    lines = ["| " + " | ".join(COMPARISON_COLUMNS) + " |",
             "|" + " --- |" * len(COMPARISON_COLUMNS)]
    for method, rs in comparison_rows(rows, dataset):
        for r in rs:
            cells = [method.name, r["label"], _pct(pruned_work(r)), _pct(r["pruned"]),
                     _pct(r.get("score_channels", 1.0)), _pct(r.get("model_macs_pruned", 0.0)),
                     f"{r['cos_mean']:.4f}", f"{r['cos_min']:.4f}", f"{r['spearman']:.4f}",
                     f"{r['nn_agree']:.2f}", _calibration_cell(r)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The lines of the main plot; the sweep plot has every group.
MAIN_GROUPS = ("HDP default", "mean rule 1x4", "mean rule 1x1", "delta rule 1x1",
               "delta rule 1x4", "default + head pruning", "head pruning only",
               "SpAtten tokens", "SpAtten tokens + heads 75%", "top-k oracle",
               "threshold (LeOPArd)")

#: The whole-model plot adds channel pruning (it prunes no pair, so it is not on the
#: pairs plot; the comparison plot has it against the attention work).
MACS_GROUPS = MAIN_GROUPS + ("channels: attention difference", "channels: channel similarity",
                             "channels + HDP default")

_XLABELS = {"pruned": "attention pairs pruned (%)",
            "model_macs_pruned": "multiply-accumulates of the whole model saved (%)",
            "pruned_work": "attention work pruned (% of the dense attention MACs, q.k and P x V)"}


def plot(rows, path, title: str, groups_shown=None, x: str = "pruned", lines=None,
         note: str | None = None) -> None:
    """Mean cosine and Spearman against the pruned fraction (``x``: or another row
    field, e.g. ``model_macs_pruned`` or ``pruned_work``), one line per group
    (``groups_shown``: only these groups; reference groups are left out) or, with
    ``lines``, one line per ``(name, rows)`` given. The y axes are ``1 - value`` on a
    log scale, inverted and labelled with the value (0.9999 at the top), so that 0.999
    and 0.5 both show."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if lines is not None:
        groups = {name: list(rs) for name, rs in lines}
    else:
        groups = {}
        for r in rows:
            if r["group"] not in REFERENCE_GROUPS and (groups_shown is None
                                                       or r["group"] in groups_shown):
                groups.setdefault(r["group"], []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.6))
    markers = "os^vD<>pPX*hH8d"
    colors = list(plt.get_cmap("tab10").colors) + ["black", "darkgoldenrod", "navy", "lime"]

    def loss(v):
        return min(max(1.0 - v, 1e-5), 2.0)

    ticks = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
    def xval(r):
        return pruned_work(r) if x == "pruned_work" else r.get(x, 0.0)

    items = list(groups.items()) if lines is not None else sorted(groups.items())
    for ax, key, name in ((axes[0], "cos_mean", "mean embedding cosine vs dense"),
                          (axes[1], "spearman", "Spearman of pair similarities")):
        for i, (group, rs) in enumerate(items):
            rs = sorted(rs, key=xval)
            style = ("--" if group.startswith(("top-k", "threshold", "LeOPArd"))
                     else "-." if group.startswith("SpAtten")
                     else ":" if group.startswith("channel") else "-")
            ax.plot([100 * xval(r) for r in rs], [loss(r[key]) for r in rs],
                    style if len(rs) > 1 else "",
                    marker=markers[i % len(markers)], color=colors[i % len(colors)],
                    label=group, ms=5 if len(rs) > 1 else 8)
        ax.set_yscale("log")
        lo = min([loss(r[key]) for rs in groups.values() for r in rs] or [1e-4])
        hi = max([loss(r[key]) for rs in groups.values() for r in rs] or [1.0])
        ax.set_ylim(min(hi * 1.3, 2.0), max(lo / 1.3, 1e-5))       # inverted: better is up
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{1 - y:.4g}"))
        ax.set_xlabel(_XLABELS.get(x, x))
        ax.set_ylabel(name + " (log scale of 1 - value)")
        ax.grid(alpha=0.3)
        if key == "cos_mean":
            ax.axhline(0.01, color="grey", lw=0.8, ls=":")
            if x in ("pruned", "pruned_work"):
                ax.axvline(50, color="grey", lw=0.8, ls=":")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle(title if note is None else f"{title}\n{note}")
    # room for the legend: the longest label sets it
    longest = max((len(label) for label in labels), default=0)
    fig.tight_layout(rect=(0, 0, 0.83 if longest <= 32 else 0.77, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def comparison_plot(rows, dataset: str, path, title: str) -> None:
    """The one comparison's plot: fidelity against the pruned attention work, one line
    per method of :data:`hdp_rtl.eval.sweep.METHODS` (dense, at fidelity 1, is off the
    log scale and named in the title)."""
    lines = [(m.name, rs) for m, rs in comparison_rows(rows, dataset) if m.family != "dense"]
    plot(rows, path, title, x="pruned_work", lines=lines,
         note="dense float = 1 by definition (off the log scale); float baselines (top-k, "
              "threshold) on exact scores, the rest on the quantised core")


def _out_of_sample_lines(choices: dict) -> list[str]:
    """Lines for :func:`hdp_rtl.eval.sweep.choose_out_of_sample`'s results, by the
    smallest block size allowed."""
    lines = []
    for min_pairs, got in sorted(choices.items()):
        what = "any block shape" if min_pairs == 1 else f"blocks of >= {min_pairs} pairs"
        if got is None:
            lines.append(f"- {what}: no setting reaches mean cosine >= 0.99 on a half.")
            continue
        lines.append(
            f"- {what}: **{100 * got['pruned']:.1f}% pruned at mean cosine "
            f"{got['cos_mean']:.4f}** (min {got['cos_min']:.4f}); chosen on the second half "
            f"for the first: {got['chosen'][0]}; on the first for the second: "
            f"{got['chosen'][1]}.")
    return lines


def write_report(out_dir, rows, info: dict, datasets, chosen: dict,
                 out_of_sample: dict | None = None) -> Path:
    """``results.md``, ``results.json``, ``comparison_<dataset>.png``,
    ``fidelity_<dataset>.png`` and ``macs_<dataset>.png`` in ``out_dir``.
    ``out_of_sample``: per dataset, ``{min block pairs: choose_out_of_sample(...)}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    md = ["# HDP on all-MiniLM-L6-v2", "", f"Command: `{info['command']}`", "",
          f"Configuration: preset `{info['preset']}` with {info['config']}; "
          f"{info['total_seconds']:.0f} s in all.", "",
          "Pruned: fraction of the valid attention pairs (query, key) whose score and "
          "P x V products are skipped, summed over every head of every layer and input; "
          "*by blocks / tokens* inside kept heads, *by heads* in pruned heads. Fidelity is "
          "against "
          "the dense float model's L2-normalised embeddings. Top-k and threshold are "
          "float baselines on the exact scores. SpAtten runs on the golden core with "
          "cascade token and head pruning: its pairs of pruned tokens are in *by blocks / "
          "tokens*, *tokens pruned* is the fraction of (token, layer) pairs not computed. "
          "*Model MACs saved*: multiply-accumulates of the whole model (projections, "
          "feed-forward, scores and P x V) that the pruned pairs and tokens skip (HDP's "
          "integer pass over every pair not counted; a masked Q/K channel saves its "
          "score MACs and its Q and K projection columns). "
          "*Attention work pruned*: fraction of the dense attention MACs (score q.k and "
          "P x V, d each per valid pair) skipped: pairs pruned save both, masked channels "
          "the channel's share of the score (channel pruning keeping k of d channels: "
          "(1 - k/d) / 2); HDP's integer pass is counted for no method. "
          "Calibration (thresholds, SpAtten's matched keep ratios, channel masks): "
          + ", ".join(f"{k}: {v}" for k, v in info.get("calibration", {}).items()) + ".", ""]
    for ds in datasets:
        rs = [r for r in rows if r["dataset"] == ds.name]
        tok = ds.tokens
        md += [f"## {ds.name}: {len(ds.texts)} inputs, {tok.min()}-{tok.max()} tokens "
               f"(mean {tok.mean():.0f})", ""]
        best = chosen.get(ds.name)
        if best is not None:
            md += [f"Most pruning at mean cosine >= 0.99 without sorting: **{best['label']}**, "
                   f"{100 * best['pruned']:.1f}% pruned at {best['cos_mean']:.4f}.", ""]
        else:
            md += ["No HDP block setting reached mean cosine >= 0.99.", ""]
        if out_of_sample and out_of_sample.get(ds.name):
            md += ["The same choice out of sample (the HDP setting that prunes the most at "
                   "mean cosine >= 0.99 on one half of the set, reported on the other "
                   "half; the halves as in the calibration):", "",
                   *_out_of_sample_lines(out_of_sample[ds.name]), ""]
        md += ["### One comparison", "",
               "Every method of the single method list, by pruned attention work; "
               "*calibrated*: where its thresholds, ratios or channel masks come from "
               "(other half: the half of the set the input is not in).", "",
               comparison_table(rs, ds.name), "",
               f"![{ds.name}, one comparison](comparison_{ds.name}.png)", ""]
        comparison_plot(rs, ds.name, out / f"comparison_{ds.name}.png",
                        f"all-MiniLM-L6-v2, {ds.name}: fidelity against pruned attention work")
        md += ["### Every setting", "", markdown_table(rs), "",
               f"![{ds.name}](fidelity_{ds.name}.png)", ""]
        plot(rs, out / f"fidelity_{ds.name}.png", f"all-MiniLM-L6-v2, {ds.name}", MAIN_GROUPS)
        md += [f"![{ds.name}, whole-model work](macs_{ds.name}.png)", ""]
        plot(rs, out / f"macs_{ds.name}.png",
             f"all-MiniLM-L6-v2, {ds.name}: against the whole model's work", MACS_GROUPS,
             x="model_macs_pruned")
        if len({r["group"] for r in rs}) > len(MACS_GROUPS):
            md += [f"![{ds.name}, every setting](sweep_{ds.name}.png)", ""]
            plot(rs, out / f"sweep_{ds.name}.png",
                 f"all-MiniLM-L6-v2, {ds.name}: every setting")
    path = out / "results.md"
    path.write_text("\n".join(md) + "\n")
    return path
