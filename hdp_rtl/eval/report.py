"""The evaluation's outputs: a markdown table, a JSON dump and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["markdown_table", "write_report", "plot"]

COLUMNS = ("setting", "pruned", "by blocks / tokens", "by heads", "heads pruned",
           "tokens pruned", "model MACs saved", "cos mean", "cos min", "Spearman",
           "NN agree", "s")


def _row(r) -> str:
    def pct(x):
        return f"{100 * x:.1f}%"
    label = r["label"]
    if r.get("lsb_rows") is not None:
        label += f" (LSBs: {100 * r['lsb_rows']:.1f}% of rows)"
    cells = [label, pct(r["pruned"]), pct(r["block_pruned"]), pct(r["head_pruned"]),
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


#: The lines of the main plot; the sweep plot has every group.
MAIN_GROUPS = ("HDP default", "mean rule 1x4", "mean rule 1x1", "delta rule 1x1",
               "delta rule 1x4", "default + head pruning", "head pruning only",
               "SpAtten tokens", "SpAtten tokens + heads 75%", "top-k oracle",
               "threshold (LeOPArd)")


def plot(rows, path, title: str, groups_shown=None, x: str = "pruned") -> None:
    """Mean cosine and Spearman against the pruned fraction (``x``: or another row
    field, e.g. ``model_macs_pruned``), one line per group (``groups_shown``: only
    these groups). The y axes are ``1 - value`` on a log scale, inverted and labelled
    with the value (0.9999 at the top), so that 0.999 and 0.5 both show."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    groups = {}
    for r in rows:
        if r["group"] != "reference" and (groups_shown is None or r["group"] in groups_shown):
            groups.setdefault(r["group"], []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.6))
    markers = "os^vD<>pPX*h"
    colors = list(plt.get_cmap("tab10").colors) + ["black"]

    def loss(v):
        return min(max(1.0 - v, 1e-5), 2.0)

    ticks = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
    for ax, key, name in ((axes[0], "cos_mean", "mean embedding cosine vs dense"),
                          (axes[1], "spearman", "Spearman of pair similarities")):
        for i, (group, rs) in enumerate(sorted(groups.items())):
            rs = sorted(rs, key=lambda r: r.get(x, 0.0))
            style = ("--" if group.startswith(("top-k", "threshold"))
                     else "-." if group.startswith("SpAtten") else "-")
            ax.plot([100 * r.get(x, 0.0) for r in rs], [loss(r[key]) for r in rs], style,
                    marker=markers[i % len(markers)], color=colors[i % len(colors)],
                    label=group, ms=5)
        ax.set_yscale("log")
        lo = min([loss(r[key]) for rs in groups.values() for r in rs] or [1e-4])
        hi = max([loss(r[key]) for rs in groups.values() for r in rs] or [1.0])
        ax.set_ylim(min(hi * 1.3, 2.0), max(lo / 1.3, 1e-5))       # inverted: better is up
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{1 - y:.4g}"))
        ax.set_xlabel("attention pairs pruned (%)" if x == "pruned" else
                      "multiply-accumulates of the whole model saved (%)")
        ax.set_ylabel(name + " (log scale of 1 - value)")
        ax.grid(alpha=0.3)
        if key == "cos_mean":
            ax.axhline(0.01, color="grey", lw=0.8, ls=":")
            if x == "pruned":
                ax.axvline(50, color="grey", lw=0.8, ls=":")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir, rows, info: dict, datasets, chosen: dict) -> Path:
    """``results.md``, ``results.json``, ``fidelity_<dataset>.png`` and
    ``macs_<dataset>.png`` in ``out_dir``."""
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
          "integer pass over every pair not counted). "
          "Calibration (thresholds, SpAtten's matched keep ratios): "
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
        md += [markdown_table(rs), "", f"![{ds.name}](fidelity_{ds.name}.png)", ""]
        plot(rs, out / f"fidelity_{ds.name}.png", f"all-MiniLM-L6-v2, {ds.name}", MAIN_GROUPS)
        md += [f"![{ds.name}, whole-model work](macs_{ds.name}.png)", ""]
        plot(rs, out / f"macs_{ds.name}.png",
             f"all-MiniLM-L6-v2, {ds.name}: against the whole model's work", MAIN_GROUPS,
             x="model_macs_pruned")
        if len({r["group"] for r in rs}) > len(MAIN_GROUPS):
            md += [f"![{ds.name}, every setting](sweep_{ds.name}.png)", ""]
            plot(rs, out / f"sweep_{ds.name}.png",
                 f"all-MiniLM-L6-v2, {ds.name}: every setting")
    path = out / "results.md"
    path.write_text("\n".join(md) + "\n")
    return path
