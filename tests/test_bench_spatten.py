"""SpAtten's rows of ``make bench`` without a simulator (sim/topk_match.py,
sim/cascade.py, sim/bench_spatten.py): the block_k matching, the radix pass count, the
cascade's per-layer accounting and the report, each against a brute force or a count
made here."""
import dataclasses

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.eval.spatten import keep_counts
from hdp_rtl.host import Counters
from hdp_rtl.rtl.topk import RADIX_BITS, select_plan
from sim import bench_spatten as sp
from sim.cascade import synthetic_cascade
from sim.topk_match import (block_k_for_keep, keep_fraction, radix_passes, selection_rows,
                            selection_summary)

CFG = HDPConfig(seq_max=16, head_dim=4, int_lanes=1, mac_lanes=1, axis_elems=1)
TOPK = CFG.replace(selector="topk")


def _head(rng, n, config=CFG):
    return tuple(rng.integers(config.data_min, config.data_max + 1, size=(n, 4))
                 for _ in range(3))


def _regs(n, **kw):
    return Registers(seq_len=n, score_scale=1 << 19, block_prune_enable=True, **kw)


# ---- top-k matching --------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_block_k_for_keep_is_the_closest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 17))
    q, k, v = _head(rng, n)
    regs = _regs(n, causal=int(seed % 2))
    target = float(rng.uniform(0.05, 0.95))
    got, keep = block_k_for_keep(q, k, v, TOPK, regs, target)
    every = {b: keep_fraction(q, k, v, TOPK, dataclasses.replace(regs, block_k=b))
             for b in range(1, n + 1)}
    assert keep == every[got]
    assert abs(keep - target) == min(abs(f - target) for f in every.values())
    assert got == min(b for b, f in every.items() if abs(f - target) == abs(keep - target))


def test_block_k_for_keep_needs_topk():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        block_k_for_keep(*_head(rng, 8), CFG, _regs(8), 0.5)


def _brute_passes(values, k, width):
    """The engine's counting passes from their definition: the keys are the values less
    the row's minimum, shifted left until the span's bits are a whole number of
    RADIX_BITS-bit digits, cut into those digits; the passes are the fewest top digits
    ``j`` after which the keys whose top ``j`` digits are at least the k-th largest
    key's are exactly ``k`` (every digit if never; 0 for k <= 0, k >= n or equal
    values)."""
    n = len(values)
    keys = sorted((v - min(values) for v in values), reverse=True)
    if k <= 0 or k >= n or keys[0] == 0:
        return 0
    bits = keys[0].bit_length()
    shift = -bits % RADIX_BITS
    digits = (bits + shift) // RADIX_BITS
    top = lambda x, j: (x << shift) >> (RADIX_BITS * (digits - j))  # noqa: E731
    kth = keys[k - 1]
    return next((j for j in range(1, digits + 1)
                 if sum(1 for x in keys if top(x, j) >= top(kth, j)) == k), digits)


def test_radix_passes():
    assert radix_passes([3, 1, 2], 0, 4) == radix_passes([3, 1, 2], 3, 4) == 0
    assert radix_passes([5] * 8, 3, 6) == 0                 # all equal: no digit differs
    assert radix_passes(list(range(-8, 8)), 8, 4) == 1      # one digit holds the span
    assert radix_passes([0, 255, 16, 17], 2, 9) == 2        # 16 and 17 share the top digit
    rng = np.random.default_rng(1)
    for _ in range(300):
        width = int(rng.integers(4, 15))
        n = int(rng.integers(1, 20))
        vals = [int(x) for x in rng.integers(-(1 << (width - 1)), 1 << (width - 1), n)]
        if rng.random() < 0.3:                              # rows sharing their high bits
            vals = [v % 4 + 1 for v in vals]
        k = int(rng.integers(0, n + 2))
        assert radix_passes(vals, k, width) == _brute_passes(vals, k, width), (vals, k)


