"""SpAtten's policy in the MiniLM evaluation (hdp_rtl/eval/spatten.py): on a tiny random
BERT of the same shape (12 heads of 32, 3 layers), every head through the golden core.
Keep ratio 1 is the dense-on-core head bit for bit; the cascade only shrinks; pruned
tokens are neither queries nor keys and their states freeze; the pair counts are the
schedule's; calibration is out of sample (NumPy only, seconds)."""
import copy

import numpy as np
import pytest

import golden
from golden import spatten as sp
from hdp_rtl.eval import sweep as S
from hdp_rtl.eval.attention import HDPAttention
from hdp_rtl.eval.model import MiniLM
from hdp_rtl.eval.spatten import (SpAttenAttention, keep_counts, keep_schedule,
                                  pruned_fraction, token_keep_for)

CFG = S.hdp_config(S.base_config(), S.DEFAULT_HDP)     # the default core, I4F4, 1x1
LAYERS = 3
HID, INTER, VOCAB = 384, 48, 40


def tiny_weights(seed=0, layers=LAYERS):
    """Random BERT weights with MiniLM's names and widths (intermediate 48)."""
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.08):
        return rng.standard_normal(shape) * scale

    wts = {"embeddings.word_embeddings.weight": w(VOCAB, HID, scale=1.0),
           "embeddings.position_embeddings.weight": w(64, HID, scale=0.3),
           "embeddings.token_type_embeddings.weight": w(2, HID, scale=0.1),
           "embeddings.LayerNorm.weight": 1 + w(HID, scale=0.05),
           "embeddings.LayerNorm.bias": w(HID, scale=0.05)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (HID, HID)),
                            ("attention.self.key", (HID, HID)),
                            ("attention.self.value", (HID, HID)),
                            ("attention.output.dense", (HID, HID)),
                            ("intermediate.dense", (INTER, HID)), ("output.dense", (HID, INTER))):
            wts[p + name + ".weight"] = w(*shape)
            wts[p + name + ".bias"] = w(shape[0], scale=0.02)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            wts[p + ln + ".weight"] = 1 + w(HID, scale=0.05)
            wts[p + ln + ".bias"] = w(HID, scale=0.05)
    return wts


@pytest.fixture(scope="module")
def model():
    return MiniLM(tiny_weights(), tokenizer=None)


def ids(n, seed=1):
    return np.random.default_rng(seed).integers(0, VOCAB, n)


def spatten(**kw):
    kw.setdefault("layers", LAYERS)
    return SpAttenAttention(CFG, **kw)


def qkv(rng, n, h=12, scale=0.8):
    return rng.standard_normal((3, h, n, 32)) * scale


# ---- keep ratio 1 is the dense-on-core head --------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(pq_threshold=(1 << CFG.prob_bits) + 1),
                                dict(mode="keys"), dict(pool="frozen")])
def test_keep_one_is_dense_on_core_bit_for_bit(model, kw):
    x = ids(23)
    dense_core = HDPAttention(CFG, block_prune_enable=False)
    m = spatten(**kw)
    np.testing.assert_array_equal(model.hidden_states(x, m), model.hidden_states(x, dense_core))
    np.testing.assert_array_equal(
        model.embed_ids(x, spatten(**kw)),
        model.embed_ids(x, HDPAttention(CFG, block_prune_enable=False)))
    assert m.stats.pruned == 0 and m.stats.tokens_pruned == 0
    assert m.stats.pairs_valid == dense_core.stats.pairs_valid == LAYERS * 12 * 23 ** 2
    if "pq_threshold" in kw:         # every row sent to the LSB pass
        assert m.stats.rows == m.stats.rows_redone == LAYERS * 12 * 23


def test_progressive_head_extremes_are_the_full_and_the_msb_pass():
    rng = np.random.default_rng(3)
    n = 17
    q, k, v, regs, _ = golden.prepare_head(*(rng.standard_normal((3, n, 32)) * 0.9), CFG,
                                           logit_gap=None, block_prune_enable=False)
    ref = golden.attention_head(q, k, v, CFG, regs)
    out, probs, keep, redo = sp.progressive_head(q, k, v, CFG, regs, (1 << CFG.prob_bits) + 1)
    assert redo.all()
    np.testing.assert_array_equal(out, ref.out)
    np.testing.assert_array_equal(probs, ref.probs)
    np.testing.assert_array_equal(keep, ref.keep)
    out0, probs0, _, redo0 = sp.progressive_head(q, k, v, CFG, regs, 0)
    assert not redo0.any()
    msb, _, _ = golden.softmax_rows(sp.msb_scores(q, k, CFG), keep, CFG, regs.score_scale)
    np.testing.assert_array_equal(probs0, msb)
    np.testing.assert_array_equal(out0, golden.pv_output(msb, v, CFG))
    with pytest.raises(ValueError):
        sp.progressive_head(q, k, v, CFG, regs.replace(block_prune_enable=True), 0)


