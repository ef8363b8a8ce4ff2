"""Channel pruning (issue 13, item 2): the golden model's channel mask
(golden/channels.py), the training-free channel criteria and the channel method of the
MiniLM evaluation (hdp_rtl/eval/channels.py), and the one comparison table of every
method (hdp_rtl/eval/sweep.py METHODS, hdp_rtl/eval/report.py). NumPy only, seconds."""
import math

import numpy as np
import pytest

import golden
from golden import channels as gch
from hdp_rtl.config import ConfigError, HDPConfig
from hdp_rtl.eval import sweep as S
from hdp_rtl.eval.attention import HDPAttention, PruneStats
from hdp_rtl.eval.channels import (CRITERIA, ChannelAttention, attention_difference,
                                   contribution_gram, select_channels, similarity_scores)
from hdp_rtl.eval.report import comparison_table

EVAL_CFG = S.hdp_config(S.base_config(), S.DEFAULT_HDP)       # head_dim 32, I4F4, 1x1


def int_head(rng, cfg, n, d=None):
    d = cfg.head_dim if d is None else d
    lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1))
    return (rng.integers(lo, hi, (n, d)) for _ in range(3))


def regs_for(rng, cfg, n, **kw):
    fields = dict(seq_len=n, score_scale=int(rng.integers(1 << 12, 1 << 18)),
                  delta=int(rng.integers(0, 60)), causal=bool(rng.integers(2)),
                  approx_enable=bool(rng.integers(2)))
    fields.update(kw)
    return golden.prepare_head(np.ones((n, 4)), np.ones((n, 4)), np.ones((n, 4)), cfg,
                               logit_gap=None, **fields)[3]


CONFIGS = [HDPConfig.preset("default"), HDPConfig.preset("edge"), EVAL_CFG]


# ---- golden: the channel mask ------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_masked_channels_contribute_nothing(seed):
    """Zeroing the masked channels of Q and K is summing over the kept channels only, and
    zeroing them in Q alone or in K alone gives the same S_int and full scores; the
    selection score S_sel needs K's zeroed (Q's alone leaves K's masked channels' sum)."""
    rng = np.random.default_rng(seed)
    cfg = CONFIGS[seed % 3]
    n = int(rng.integers(1, 40))
    q, k, _ = int_head(rng, cfg, n)
    mask = rng.random(cfg.head_dim) < rng.uniform(0.1, 0.9)
    qm, km = gch.apply_channel_mask(q, mask), gch.apply_channel_mask(k, mask)
    assert not qm[:, ~mask].any() and (qm[:, mask] == q[:, mask]).all()
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    by_sum = np.einsum("rd,cd->rc", qi[:, mask], ki[:, mask])       # int64, kept channels
    s_int = gch.masked_integer_scores(qi, ki, mask)
    np.testing.assert_array_equal(s_int, by_sum)
    for a, b in ((qm, km), (qm, k), (q, km)):
        ai, _ = golden.split(a, cfg)
        bi, _ = golden.split(b, cfg)
        np.testing.assert_array_equal(golden.integer_scores(ai, bi), s_int)
        for approx in (False, True):
            np.testing.assert_array_equal(golden.full_scores(a, b, cfg, approx),
                                          gch.masked_full_scores(q, k, mask, cfg, approx))
    unbiased = cfg.replace(unbiased_selection=True)
    s_sel = gch.masked_selection_scores(qi, ki, mask, unbiased)
    np.testing.assert_array_equal(s_sel, np.einsum("rd,cd->rc", 2 * qi[:, mask] + 1,
                                                   ki[:, mask]))
    for a, b in ((qm, km), (q, km)):
        ai, _ = golden.split(a, cfg)
        bi, _ = golden.split(b, cfg)
        np.testing.assert_array_equal(golden.selection_scores(ai, bi, unbiased), s_sel)
    qmi, _ = golden.split(qm, cfg)
    np.testing.assert_array_equal(golden.selection_scores(qmi, ki, unbiased),
                                  s_sel + ki[:, ~mask].sum(axis=1)[None, :])


