"""The other methods' rows of ``make bench`` without a simulator (sim/bench_methods.py):
the matched threshold, the channel masks, the side-by-side table."""
import dataclasses

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from sim import bench_methods as bm
from sim.topk_match import keep_fraction

CFG = HDPConfig(seq_max=16, head_dim=4, int_lanes=1, mac_lanes=1, axis_elems=1)
TH = bm.threshold_config(CFG)


def _head(rng, n):
    return tuple(rng.integers(CFG.data_min, CFG.data_max + 1, size=(n, 4)) for _ in range(3))


def _regs(n, **kw):
    return Registers(seq_len=n, score_scale=1 << 19, block_prune_enable=True, **kw)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_for_keep_is_the_closest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 17))
    q, k, v = _head(rng, n)
    regs = _regs(n, causal=int(seed % 2))
    target = float(rng.uniform(0.05, 0.95))
    got, keep = bm.threshold_for_keep(q, k, v, TH, regs, target)
    lo, hi = -(1 << (TH.sint_bits - 1)), (1 << (TH.sint_bits - 1))
    res = golden.attention_head(q, k, v, TH, regs)
    # every threshold that can change the kept set: the valid scores and one above
    cands = sorted({int(x) for x in res.s_int[res.valid]} | {lo, hi - 1})
    every = {t: keep_fraction(q, k, v, TH, dataclasses.replace(regs, score_threshold=t))
             for t in cands}
    assert keep == keep_fraction(q, k, v, TH, dataclasses.replace(regs, score_threshold=got))
    assert abs(keep - target) == min(abs(f - target) for f in every.values())


def test_threshold_for_keep_needs_threshold():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        bm.threshold_for_keep(*_head(rng, 8), CFG, _regs(8), 0.5)


def test_channel_mask_for_keeps_the_largest():
    q = np.array([[1, 0, 3, -2], [1, 0, -3, 2]])
    k = np.array([[1, 5, 1, 1], [1, 5, 1, 1]])
    assert bm.channel_mask_for(q, k, 2, 4).tolist() == [False, False, True, True]
    assert bm.channel_mask_for(q, k, 3, 4).tolist() == [True, False, True, True]
    # a narrow head: its padding channels come last
    assert bm.channel_mask_for(q[:, :2], k[:, :2], 3, 4).tolist() == [True, True, True, False]


def test_channel_jobs_only_with_the_mask():
    rng = np.random.default_rng(1)
    q, k, v = _head(rng, 6)
    heads = [("w", q, k, v, dataclasses.asdict(_regs(6)))]
    jobs = bm.channel_jobs(CFG.replace(channel_pruning=True), heads, {})
    assert len(jobs) == 1 and sum(jobs[0][3]["channel_mask"]) == 2
    assert bm.channel_jobs(CFG.replace(channel_pruning=False), heads, {}) == []


def test_report_puts_every_method_side_by_side():
    hdp_rows = [{"workload": "w", "n": 16, "mode": m, "keep": kp, "total": t, "int": 10}
                for m, kp, t in (("dense", 1.0, 1000), ("pruned", 0.4, 600))]
    topk = [{"workload": "w", "keep": 0.41, "total": 700, "int": 30}]
    counters = dict.fromkeys(("cycles_total", "cycles_load", "cycles_int", "cycles_attn",
                              "cycles_out", "heads_pruned", "blocks_kept", "blocks_pruned",
                              "score_macs", "mac_busy", "words_in", "words_out"), 0)
    regs = {"seq_len": 5, "causal": 0}             # 25 valid pairs, head_dim 4
    results = [{"workload": "w", "mode": "threshold", "regs": regs,
                "counters": {**counters, "cycles_total": 650, "int_macs": 100, "pv_macs": 39}},
               {"workload": "w", "mode": "channels", "regs": {"seq_len": 5, "causal": 1},
                "counters": {**counters, "cycles_total": 500, "int_macs": 30, "pv_macs": 60}}]
    rows = bm.method_rows(CFG, hdp_rows, topk, results)
    assert rows[0]["threshold"]["keep"] == 0.39 and rows[0]["channels"]["total"] == 500
    assert rows[0]["channels"]["keep"] == 1.0       # causal: 15 valid pairs, all kept
    text = bm.report(CFG, "tiny", rows, "make bench")
    assert "| w | 16 | 1000 | 40%: 600 (0.60x) | 41%: 700 (0.70x) | 39%: 650 (0.65x) " \
           "| 100%: 500 (0.50x) |" in text
