"""The evaluation's outputs: a markdown table, a JSON dump and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["markdown_table", "write_report", "plot"]

COLUMNS = ("setting", "pruned", "by blocks", "by heads", "heads pruned", "cos mean",
           "cos min", "Spearman", "NN agree", "s")


def _row(r) -> str:
    def pct(x):
        return f"{100 * x:.1f}%"
    cells = [r["label"], pct(r["pruned"]), pct(r["block_pruned"]), pct(r["head_pruned"]),
             pct(r["heads_pruned"]), f"{r['cos_mean']:.4f}", f"{r['cos_min']:.4f}",
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
               "top-k (SpAtten)", "threshold (LeOPArd)")


def plot(rows, path, title: str, groups_shown=None) -> None:
    """Mean cosine and Spearman against the pruned fraction, one line per group
    (``groups_shown``: only these groups)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        if r["group"] != "reference" and (groups_shown is None or r["group"] in groups_shown):
            groups.setdefault(r["group"], []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    markers = "os^vD<>pPX*h"
    colors = plt.get_cmap("tab10").colors
    for ax, key, name in ((axes[0], "cos_mean", "mean embedding cosine vs dense"),
                          (axes[1], "spearman", "Spearman of pair similarities")):
        for i, (group, rs) in enumerate(sorted(groups.items())):
            rs = sorted(rs, key=lambda r: r["pruned"])
            style = "--" if group.startswith(("top-k", "threshold")) else "-"
            ax.plot([100 * r["pruned"] for r in rs], [r[key] for r in rs], style,
                    marker=markers[i % len(markers)], color=colors[i % len(colors)],
                    label=group, ms=5)
        ax.set_xlabel("attention pairs pruned (%)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if key == "cos_mean":
            ax.axhline(0.99, color="grey", lw=0.8, ls=":")
            ax.axvline(50, color="grey", lw=0.8, ls=":")
    lows = [r["cos_mean"] for rs in groups.values() for r in rs]
    if lows:
        axes[0].set_ylim(max(min(lows) - 0.005, 0.9), 1.0005)
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir, rows, info: dict, datasets, chosen: dict) -> Path:
    """``results.md``, ``results.json`` and ``fidelity_<dataset>.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    md = ["# HDP on all-MiniLM-L6-v2", "", f"Command: `{info['command']}`", "",
          f"Configuration: preset `{info['preset']}` with {info['config']}; "
          f"{info['total_seconds']:.0f} s in all.", "",
          "Pruned: fraction of the valid attention pairs (query, key) whose score and "
          "P x V products are skipped, summed over every head of every layer and input; "
          "*by blocks* inside kept heads, *by heads* in pruned heads. Fidelity is against "
          "the dense float model's L2-normalised embeddings. Top-k and threshold are "
          "float baselines on the exact scores.", ""]
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
        if len({r["group"] for r in rs}) > len(MAIN_GROUPS):
            md += [f"![{ds.name}, every setting](sweep_{ds.name}.png)", ""]
            plot(rs, out / f"sweep_{ds.name}.png",
                 f"all-MiniLM-L6-v2, {ds.name}: every setting")
    path = out / "results.md"
    path.write_text("\n".join(md) + "\n")
    return path