def test_selection_rows():
    rng = np.random.default_rng(2)
    q, k, v = _head(rng, 12)
    regs = _regs(12, causal=1, block_k=3)
    res = golden.attention_head(q, k, v, TOPK, regs)
    rows = selection_rows(res, 3, TOPK, seeds=2)
    assert [r["nb"] for r in rows] == list(range(1, 13))    # causal, 1 x 1 blocks
    for r, bi in zip(rows, res.block_importance):
        passes = radix_passes([int(x) for x in bi[:r["nb"]]], 3, TOPK.sint_bits)
        plan = select_plan([int(x) for x in bi[:r["nb"]]], 3, TOPK.sint_bits, 8)
        assert r["passes"] == passes == plan["passes"] and r["row_cycles"] == plan["cycles"]
        assert r["nb"] > 3 or passes == 0
        assert r["scorer"] == 4 * r["nb"]                    # d / int_lanes = 4 a block
    s = selection_summary(rows)
    assert s["rows"] == 12
    assert s["paced_topk"] == sum(max(4 * nb, nb + 1, r["row_cycles"])
                                  for nb, r in zip(range(1, 13), rows))
    assert s["paced_hdp"] == sum(4 * nb for nb in range(1, 13))
    # 1 x 4 blocks, causal: the scorer's cycles are those of the row's valid pairs
    wide = TOPK.replace(block_cols=4)
    res4 = golden.attention_head(q, k, v, wide, regs)
    assert [r["scorer"] for r in selection_rows(res4, 3, wide, seeds=1)] == \
        [4 * (r + 1) for r in range(12)]
    # the selector works through a head-pruned head's integer pass too
    assert selection_rows(dataclasses.replace(res, head_pruned=True), 3, TOPK, seeds=2) == rows
    assert selection_summary([])["rows"] == 0


# ---- cascade ---------------------------------------------------------------------------

def test_cascade_accounting():
    casc, source = synthetic_cascade(CFG, 16, 0.5, 0.5, layers=3, heads=4)
    assert "synthetic" in source
    tokens, heads = keep_counts(16, 0.5, 3), keep_counts(4, 0.5, 3)
    assert [r["tokens"] for r in casc.records] == tokens
    assert [r["heads"] for r in casc.records] == heads
    for r, (alive, head_alive) in zip(casc.records, casc.history):
        assert r["tokens"] == alive.sum() and r["heads"] == head_alive.sum()
        assert r["heads_skipped"] == 4 - r["heads"]
        assert r["beats"] == r["heads"] * 3 * r["tokens"] * CFG.beats_per_row
        assert r["beats_full"] == 4 * 3 * 16 * CFG.beats_per_row
    # two gathered heads a layer, of the layer's alive tokens, pruning off; each is the
    # alive rows of that head, quantised
    assert [(l, regs.seq_len) for l, _, _, _, _, regs in casc.core_heads] == \
        [(layer, t) for layer, t in enumerate(tokens) for _ in range(2)]
    assert all(not regs.block_prune_enable and not regs.head_prune_enable
               for *_, regs in casc.core_heads)
    assert [h for l, h, *_ in casc.core_heads if l == 0] == [0, 3]


def _counters(total):
    return dataclasses.asdict(Counters(**{f.name: 0 for f in dataclasses.fields(Counters)})
                              ) | {"cycles_total": total}


def test_cascade_rows_and_report():
    casc, source = synthetic_cascade(CFG, 16, 0.5, 0.5, layers=3, heads=4)
    jobs = sp.cascade_jobs(CFG, casc)
    results = [{**meta, "counters": _counters(100 * meta["regs"]["seq_len"])}
               for *_, meta in jobs]
    rows = sp.cascade_rows(casc, results)
    for r in rows:
        assert r["cycles"] == r["heads"] * 100 * r["tokens"]
        assert r["cycles_full"] == 4 * 100 * 16
    topk = [{"workload": "w", "n": 16, "block_k": 2, "keep_hdp": 0.3, "keep": 0.25, "int": 900,
             "total": 1500, "ideal": 1000.0, "vs_ideal": 1.5, "hdp_int": 300, "hdp_total": 900,
             "hdp_vs_ideal": 1.1, "selection": selection_summary([])}]
    text = sp.report(CFG, "tiny", topk, rows, source, "make bench")
    assert "| all |" in text and "no valid block" in text and "1.67x" in text