@pytest.mark.parametrize("seed", range(6))
def test_channel_head_is_the_head_on_zeroed_channels(seed):
    rng = np.random.default_rng(10 + seed)
    cfg = CONFIGS[seed % 3]
    n = int(rng.integers(1, min(cfg.seq_max, 48)))
    q, k, v = int_head(rng, cfg, n)
    regs = regs_for(rng, cfg, n, block_rule=seed % 2)
    mask = rng.random(cfg.head_dim) < 0.6
    res = gch.attention_head_channels(q, k, v, cfg, regs, mask, matmul=golden.float64_matmul)
    ref = golden.attention_head(gch.apply_channel_mask(q, mask), gch.apply_channel_mask(k, mask),
                                v, cfg, regs)
    for f in ("out", "s_int", "scores", "probs", "keep", "block_keep", "exps"):
        np.testing.assert_array_equal(getattr(res, f), getattr(ref, f), err_msg=f)
    np.testing.assert_array_equal(
        res.s_int, np.where(res.valid, gch.masked_selection_scores(
            golden.split(q, cfg)[0], golden.split(k, cfg)[0], mask, cfg), 0))
    kept = int(mask.sum())
    assert res.int_macs == kept * res.pairs_valid and res.score_macs == kept * res.pairs_kept
    assert res.pv_macs == cfg.head_dim * res.pairs_kept


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["default", "edge"])
def test_every_channel_kept_is_the_head_bit_for_bit(cfg):
    rng = np.random.default_rng(3)
    n = 37 if cfg.seq_max >= 37 else cfg.seq_max
    q, k, v = int_head(rng, cfg, n)
    regs = regs_for(rng, cfg, n)
    res = gch.attention_head_channels(q, k, v, cfg, regs, gch.full_mask(cfg.head_dim))
    ref = golden.attention_head(q, k, v, cfg, regs)
    for f in ref.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(res, f), getattr(ref, f), err_msg=f)


def test_no_channel_kept_gives_zero_scores():
    cfg = HDPConfig.preset("default")
    rng = np.random.default_rng(4)
    n = 21
    q, k, v = int_head(rng, cfg, n)
    regs = regs_for(rng, cfg, n, causal=False, block_rule=1)
    res = gch.attention_head_channels(q, k, v, cfg, regs, np.zeros(cfg.head_dim, bool))
    assert not res.s_int.any() and not res.scores.any() and res.head_importance == 0
    assert res.keep.all()                       # every BI = 0 = the row's max
    assert (res.probs == res.probs[0, 0]).all()  # uniform rows
    assert res.int_macs == 0 and res.score_macs == 0


def test_mask_words_chunks_and_packing():
    cfg = HDPConfig.preset("default")
    mask = gch.mask_from_bits(0b1011 << 20 | 0b1, cfg.head_dim)
    assert mask.sum() == 4 and mask[0] and mask[20] and not mask[22]
    assert gch.mask_to_bits(mask) == 0b1011 << 20 | 0b1
    with pytest.raises(ConfigError):
        gch.mask_from_bits(1 << cfg.head_dim, cfg.head_dim)
    with pytest.raises(ConfigError):
        gch.check_mask(np.ones(cfg.head_dim - 1, bool), cfg)
    assert gch.active_chunks(mask, 16) == 2 and gch.active_chunks(mask, 64) == 1
    assert gch.active_chunks(np.zeros(64, bool), 16) == 0
    rng = np.random.default_rng(5)
    q, k, _ = int_head(rng, cfg, 9)
    qp, kp, packed = gch.pack_kept_channels(q, k, mask)
    assert packed[:4].all() and not packed[4:].any() and gch.active_chunks(packed, 16) == 1
    for approx in (False, True):
        np.testing.assert_array_equal(gch.masked_full_scores(qp, kp, packed, cfg, approx),
                                      gch.masked_full_scores(q, k, mask, cfg, approx))


# ---- the criteria on small synthetic heads -----------------------------------------------

def centred_contributions(q, k):
    d = q.shape[1]
    kc = k - k.mean(axis=0)
    return np.stack([np.outer(q[:, c], kc[:, c]) / math.sqrt(d) for c in range(d)])


def test_contribution_gram_is_the_gram_of_the_centred_contributions():
    rng = np.random.default_rng(6)
    q, k = rng.standard_normal((2, 11, 8))
    c = centred_contributions(q, k).reshape(8, -1)
    np.testing.assert_allclose(contribution_gram(q, k), c @ c.T, rtol=1e-10, atol=1e-12)
    # a constant key channel changes no softmax row: no contribution
    k[:, 3] = 2.5
    assert np.allclose(contribution_gram(q, k)[3], 0)


def test_similarity_prefers_a_distinct_channel_over_duplicates():
    rng = np.random.default_rng(7)
    n = 30
    q, k = rng.standard_normal((2, n, 4))
    q[:, 1], k[:, 1] = q[:, 0], k[:, 0]          # channels 0 and 1 duplicate each other
    q[:, 3] = 0                                   # channel 3 contributes nothing
    scale = np.sqrt(np.diag(contribution_gram(q, k)))
    q[:, 2] *= scale[0] / scale[2]                # channel 2 as large as channel 0
    g = contribution_gram(q, k)
    s = similarity_scores(g)
    assert s[3] == 0 and s[0] == pytest.approx(s[1])
    assert s[2] > s[0] > 0
    np.testing.assert_array_equal(select_channels(s, 2), [True, False, True, False])


