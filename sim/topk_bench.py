"""The top-k engine's cycles a row beside SpAtten's quick-select latency model (issue 12:
n = 64 .. 256, k = n/8 .. n/2, 8 comparators), without a simulator: the engine's cycles
are :func:`hdp_rtl.rtl.topk.select_plan`'s, which ``tests/units/test_topk.py`` checks
against the RTL cycle for cycle (``test_cycles_vs_spatten`` runs this module's rows).

Data: ``random``, values drawn uniformly over the full range of the default preset's
block importances (``sint_bits`` = 14); ``MiniLM``, block rows of the stored MiniLM
heads (``tests/data/minilm_heads.npz``) run through the golden model at ``default``:
the preset's ``S_sel`` block importances (``unbiased_selection`` on, what the core
selects on), and ``MiniLM S_int``, the same heads' ``S_int`` ones (``unbiased_selection``
off: about half the span) (1 x 1 blocks: a block row of a 64-token head is 64
importances). The stored heads have 64 tokens at most, so a MiniLM row of 128 (256)
is 2 (4) consecutive block rows of one head end to end.

``python -m sim.topk_bench [rows]``: the table, means over ``rows`` rows a case.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from golden.spatten import quickselect_cycles
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.topk import select_plan

__all__ = ["COMPARATORS", "CASES", "DATA", "minilm_rows", "bench_rows", "table", "summary"]

#: Values compared a cycle, by the engine and by SpAtten's model.
COMPARATORS = 8
#: (n, k) of the comparison.
CASES = [(n, k) for n in (64, 128, 256) for k in (n // 8, n // 4, n // 2)]
#: The rows of each case: random, MiniLM ``S_sel`` (the preset's), MiniLM ``S_int``.
DATA = ("random", "MiniLM", "MiniLM S_int")


def _width() -> int:
    return HDPConfig.preset("default").sint_bits


@lru_cache(maxsize=2)
def minilm_rows(unbiased: bool = True) -> tuple:
    """The 64-block rows (each a tuple of ``BI``: ``S_sel`` with ``unbiased``, else
    ``S_int``) of the stored MiniLM heads of 64 tokens at ``default`` with the ``topk``
    selector, head by head."""
    import golden
    from golden.vectors import load_minilm_heads
    config = HDPConfig.preset("default").replace(selector="topk",
                                                 unbiased_selection=unbiased)
    heads = []
    for head in load_minilm_heads():
        if head.regs.seq_len < 64:
            continue
        res = golden.attention_head(head.q, head.k, head.v, config, head.regs,
                                    matmul=golden.float64_matmul)
        rows = [tuple(int(x) for x in bi[bv]) for bi, bv in
                zip(res.block_importance, res.block_valid)]
        heads.append(tuple(r for r in rows if len(r) == 64))
    return tuple(heads)


def _minilm(n: int, count: int, unbiased: bool = True) -> list[list[int]]:
    """``count`` MiniLM rows of ``n``: ``n / 64`` consecutive block rows of a head."""
    per = n // 64
    out = []
    for rows in minilm_rows(unbiased):
        for i in range(0, len(rows) - per + 1, per):
            out.append([v for r in rows[i:i + per] for v in r])
    step = max(1, len(out) // count)
    return out[::step][:count]


def bench_rows(per_case: int = 1, seeds: int = 20) -> list[dict]:
    """Per case and data, ``per_case`` rows: ``{n, k, data, width, values, engine,
    passes, words, spatten}`` (``spatten``: the quick-select model's mean over pivot
    seeds ``0 .. seeds - 1``)."""
    width = _width()
    rng = np.random.default_rng(12)
    out = []
    for n, k in CASES:
        random_rows = [[int(x) for x in rng.integers(-(1 << (width - 1)), 1 << (width - 1), n)]
                       for _ in range(per_case)]
        for data, rows in (("random", random_rows), ("MiniLM", _minilm(n, per_case)),
                           ("MiniLM S_int", _minilm(n, per_case, unbiased=False))):
            for vals in rows:
                plan = select_plan(vals, k, width, COMPARATORS)
                qs = float(np.mean([quickselect_cycles(vals, k, COMPARATORS, s)
                                    for s in range(seeds)]))
                out.append({"n": n, "k": k, "data": data, "width": width, "values": vals,
                            "engine": plan["cycles"], "passes": plan["passes"],
                            "words": plan["words"], "spatten": qs})
    return out


def summary(rows: list[dict]) -> list[dict]:
    """Means (and the largest engine/model ratio) per (n, k, data)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["n"], r["k"], r["data"]), []).append(r)
    out = []
    for (n, k, data), rs in groups.items():
        out.append({"n": n, "k": k, "data": data, "rows": len(rs),
                    "passes": float(np.mean([r["passes"] for r in rs])),
                    "engine": float(np.mean([r["engine"] for r in rs])),
                    "spatten": float(np.mean([r["spatten"] for r in rs])),
                    "worst": max(r["engine"] / r["spatten"] for r in rs),
                    "over": sum(r["engine"] > r["spatten"] for r in rs)})
    return out


def table(rows: list[dict]) -> str:
    """A markdown table of :func:`summary`."""
    lines = ["| n | k | data | rows | counting passes | engine cycles (take to mask) "
             "| SpAtten quick-select (model) | engine / model | worst row | rows above the model |",
             "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in summary(rows):
        lines.append(f"| {s['n']} | {s['k']} | {s['data']} | {s['rows']} | {s['passes']:.1f} | "
                     f"{s['engine']:.1f} | {s['spatten']:.1f} | "
                     f"{s['engine'] / s['spatten']:.2f} | {s['worst']:.2f} | {s['over']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    per_case = int(argv[0]) if argv else 20
    print(table(bench_rows(per_case=per_case, seeds=20)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
