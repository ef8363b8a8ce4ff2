"""Properties of the golden model, checked with hypothesis on small random heads."""
import pytest
import numpy as np
from hypothesis import given, settings, strategies as st

import golden
from hdp_rtl.config import HDPConfig, Registers

CFG = HDPConfig(seq_max=16, head_dim=8, int_lanes=8, mac_lanes=8, axis_elems=8,
                block_rows=2, block_cols=4)
LO, HI = -(1 << (CFG.data_bits - 1)), (1 << (CFG.data_bits - 1)) - 1


@st.composite
def heads(draw, peaked=False):
    n = draw(st.integers(1, CFG.seq_max))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xq, xk, xv = rng.standard_normal((3, n, CFG.head_dim))
    if peaked:
        xk = 2.5 * xq[rng.permutation(n)] + 0.3 * xk
    return xq, xk, xv


registers = st.fixed_dictionaries({
    "causal": st.booleans(), "block_rule": st.integers(0, 1),
    "rho": st.integers(-256, 256), "delta": st.integers(0, 300),
    "approx_enable": st.booleans(),
})


@settings(max_examples=60, deadline=None)
@given(heads(), registers)
def test_every_block_row_keeps_its_largest_block(xs, fields):
    q, k, v, regs, _ = golden.prepare_head(*xs, CFG, **fields)
    res = golden.attention_head(q, k, v, CFG, regs)
    for R in range(res.block_valid.shape[0]):
        valid = res.block_valid[R]
        if valid.any():
            best = np.where(valid, res.block_importance[R], np.iinfo(np.int64).min).max()
            assert (res.block_keep[R] & valid & (res.block_importance[R] == best)).any()
    assert not (res.block_keep & ~res.block_valid).any()


@settings(max_examples=40, deadline=None)
@given(heads(), registers)
def test_without_pruning_every_valid_pair_is_kept(xs, fields):
    q, k, v, regs, _ = golden.prepare_head(*xs, CFG, block_prune_enable=False, **fields)
    res = golden.attention_head(q, k, v, CFG, regs)
    assert (res.keep == res.valid).all()
    assert res.blocks_kept == res.blocks_total


@settings(max_examples=60, deadline=None)
@given(st.integers(1, CFG.seq_max), st.integers(0, 2**32 - 1))
def test_approximation_lowers_each_score_by_at_most_d_fraction_squares(n, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.integers(LO, HI + 1, (2, n, CFG.head_dim))
    exact = golden.full_scores(q, k, CFG, approx=False)
    approx = golden.full_scores(q, k, CFG, approx=True)
    assert (exact == q @ k.T).all()               # no approximation: the exact product
    diff = exact - approx
    assert (diff >= 0).all()
    assert diff.max() <= CFG.head_dim * (2 ** CFG.frac_bits - 1) ** 2


@settings(max_examples=60, deadline=None)
@given(heads(), registers)
def test_probabilities_of_a_row_sum_to_one_within_the_rounding_bound(xs, fields):
    q, k, v, regs, _ = golden.prepare_head(*xs, CFG, **fields)
    res = golden.attention_head(q, k, v, CFG, regs)
    one = 1 << CFG.prob_bits
    kept = res.keep.sum(axis=1)
    total = res.probs.sum(axis=1)
    # each p is rounded (<= 1/2 LSB) and the reciprocal is floored (<= kept / 2**G LSB
    # in all): docs/algorithm.md, "Softmax"
    bound = kept / 2 + kept / 2 ** CFG.recip_guard_bits
    rows = kept > 0
    assert (np.abs(total - one)[rows] <= bound[rows]).all()
    assert (total[~rows] == 0).all()


# Measured over 3000 random and peaked heads of this config (seeds 0..2999, causal and
# not): at most 2.6e-3 of max|V|. Larger heads: `python -m golden.accuracy` (docs).
OUT_BOUND = 0.01


@settings(max_examples=60, deadline=None)
@given(st.one_of(heads(), heads(peaked=True)), st.booleans())
def test_output_matches_float_attention_on_the_same_quantised_inputs(xs, causal):
    q, k, v, regs, (eq, ek, ev) = golden.prepare_head(
        *xs, CFG, causal=causal, block_prune_enable=False, approx_enable=False)
    res = golden.attention_head(q, k, v, CFG, regs)
    deq = [golden.dequantize(a, e, CFG) for a, e in ((q, eq), (k, ek), (v, ev))]
    ref = golden.reference_attention(*deq, causal=causal)
    out = res.out * 2.0 ** (ev - CFG.out_frac)
    assert np.abs(out - ref).max() <= OUT_BOUND * np.abs(deq[2]).max()


CONFIGS = [CFG, CFG.replace(block_rows=1, block_cols=1),
           CFG.replace(int_bits=5, frac_bits=3, block_rows=4, block_cols=2)]


@settings(max_examples=80, deadline=None)
@given(st.one_of(heads(), heads(peaked=True)), registers, st.sampled_from(CONFIGS),
       st.booleans())
def test_float64_matmul_gives_the_same_head_bit_for_bit(xs, fields, config, prune_head):
    if prune_head:       # the largest threshold prunes every head
        fields = dict(fields, head_prune_enable=True, head_threshold=(1 << config.hi_bits) - 1)
    q, k, v, regs, _ = golden.prepare_head(*xs, config, **fields)
    a = golden.attention_head(q, k, v, config, regs)
    b = golden.attention_head(q, k, v, config, regs, matmul=golden.float64_matmul)
    assert a.head_pruned == prune_head
    for name in ("out", "s_int", "block_importance", "block_keep", "keep", "scores", "exps",
                 "exp_sums", "probs"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.head_importance, a.score_macs) == (b.head_importance, b.score_macs)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1), registers)