def test_attention_difference_is_the_mean_row_change():
    rng = np.random.default_rng(8)
    n, d = 13, 6
    q, k = rng.standard_normal((2, n, d))
    q[:, 4] = 0                                   # no contribution: no change
    q[:, 5] *= 6                                  # a dominating channel
    diff = attention_difference(q, k)

    def softmax(s):
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p = softmax(q @ k.T / math.sqrt(d))
    for c in range(d):
        qc = q.copy()
        qc[:, c] = 0
        ref = 0.5 * np.abs(p - softmax(qc @ k.T / math.sqrt(d))).sum()
        assert diff[c] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert diff[4] == pytest.approx(0, abs=1e-12) and diff.argmax() == 5


def test_select_channels_keeps_the_same_number_in_every_head():
    scores = np.array([[[3, 1, 2, 2], [0, 0, 0, 0]], [[1, 2, 3, 4], [4, 3, 2, 1]]], float)
    m = select_channels(scores, 2)
    assert (m.sum(axis=-1) == 2).all()
    np.testing.assert_array_equal(m[0, 0], [True, False, True, False])   # tie: lower index
    np.testing.assert_array_equal(m[0, 1], [True, True, False, False])
    np.testing.assert_array_equal(m[1, 1], [True, True, False, False])
    assert select_channels(scores, 0).sum() == 0 and select_channels(scores, 9).all()


def fake_calibration(lengths, seed=0, layers=2, heads=3):
    rng = np.random.default_rng(seed)
    return S.Calibration(qk=[[tuple(rng.standard_normal((2, heads, n, 32)).astype(np.float32))
                              for _ in range(layers)] for n in lengths])


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_calibrated_masks_come_from_the_calibration_inputs_only(criterion):
    cal = fake_calibration([5, 7, 6, 9])
    cc = S.CrossCalibration(cal)
    for i in range(4):
        part = cc.for_input(i)
        masks = part.channel_masks(criterion, 12)
        assert masks.shape == (2, 3, 32) and (masks.sum(axis=-1) == 12).all()
        own = fake_calibration([5, 7, 6, 9]).subset([j for j in range(4) if cc.fold[j] != cc.fold[i]])
        np.testing.assert_array_equal(masks, own.channel_masks(criterion, 12))
    # per-input statistics are computed once and shared by the folds
    assert cc.for_input(0)._inputs is cc.for_input(3)._inputs is cal._inputs
    kinds = {key[0] for key in cal._inputs}
    assert len(cal._inputs) == 4 * len(kinds)
    with pytest.raises(ValueError):
        cal.channel_scores("nonsense")


def test_scores_sum_over_inputs():
    cal = fake_calibration([5, 8], layers=1, heads=1)
    (q0, k0), = cal.qk[0]
    (q1, k1), = cal.qk[1]
    q0, k0, q1, k1 = (x[0].astype(float) for x in (q0, k0, q1, k1))
    np.testing.assert_allclose(cal.channel_scores("similarity")[0, 0],
                               similarity_scores(contribution_gram(q0, k0)
                                                 + contribution_gram(q1, k1)))
    np.testing.assert_allclose(cal.channel_scores("attention")[0, 0],
                               (attention_difference(q0, k0) + attention_difference(q1, k1)) / 13)


# ---- the eval's channel method -----------------------------------------------------------

def test_channel_method_is_the_golden_channel_head():
    rng = np.random.default_rng(9)
    h, n = 3, 17
    q, k, v = rng.standard_normal((3, h, n, 32)) * 0.7
    masks = select_channels(rng.random((1, h, 32)), 20)
    m = ChannelAttention(EVAL_CFG, masks)
    out = m(0, q, k, v)
    for hh in range(h):
        xq, xk = (gch.apply_channel_mask(x[hh], masks[0, hh]) for x in (q, k))
        qq, kq, vq, regs, (_, _, ev) = golden.prepare_head(xq, xk, v[hh], EVAL_CFG,
                                                           logit_gap=None,
                                                           block_prune_enable=False)
        ref = gch.attention_head_channels(qq, kq, vq, EVAL_CFG, regs, masks[0, hh])
        np.testing.assert_array_equal(out[hh], ref.out * 2.0 ** (ev - EVAL_CFG.out_frac))
    st = m.stats
    assert st.pruned == 0 and st.pruned_work == pytest.approx((1 - 20 / 32) / 2)
    assert st.qk_columns_skipped == h * n * 12
    full = ChannelAttention(EVAL_CFG, np.ones((1, h, 32), bool))
    np.testing.assert_array_equal(full(0, q, k, v),
                                  HDPAttention(EVAL_CFG, block_prune_enable=False)(0, q, k, v))
    assert full.stats.pruned_work == 0
    with pytest.raises(ValueError):
        ChannelAttention(EVAL_CFG, masks, head_thresholds=[1.0])