# ---- the cascade and the accounting ----------------------------------------------------

def test_schedule_is_a_monotone_ramp():
    assert keep_schedule(0.4, 6) == pytest.approx([1.0, 0.88, 0.76, 0.64, 0.52, 0.4])
    for n in (1, 2, 9, 40, 237):
        for r in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
            c = keep_counts(n, r, 6)
            assert c[0] == n and all(1 <= b <= a for a, b in zip(c, c[1:]))
    with pytest.raises(ValueError):
        keep_schedule(1.2, 6)


@pytest.mark.parametrize("mode", ["tokens", "keys"])
def test_cascade_counts_and_monotonicity(model, mode):
    n, tk, hk = 26, 0.3, 0.5
    m = spatten(token_keep=tk, head_keep=hk, mode=mode)
    model.hidden_states(ids(n, seed=5), m)
    tc, hc = keep_counts(n, tk, LAYERS), keep_counts(12, hk, LAYERS)
    assert [int(a.sum()) for a, _ in m.history] == tc
    assert [int(h.sum()) for _, h in m.history] == hc
    for (a0, h0), (a1, h1) in zip(m.history, m.history[1:]):
        assert not (a1 & ~a0).any() and not (h1 & ~h0).any()     # pruned stays pruned
    st = m.stats
    queries = tc if mode == "tokens" else [n] * LAYERS
    assert st.heads == 12 * LAYERS and st.heads_pruned == sum(12 - h for h in hc)
    assert st.pairs_valid == LAYERS * 12 * n * n
    assert st.pairs_kept == sum(h * qn * t for h, qn, t in zip(hc, queries, tc))
    assert st.pairs_head_pruned == sum((12 - h) * qn * t for h, qn, t in zip(hc, queries, tc))
    assert st.pruned == pytest.approx(pruned_fraction([n], tk, hk, layers=LAYERS, mode=mode))
    assert st.block_pruned == pytest.approx(
        sum(12 * (n * n - qn * t) for qn, t in zip(queries, tc)) / st.pairs_valid)
    expect_tokens = sum(n - t for t in tc) / (LAYERS * n) if mode == "tokens" else 0.0
    assert st.tokens_pruned == pytest.approx(expect_tokens)