def test_every_selector_keeps_only_valid_blocks(rows, cols, seed, fields):
    rng = np.random.default_rng(seed)
    bvalid = rng.random((rows, cols)) < 0.7
    bi = np.where(bvalid, rng.integers(-500, 500, (rows, cols)), 0)
    regs = Registers(seq_len=CFG.seq_max, **fields)
    for name, policy in golden.SELECTORS.items():
        keep = policy(bi, bvalid, regs, CFG)
        assert keep.dtype == bool and keep.shape == bvalid.shape, name
        assert not (keep & ~bvalid).any(), name


def test_pruned_pairs_have_zero_probability_and_counters_add_up():
    rng = np.random.default_rng(1)
    q, k, v, regs, _ = golden.prepare_head(*rng.standard_normal((3, 13, 8)), CFG,
                                           block_rule=0, rho=64)
    res = golden.attention_head(q, k, v, CFG, regs)
    assert not res.probs[~res.keep].any()
    assert res.score_macs == res.pv_macs == CFG.head_dim * res.keep.sum()
    assert res.int_macs == CFG.head_dim * res.valid.sum()
    assert res.blocks_kept + res.blocks_pruned == res.block_valid.sum()


@pytest.mark.parametrize("preset", ["default", "edge"])
def test_channel_mask_as_the_core_runs_it(preset):
    """The core's form of a channel mask (docs/interface.md, channel mask): Q and K
    packed (kept channels first, golden.channels.pack_kept_channels), Q's and K's
    channels from kept on zeroed (the unpacker), the scores summed over the first
    ceil(kept / lanes) chunks only (the skipped chunks hold zeros): the head of
    golden.channels.attention_head_channels with the mask as it was, bit for bit, for
    every kept count, scattered masks included."""
    import golden.channels as ch
    cfg = HDPConfig.preset(preset)
    d, n = cfg.head_dim, 9
    rng = np.random.default_rng(len(preset))
    for kept in sorted({0, 1, cfg.mac_lanes - 1, cfg.mac_lanes + 1, d // 2, d - 1, d}):
        mask = np.zeros(d, bool)
        mask[rng.choice(d, kept, replace=False)] = True
        xq, xk, xv = rng.standard_normal((3, n, d))
        q, k, v, regs, _ = golden.prepare_head(xq, xk, xv, cfg, logit_gap=3.0,
                                               causal=kept % 2 == 1)
        want = ch.attention_head_channels(q, k, v, cfg, regs, mask)
        pq, pk, packed = ch.pack_kept_channels(q, k, mask)
        assert packed.sum() == kept and packed[:kept].all()
        for lanes in (cfg.int_lanes, cfg.mac_lanes):
            active = max(1, ch.active_chunks(packed, lanes))
            cut = active * lanes                 # the chunks the core runs
            zq, zk = pq.copy(), pk.copy()
            zq[:, kept:] = 0
            zk[:, kept:] = 0
            res = golden.attention_head(zq[:, :cut], zk[:, :cut], v, cfg, regs)
            assert np.array_equal(res.out, want.out) and np.array_equal(res.s_int, want.s_int)
            assert res.head_pruned == want.head_pruned


# ---- the selection score (unbiased_selection) ---------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.integers(1, 12), st.integers(1, 12), st.integers(1, 16),
       st.integers(0, 2**32 - 1))
def test_selection_score_is_twice_s_int_plus_the_key_sum(int_bits, rows, cols, d, seed):
    """S_sel = sum (2qi+1) ki = 2 S_int + sum_d ki; the midpoints' score sum (2qi+1)(2ki+1)
    is 2 S_sel plus a term of the row alone; S_sel fits sint_bits, its extremes included;
    with the option off the selection score is S_int."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (int_bits - 1)), 1 << (int_bits - 1)
    qi, ki = rng.integers(lo, hi, (rows, d)), rng.integers(lo, hi, (cols, d))
    qi[0], ki[0] = lo, hi - 1          # 2qi+1 = -(2**I - 1) against the largest ki
    on = HDPConfig(head_dim=16, int_lanes=16, mac_lanes=16, int_bits=int_bits,
                   unbiased_selection=True)
    off = on.replace(unbiased_selection=False)
    s_int = golden.integer_scores(qi, ki)
    s_sel = golden.selection_scores(qi, ki, on)
    np.testing.assert_array_equal(s_sel, 2 * s_int + ki.sum(axis=1)[None, :])
    np.testing.assert_array_equal(golden.selection_scores(qi, ki, off), s_int)
    mid = (2 * qi + 1) @ (2 * ki + 1).T
    np.testing.assert_array_equal(mid - 2 * s_sel, np.broadcast_to(
        (2 * qi + 1).sum(axis=1)[:, None], mid.shape))
    assert np.abs(s_sel).max() <= 16 * ((1 << int_bits) - 1) << (int_bits - 1)
    half = 1 << (on.sint_bits - 1)
    extreme = 16 * ((1 << int_bits) - 1) * (1 << (int_bits - 1))   # (2*lo+1)*lo*d
    assert -half <= -extreme and extreme < half


@settings(max_examples=40, deadline=None)
@given(heads(peaked=True), registers, st.booleans())
def test_the_option_selects_on_the_selection_score(xs, fields, head_prune):
    """With unbiased_selection, block importance, head importance, the selection and
    ``s_int`` are those of S_sel; without it, of S_int, as before the option. The
    scores of the kept pairs are the same full scores either way."""
    on = CFG.replace(unbiased_selection=True)
    for cfg in (on, on.replace(unbiased_selection=False)):
        q, k, v, regs, _ = golden.prepare_head(*xs, cfg, **fields)
        n = regs.seq_len
        qi, ki = golden.split(q, cfg)[0], golden.split(k, cfg)[0]
        valid = golden.valid_mask(n, bool(regs.causal))
        s_int = golden.integer_scores(qi, ki)
        s = 2 * s_int + ki.sum(axis=1)[None, :] if cfg.unbiased_selection else s_int
        s = np.where(valid, s, 0)
        if head_prune:
            regs = regs.replace(head_prune_enable=True,
                                head_threshold=golden.head_importance(s, valid))
        res = golden.attention_head(q, k, v, cfg, regs)
        np.testing.assert_array_equal(res.s_int, s)
        bi, bvalid = golden.block_importance(s, valid, cfg)
        np.testing.assert_array_equal(res.block_importance, bi)
        assert res.head_importance == int(np.abs(s).sum()) and not res.head_pruned
        keep = golden.SELECTORS[cfg.selector](bi, bvalid, regs, cfg)
        np.testing.assert_array_equal(res.block_keep, keep)
        full = golden.full_scores(q, k, cfg, golden.approximated(cfg, regs))
        np.testing.assert_array_equal(res.scores, np.where(res.keep, full, 0))


@pytest.mark.parametrize("q_exp,k_exp,head_dim", [(0, 0, 64), (-2, 1, 32), (3, -4, 17)])
def test_delta_for_halves_the_unit_with_the_selection_score(q_exp, k_exp, head_dim):
    """A step of S_sel is worth half a logit step of S_int, so the same gap needs
    twice the steps (to the ceiling): delta = ceil(gap / (unit / 2)); saturated to
    delta_bits either way."""
    import math
    from hdp_rtl.config import delta_for
    on = HDPConfig.preset("default").replace(unbiased_selection=True)
    off = on.replace(unbiased_selection=False)
    unit = 2.0 ** (q_exp + k_exp) / math.sqrt(head_dim)
    for gap in (0.0, 0.3, 1.0, 2.5, 4.5, 5.0, 7.77):
        got = delta_for(on, gap, q_exp, k_exp, head_dim=head_dim)
        assert got == min(math.ceil(gap / (unit / 2)), (1 << on.delta_bits) - 1)
        assert delta_for(off, gap, q_exp, k_exp, head_dim=head_dim) == min(
            math.ceil(gap / unit), (1 << off.delta_bits) - 1)
        assert got in (2 * delta_for(off, gap, q_exp, k_exp, head_dim=head_dim) - 1,
                       2 * delta_for(off, gap, q_exp, k_exp, head_dim=head_dim)) or \
            got == (1 << on.delta_bits) - 1
    assert delta_for(on, 1e9, 0, 0) == (1 << on.delta_bits) - 1