def test_pruned_work_counts_pairs_and_channels():
    st = PruneStats()
    st.add(0, 100, 40)                              # pairs only: work = pairs
    assert st.pruned_work == pytest.approx(st.pruned) == pytest.approx(0.6)
    other = PruneStats()
    other.add(0, 100, 100, score_frac=0.5, qk_columns_skipped=7)
    assert other.pruned_work == pytest.approx(0.25) and other.pruned == 0
    st.merge(other)
    assert st.score_kept == 90 and st.qk_columns_skipped == 7
    assert st.pruned_work == pytest.approx(1 - (140 + 90) / 400)


# ---- the one comparison ----------------------------------------------------------------

def row(group, method, pruned, work=None, label=None, **kw):
    r = dict(dataset="p", group=group, method=method, label=label or f"{group} {pruned}",
             pruned=pruned, cos_mean=0.99, cos_min=0.98, spearman=0.97, nn_agree=1.0,
             model_macs_pruned=0.01, calibration=None)
    if work is not None:
        r["pruned_work"] = work
    r.update(kw)
    return r


def test_comparison_rows_follow_the_method_list():
    rows = [row("top-k oracle", "topk", 0.5, 0.5), row("delta rule 1x1", "hdp", 0.6, 0.6),
            row("HDP default", "hdp", 0.51, 0.51), row("dense", "dense", 0.0, 0.0),
            row("channels: attention difference", "channels", 0.0, 0.25,
                calibration="2-fold cross-fitted"),
            row("channels: attention difference", "channels", 0.0, 0.125),
            row("SpAtten tokens", "spatten", 0.4),            # a row from before pruned_work
            row("delta rule 1x8", "hdp", 0.3, 0.3),            # in no method of the list
            row("quantisation only", "hdp", 0.0, 0.0),
            dict(row("HDP default", "hdp", 0.2, 0.2), dataset="s")]
    got = S.comparison_rows(rows, "p")
    names = [m.name for m, _ in got]
    order = [m.name for m in S.METHODS]
    assert names == sorted(names, key=order.index)
    by = {m.family + ":" + m.name: [r["label"] for r in rs] for m, rs in got}
    hdp = next(rs for m, rs in got if m.name.startswith("HDP delta rule 1x1"))
    assert [r["pruned"] for r in hdp] == [0.51, 0.6]
    ch = next(rs for m, rs in got if m.name == "channel pruning, attention difference")
    assert [S.pruned_work(r) for r in ch] == [0.125, 0.25]
    assert all("1x8" not in label for labels in by.values() for label in labels)
    assert names[0] == "dense (float)" and "top-k oracle" == names[-1]
    table = comparison_table(rows, "p")
    assert table.count("\n") == 2 + 8 - 1          # header, rule, 8 rows of "p" in methods
    assert "| 25.0% | 0.0% |" in table and "other half" in table and "| 40.0% | 40.0% |" in table


def test_every_method_has_settings_and_every_family_a_method():
    settings = S.sweep_settings() + S.baselines_at(0.5, "x")
    for m in S.METHODS:
        assert any(s.method == m.family and s.group in m.groups for s in settings), m.name
    assert {m.family for m in S.METHODS} == set(S.FAMILIES)
    ch = [s.p for s in settings if s.method == "channels" and not s.p.get("hdp")]
    assert {(p["criterion"], p["keep"]) for p in ch} == {
        (c, keep) for c in CRITERIA for keep in S.CHANNEL_KEEPS}
    assert {s.method for s in S.quick_settings()} == {"dense", "hdp", "channels"}
    assert S.uses_calibration(S.channels("attention", 16))
    assert not S.uses_calibration(S.hdp("x")) and not S.uses_calibration(S.dense())


def test_dense_row_reuses_the_dense_embeddings():
    class NoModel:                                   # a dense row must not run the model
        heads, head_dim = 2, 32
        layers = [type("L", (), dict(wq=np.zeros((8, 8)), wk=np.zeros((8, 8)),
                                     wv=np.zeros((8, 8)), wo=np.zeros((8, 8)),
                                     wi=np.zeros((8, 4)), wo2=np.zeros((4, 8))))] * 3

        def embed_ids(self, *a):
            raise AssertionError("the dense pass ran again")

    ds = S.Dataset("d", ["a", "b", "c"], [np.arange(3), np.arange(5), np.arange(4)])
    ds.dense = np.random.default_rng(0).standard_normal((3, 6))
    r = S.run(NoModel(), ds, S.dense(), S.base_config(), None)
    assert r["cos_mean"] == pytest.approx(1.0) and r["pruned"] == 0 and r["pruned_work"] == 0
    assert r["calibration"] is None and r["model_macs_pruned"] == 0
