"""Attention methods of the MiniLM evaluation: the HDP method is the golden model bit
for bit, and the baselines prune what they say (NumPy only)."""
import math

import numpy as np
import pytest

import golden
from hdp_rtl.eval.attention import Dense, FixedThreshold, HDPAttention, PruneStats, TopK
from hdp_rtl.eval.model import dense_attention, gelu
from hdp_rtl.eval.sweep import base_config

CFG = base_config().replace(block_rows=2, block_cols=4)   # default preset, head_dim 32


@pytest.mark.parametrize("seed", range(6))
def test_hdp_head_is_the_golden_head(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 90))
    xq, xk, xv = rng.standard_normal((3, n, 32)) * rng.uniform(0.2, 5, 3)[:, None, None]
    fields = [dict(block_rule=0, rho=int(rng.integers(-256, 257))),
              dict(logit_gap=float(rng.uniform(0.5, 8))),
              dict(block_prune_enable=False, approx_enable=False),
              dict(causal=True, delta=int(rng.integers(0, 40)))][seed % 4]
    gap = fields.pop("logit_gap", None)
    out, res, regs, (q, k, v) = HDPAttention(CFG, logit_gap=gap, **fields).head(0, xq, xk, xv)
    ref = golden.attention_head(q, k, v, CFG, regs)
    for f in ("out", "keep", "probs", "block_keep"):
        np.testing.assert_array_equal(getattr(res, f), getattr(ref, f), err_msg=f)
    _, _, ev = golden.prepare_head(xq, xk, xv, CFG)[4]
    np.testing.assert_array_equal(out, ref.out * 2.0 ** (ev - CFG.out_frac))


def _heads(n=20, h=3, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, h, n, 32)) * scale


def test_dense_counts_every_pair():
    q, k, v = _heads()
    m = Dense()
    np.testing.assert_allclose(m(0, q, k, v), dense_attention(0, q, k, v))
    assert m.stats.heads == 3 and m.stats.pairs_valid == 3 * 400 and m.stats.pruned == 0


def test_hdp_attention_dequantises_and_counts():
    q, k, v = _heads(scale=0.6)      # logits of a few units, as in a real model
    m = HDPAttention(CFG, block_prune_enable=False)
    out = m(0, q, k, v)
    np.testing.assert_allclose(out, dense_attention(0, q, k, v), atol=0.05)
    assert m.stats.pruned == 0 and m.stats.heads == 3
    pruning = HDPAttention(CFG, logit_gap=2.0)
    pruning(0, *_heads(scale=2.0))
    assert 0 < pruning.stats.pruned < 1 and pruning.stats.head_pruned == 0


def test_hdp_head_thresholds_prune_heads():
    q, k, v = _heads()
    m = HDPAttention(CFG, head_thresholds=[1e9])
    out = m(0, q, k, v)
    assert not out.any()
    assert m.stats.heads_pruned == 3 and m.stats.head_pruned == 1.0 and m.stats.block_pruned == 0


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.1])
def test_topk_keeps_k_per_row(keep):
    q, k, v = _heads(n=20, h=2)
    m = TopK(keep)
    out = m(1, q, k, v)
    kk = max(1, int(math.floor(keep * 20 + 0.5)))
    assert m.stats.pairs_kept == 2 * 20 * kk
    if keep == 1.0:
        np.testing.assert_allclose(out, dense_attention(1, q, k, v))


def test_fixed_threshold_always_keeps_the_row_max():
    q, k, v = _heads(n=16, h=2)
    m = FixedThreshold([np.inf, -np.inf])
    out = m(0, q, k, v)             # only each row's best key
    s = q @ k.transpose(0, 2, 1)
    best = s.argmax(axis=-1)
    np.testing.assert_allclose(out, np.take_along_axis(v, best[..., None], axis=1))
    assert m.stats.pairs_kept == 2 * 16
    m(1, q, k, v)
    assert m.stats.per_layer[1] == [512, 512]


def test_prune_stats_split_blocks_and_heads():
    st = PruneStats()
    st.add(0, 100, 40)
    st.add(0, 100, 0, head_pruned=True)
    assert st.pruned == pytest.approx(0.8)
    assert st.head_pruned == pytest.approx(0.5) and st.block_pruned == pytest.approx(0.3)
    assert st.heads_pruned_frac == 0.5


def test_prune_stats_merge_and_head_pairs():
    a, b = PruneStats(), PruneStats()
    a.add(0, 100, 40)
    a.add_tokens(10, 4)
    b.add(0, 100, 0, head_pruned=True, head_pairs=36)   # 64 of its pairs pruned by tokens
    b.add(1, 100, 36)
    b.add_rows(6, 2)
    a.merge(b)
    assert (a.heads, a.pairs_valid, a.pairs_kept, a.pairs_head_pruned) == (3, 300, 76, 36)
    assert a.head_pruned == pytest.approx(0.12)
    assert a.block_pruned == pytest.approx(224 / 300 - 0.12)
    assert a.per_layer == {0: [200, 40], 1: [100, 36]}
    assert a.tokens_pruned == 0.4 and a.rows_redone_frac == pytest.approx(1 / 3)
    assert PruneStats().rows_redone_frac is None


def test_gelu():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    erf = np.array([math.erf(t / math.sqrt(2)) for t in x])
    np.testing.assert_allclose(gelu(x), 0.5 * x * (1 + erf), atol=1e-7)