def test_pruned_tokens_are_neither_queries_nor_keys_and_pruned_heads_output_zero():
    rng = np.random.default_rng(7)
    n = 30
    m = spatten(token_keep=0.2, head_keep=0.5)
    for layer in range(LAYERS - 1):
        m(layer, *qkv(rng, n))
    alive, heads = m.state.token_alive.copy(), m.state.head_alive.copy()
    assert 0 < alive.sum() < n and 0 < heads.sum() < 12
    q, k, v = qkv(rng, n)
    twin = copy.deepcopy(m)
    out = m(LAYERS - 1, q, k, v)
    q2, k2, v2 = (x.copy() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[:, ~alive] = rng.standard_normal(x[:, ~alive].shape) * 5   # pruned rows changed
    out2 = twin(LAYERS - 1, q2, k2, v2)
    np.testing.assert_array_equal(out, out2)
    assert not out[:, ~alive].any() and not out[~heads].any()
    assert out[np.ix_(heads, alive)].any()


def test_pruned_token_states_freeze_at_their_last_layer(model):
    x = ids(28, seed=9)
    m = spatten(token_keep=0.2, pool="frozen")
    final = model.hidden_states(x, m)
    masks = [a for a, _ in m.history] + [m.state.token_alive]
    assert masks[-1].sum() < len(x)
    for layer in range(LAYERS - 1):
        left = masks[layer] & ~masks[layer + 1]        # computed by `layer`, not after
        assert left.any()
        short = copy.copy(model)
        short.layers = model.layers[:layer + 1]
        states = short.hidden_states(x, spatten(token_keep=0.2))
        np.testing.assert_array_equal(final[left], states[left])
    e = final.mean(axis=0)
    np.testing.assert_array_equal(model.embed_ids(x, spatten(token_keep=0.2, pool="frozen")),
                                  e / np.linalg.norm(e))
    alive = final[m.state.token_alive].mean(axis=0)
    np.testing.assert_array_equal(model.embed_ids(x, spatten(token_keep=0.2)),
                                  alive / np.linalg.norm(alive))


def test_head_importance_is_shifted_to_one_scale():
    codes = np.array([[3, -4], [0, 1]])
    assert SpAttenAttention.head_importance(codes, -8) == 8
    assert SpAttenAttention.head_importance(codes, -6) == 32
    assert SpAttenAttention.head_importance(codes, -10) == 2


def test_progressive_quantization_counts_its_rows(model):
    m = spatten(token_keep=0.5, pq_threshold=1 << (CFG.prob_bits - 2))
    model.hidden_states(ids(25, seed=2), m)
    tc = keep_counts(25, 0.5, LAYERS)
    assert m.stats.rows == 12 * sum(tc)
    assert 0 < m.stats.rows_redone < m.stats.rows


# ---- calibration, out of sample --------------------------------------------------------

def test_token_keep_for_hits_the_target():
    lengths = [12, 40, 128, 200]
    for target in (0.2, 0.4, 0.51):
        r = token_keep_for(target, lengths)
        assert abs(pruned_fraction(lengths, r) - target) < 0.005
    assert token_keep_for(0.0, lengths) == 1.0


def fake_calibration(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return S.Calibration(qk=[[tuple(rng.standard_normal((2, 12, n, 32)).astype(np.float32))
                              for _ in range(LAYERS)] for n in lengths])


def test_cross_calibration_uses_the_other_half():
    cal = fake_calibration([5, 6, 7, 8, 9])
    cc = S.CrossCalibration(cal)
    assert cc.fold == [0, 0, 0, 1, 1] and cc.mode == "2-fold cross-fitted"
    assert [cc.for_input(i).lengths for i in range(5)] == [[8, 9]] * 3 + [[5, 6, 7]] * 2
    assert S.CrossCalibration(cal, in_sample=True).for_input(4) is cal
    assert S.CrossCalibration(fake_calibration([5])).in_sample
    t = cal.pq_threshold(CFG, 0.25)
    maxima = np.concatenate([S.msb_row_max(q[h].astype(float), k[h].astype(float), CFG)
                             for per in cal.qk for q, k in per for h in range(12)])
    assert (maxima < t).mean() >= 0.25 > (maxima < t - 1).mean()


def test_run_calibrates_each_half_on_the_other(model):
    data = [ids(n, seed=n) for n in (10, 14, 18, 22)]
    ds = S.Dataset("tiny", [str(i) for i in range(4)], data)
    ds.dense = np.stack([model.embed_ids(x) for x in data])
    cal = S.CrossCalibration(S.Calibration.collect(model, data))
    base = S.base_config()
    row = S.run(model, ds, S.spatten("g", pruned=0.3, pq_rows=0.2), base, cal)
    assert [c["token_keep"] for c in row["calibrated"]] == [
        token_keep_for(0.3, lens, layers=LAYERS) for lens in ([18, 22], [10, 14])]
    assert row["method"] == "spatten" and abs(row["pruned"] - 0.3) < 0.05
    assert row["lsb_rows"] is not None and 0 < row["lsb_rows"] < 1
    assert row["tokens_pruned"] > 0 and row["cos_mean"] > 0
    lengths = np.array([10, 14, 18, 22])
    tok, pairs = LAYERS * lengths.sum(), LAYERS * 12 * (lengths ** 2).sum()
    per_token, per_pair = 4 * HID * HID + 2 * HID * INTER, 64
    assert row["model_macs_pruned"] == pytest.approx(
        (row["tokens_pruned"] * tok * per_token + row["pruned"] * pairs * per_pair)
        / (tok * per_token + pairs * per_pair))
    dense = S.run(model, ds, S.spatten("g"), base, cal)
    hdp_ref = S.run(model, ds, S.hdp("r", prune=False), base, cal)
    assert dense["cos_mean"] == hdp_ref["cos_mean"] and dense["pruned"] == 0
    assert dense["model_macs_pruned"] == 0
