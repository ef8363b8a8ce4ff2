"""SpAtten's policy in the golden model (golden/spatten.py): each function against a
brute-force or hand-worked expectation computed here, not by the function under test."""
import math
from functools import lru_cache

import numpy as np
import pytest

import golden
from golden import spatten as sp
from hdp_rtl.config import HDPConfig, Registers

CFG = HDPConfig(seq_max=16, head_dim=4, int_lanes=1, mac_lanes=1, axis_elems=1)


def brute_topk(values, k, valid):
    """Indices sorted by (value descending, index ascending), first k."""
    idx = sorted((i for i in range(len(values)) if valid[i]), key=lambda i: (-int(values[i]), i))
    mask = np.zeros(len(values), bool)
    mask[idx[:max(k, 0)]] = True
    return mask


def random_head(rng, n, d=4, config=CFG):
    lo, hi = config.data_min, config.data_max
    return tuple(rng.integers(lo, hi + 1, size=(n, d)) for _ in range(3))


def regs_for(n, **kw):
    kw.setdefault("score_scale", 1 << 19)   # ~1/128 of log2 per score step: soft rows
    kw.setdefault("block_prune_enable", False)
    return Registers(seq_len=n, **kw)


# ---- top-k -----------------------------------------------------------------------------

def test_topk_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(1)
    for _ in range(400):
        n = int(rng.integers(1, 20))
        values = rng.integers(-3, 4, size=n)          # 7 distinct values: many ties
        valid = rng.random(n) < 0.7
        k = int(rng.integers(-1, n + 2))
        got = sp.topk_mask(values, k, valid)
        assert got.tolist() == brute_topk(values, k, valid).tolist()
        assert got.sum() == min(max(k, 0), valid.sum())


def test_topk_tie_rule_lower_index_and_extremes():
    v = np.array([5, 7, 7, 5, 7])
    assert sp.topk_mask(v, 2).tolist() == [False, True, True, False, False]
    assert sp.topk_mask(v, 4).tolist() == [True, True, True, False, True]
    big = np.iinfo(np.int64)
    ext = np.array([big.min, big.max, 0, big.min])
    assert sp.topk_mask(ext, 3).tolist() == [True, True, True, False]
    assert sp.topk_mask(v, 0).sum() == 0 and sp.topk_mask(v, 99).all()
    with pytest.raises(ValueError):
        sp.topk_mask(np.array([0.5, 1.0]), 1)


def test_row_topk_selector_keeps_min_k_nb_valid_blocks_per_row():
    rng = np.random.default_rng(2)
    regs = Registers(seq_len=8)
    for k in range(0, 7):
        policy = sp.row_topk_selector_for(k)
        for _ in range(30):
            bi = rng.integers(-2, 3, size=(4, 5))
            bvalid = rng.random((4, 5)) < 0.6
            keep = policy(bi, bvalid, regs, CFG)
            assert not (keep & ~bvalid).any()
            assert keep.sum(axis=1).tolist() == np.minimum(k, bvalid.sum(axis=1)).tolist()
            for r in range(4):
                assert keep[r].tolist() == brute_topk(bi[r], k, bvalid[r]).tolist()
    bvalid = np.ones((2, 3), bool)
    off = policy(np.zeros((2, 3)), bvalid, regs.replace(block_prune_enable=False), CFG)
    assert off.all()


def test_row_topk_selector_is_the_seams_topk_policy():
    """Selector "topk" is row_topk_selector_for(block_k); with 1x1 blocks its keep mask
    is the pair mask: each row keeps min(block_k, valid), the lower column on a tie."""
    rng = np.random.default_rng(3)
    for block_k in (0, 1, 3, 99):
        for prune in (False, True):
            regs = regs_for(8, block_k=block_k, block_prune_enable=prune)
            bi, bvalid = rng.integers(-2, 3, size=(4, 5)), rng.random((4, 5)) < 0.7
            assert (golden.SELECTORS["topk"](bi, bvalid, regs, CFG) ==
                    sp.row_topk_selector_for(block_k)(bi, bvalid, regs, CFG)).all()
    topk = CFG.replace(selector="topk")
    q, k, v = random_head(rng, 7)
    res = golden.attention_head(q, k, v, topk,
                                regs_for(7, causal=True, block_prune_enable=True, block_k=3))
    assert res.keep.sum(axis=1).tolist() == [1, 2, 3, 3, 3, 3, 3]
    for r in range(7):
        assert res.keep[r].tolist() == brute_topk(res.s_int[r], 3, res.valid[r]).tolist()


# ---- importances -----------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_token_importance_is_the_column_sum_of_kept_probabilities(causal):
    n = 9
    q, k, v = random_head(np.random.default_rng(4), n)
    regs = regs_for(n, causal=causal, block_prune_enable=True, delta=3)
    res = golden.attention_head(q, k, v, CFG, regs)
    assert 0 < res.pairs_kept < res.pairs_valid       # some pairs really pruned
    expect = [0] * n
    for r in range(n):
        for c in range(n):
            if res.keep[r, c]:
                expect[c] += int(res.probs[r, c])
    got = sp.token_importance(res.probs, res.keep)
    assert got.dtype == np.int64 and got.tolist() == expect
    hi = sum(abs(int(x)) for x in res.out.ravel())
    assert sp.head_importance_out(res.out) == hi > 0


# ---- cascade ---------------------------------------------------------------------------

def test_cascade_prunes_for_good_over_three_layers():
    rng = np.random.default_rng(5)
    n, heads = 12, 3
    token_k, head_k = [9, 6, 4], [3, 2, 1]
    st = sp.CascadeState.start(n, heads)
    run_tok, run_head = np.zeros(n, np.int64), np.zeros(heads, np.int64)
    for layer in range(3):
        alive_t, alive_h = st.token_alive.copy(), st.head_alive.copy()
        m = int(alive_t.sum())
        tok_imp, head_imp = np.zeros(n, np.int64), np.zeros(heads, np.int64)
        for h in np.flatnonzero(alive_h):
            q, k, v = (sp.gather_alive(x, alive_t) for x in random_head(rng, n))
            res = golden.attention_head(q, k, v, CFG, regs_for(m, causal=True))
            assert res.probs.shape == (m, m)          # pruned tokens are gone
            tok_imp += sp.scatter_alive(sp.token_importance(res.probs, res.keep), alive_t)
            head_imp[h] = sp.head_importance_out(res.out)
        st.update_tokens(tok_imp, token_k[layer])
        st.update_heads(head_imp, head_k[layer])
        run_tok += np.where(alive_t, tok_imp, 0)
        run_head += np.where(alive_h, head_imp, 0)
        assert st.token_score.tolist() == run_tok.tolist()
        assert st.head_score.tolist() == run_head.tolist()
        assert not (st.token_alive & ~alive_t).any() and not (st.head_alive & ~alive_h).any()
        assert st.token_alive.tolist() == brute_topk(run_tok, token_k[layer], alive_t).tolist()
        assert st.head_alive.tolist() == brute_topk(run_head, head_k[layer], alive_h).tolist()
    assert st.token_alive.sum() == 4 and st.head_alive.sum() == 1


def test_a_pruned_token_never_comes_back():
    st = sp.CascadeState.start(4, 1)
    st.update_tokens([5, 1, 3, 2], 3)                   # token 1 pruned
    assert st.token_alive.tolist() == [True, False, True, True]
    st.update_tokens([0, 10**6, 0, 0], 3)               # huge late importance: ignored
    assert st.token_alive.tolist() == [True, False, True, True]
    assert st.token_score.tolist() == [5, 1, 3, 2]
    st.update_tokens(np.array([[0, 0, 1, 1], [0, 0, 0, 2]]), 2)   # heads x n, summed
    assert st.token_score.tolist() == [5, 1, 4, 5]
    assert st.token_alive.tolist() == [True, False, False, True]  # 5 = 5: lower index too
    st.update_tokens(np.zeros(4, np.int64), 4)            # k above the alive count
    assert st.token_alive.tolist() == [True, False, False, True]


def test_gathered_head_equals_masking_the_pruned_keys():
    n = 8
    q, k, v = random_head(np.random.default_rng(6), n)
    alive = np.array([1, 0, 1, 1, 0, 1, 1, 1], bool)
    regs = regs_for(n)
    m = int(alive.sum())
    small = golden.attention_head(*(sp.gather_alive(x, alive) for x in (q, k, v)), CFG,
                                  regs.replace(seq_len=m))
    keep = golden.valid_mask(n, False) & alive[None, :]
    s = np.where(keep, golden.full_scores(q, k, CFG, golden.approximated(CFG, regs)), 0)
    p, _, _ = golden.softmax_rows(s, keep, CFG, regs.score_scale)
    assert (p[alive][:, alive] == small.probs).all()


# ---- progressive quantization ----------------------------------------------------------

def test_progressive_rows_flags_the_flat_row():
    # I=4, F=4, d=4: row 0's query points at key 0 (peaked), row 1's query is all
    # fraction bits: its integer part is 0, so every MSB score is 0 (flat).
    q = np.array([[112, 112, 112, 112], [15, 3, 9, 1], [0, 0, 0, 0]])
    k = np.array([[112, 112, 112, 112], [-16, -16, 0, 0], [16, -16, 16, -16]])
    n = 3
    regs = regs_for(n, score_scale=1 << 24)
    keep = golden.valid_mask(n, False)
    s1 = np.where(keep, sp.msb_scores(q, k, CFG), 0)
    assert s1[1].tolist() == [0, 0, 0]
    assert s1.tolist() == (golden.integer_scores(q >> 4, k >> 4) << 8).tolist()
    p1, _, _ = golden.softmax_rows(s1, keep, CFG, regs.score_scale)
    one = 1 << CFG.prob_bits
    assert p1[0, 0] > one - 8 and max(p1[1]) - min(p1[1]) <= 1   # peaked / flat
    half = one // 2
    assert sp.progressive_rows(p1, keep, half).tolist() == [False, True, True]
    # strict: a row whose max equals the threshold is not flagged
    assert sp.progressive_rows(p1, keep, int(p1[1].max())).tolist() == [False, False, False]
    # only kept pairs count; a row with none is never flagged
    part = keep.copy()
    part[0, 0] = False
    part[2] = False
    assert sp.progressive_rows(p1, part, half).tolist() == [True, True, False]

    probs, redo = sp.progressive_probs(q, k, keep, half, CFG, regs)
    assert redo.tolist() == [False, True, True]
    s2 = np.where(keep, golden.full_scores(q, k, CFG, True), 0)
    p2, _, _ = golden.softmax_rows(s2, keep, CFG, regs.score_scale)
    assert probs[0].tolist() == p1[0].tolist()
    assert probs[1:].tolist() == p2[1:].tolist()
    assert probs[1].tolist() != p1[1].tolist()            # the LSBs changed row 1


@pytest.mark.parametrize("approx", [False, True])
def test_msb_pass_is_a_head_with_the_fraction_bits_zeroed(approx):
    """The core's MSB pass: Q and K with their fraction bits zeroed (``(x >> F) << F``)
    give full scores of exactly ``S_int << 2F`` (golden.spatten.msb_scores), whether the
    approximation drops ``qf.kf`` or not, and a head of them has the MSB pass's
    probabilities."""
    rng = np.random.default_rng(7)
    F = CFG.frac_bits
    for _ in range(50):
        n = int(rng.integers(1, CFG.seq_max + 1))
        q, k, v = random_head(rng, n)
        qm, km = (q >> F) << F, (k >> F) << F
        assert qm.min() >= CFG.data_min and (golden.split(qm, CFG)[1] == 0).all()
        s = golden.full_scores(qm, km, CFG, approx)
        assert (s == golden.integer_scores(q >> F, k >> F) << (2 * F)).all()
        assert (s == sp.msb_scores(q, k, CFG)).all()
        causal = bool(rng.integers(2))
        regs = regs_for(n, causal=causal, approx_enable=approx)
        keep = golden.valid_mask(n, causal)
        p1, _, _ = golden.softmax_rows(np.where(keep, s, 0), keep, CFG, regs.score_scale)
        res = golden.attention_head(qm, km, v, CFG, regs)
        assert (res.probs == p1).all() and (res.keep == keep).all()


@pytest.mark.parametrize("causal", [False, True])
def test_progressive_head_is_the_msb_head_with_flagged_rows_from_a_full_one(causal):
    """The host's recompute protocol (docs/interface.md): the MSB head's outputs, the
    flagged rows' taken from a full-precision head over the first r + 1 tokens (causal;
    r the last flagged row) or all of them, equal progressive_head bit for bit; in a
    causal head a gathered head of the flagged rows alone would not."""
    from hdp_rtl.host import msb_only, recompute_rows
    rng = np.random.default_rng(11 + causal)
    one = 1 << CFG.prob_bits
    F = CFG.frac_bits
    gathered_differs = False
    for trial in range(60):
        n = int(rng.integers(2, CFG.seq_max + 1))
        q, k, v = random_head(rng, n)
        regs = regs_for(n, causal=causal, approx_enable=bool(trial % 2))
        threshold = int(rng.choice([0, one // 4, one // 2, 3 * one // 4, one + 1]))
        out, probs, keep, redo = sp.progressive_head(q, k, v, CFG, regs, threshold)
        msb = golden.attention_head(msb_only(q, CFG), msb_only(k, CFG), v, CFG, regs)
        assert (msb_only(q, CFG) == (q >> F) << F).all()
        assert (sp.progressive_rows(msb.probs, msb.keep, threshold) == redo).all()
        got = msb.out.copy()
        m = recompute_rows(redo, causal)
        assert m == (0 if not redo.any() else (np.flatnonzero(redo)[-1] + 1 if causal else n))
        if m:
            full = golden.attention_head(q[:m], k[:m], v[:m], CFG, regs.replace(seq_len=m))
            rows = np.flatnonzero(redo)
            got[rows] = full.out[rows]
            if causal and 0 < len(rows) < m:        # gathering the flagged rows only
                g = golden.attention_head(q[rows], k[rows], v[rows], CFG,
                                          regs.replace(seq_len=len(rows)))
                gathered_differs |= not (g.out == out[rows]).all()
        assert (got == out).all(), trial
        if threshold > one:                         # every row recomputed: the full head
            assert redo.all()
            full = golden.attention_head(q, k, v, CFG, regs)
            assert (out == full.out).all() and (probs == full.probs).all()
        if threshold == 0:
            assert not redo.any() and (out == msb.out).all()
    assert gathered_differs or not causal


# ---- quick-select latency --------------------------------------------------------------

@lru_cache(maxsize=None)
def expected_cycles(m, k, p):
    """Analytic mean of the model for distinct values: the pivot is the j-th largest
    with probability 1/m; j in {k, k+1} stops, j > k+1 keeps the j-1 larger, j < k
    keeps the m-j smaller with k-j."""
    c = math.ceil(m / p) + 3
    rest = sum(expected_cycles(m - j, k - j, p) for j in range(1, k))
    rest += sum(expected_cycles(j - 1, k, p) for j in range(k + 2, m + 1))
    return c + rest / m


def test_quickselect_bounds_and_determinism():
    n, P = 24, 4
    first = math.ceil(n / P) + 3
    worst = sum(math.ceil(m / P) + 3 for m in range(2, n + 1))
    rng = np.random.default_rng(7)
    for seed in range(200):
        values = rng.integers(-50, 50, size=n)
        for k in (1, n - 1):
            c = sp.quickselect_cycles(values, k, P, seed)
            assert first <= c <= worst
            assert c == sp.quickselect_cycles(values, k, P, np.random.default_rng(seed))
        assert sp.quickselect_cycles(values, n, P, seed) == 0     # keep all: no selection
        assert sp.quickselect_cycles(values, 0, P, seed) == 0
    # all equal: the first pivot is the boundary, one round
    assert sp.quickselect_cycles(np.zeros(n, int), 5, P, 0) == first


@pytest.mark.parametrize("k", [1, 5, 12, 23])
def test_quickselect_mean_matches_the_analytic_expectation(k):
    n, P, seeds = 24, 4, 1500
    values = np.random.default_rng(8).permutation(n) * 3 - 20    # distinct
    got = np.array([sp.quickselect_cycles(values, k, P, s) for s in range(seeds)])
    expect = expected_cycles(n, k, P)
    assert abs(got.mean() - expect) < 4 * got.std() / math.sqrt(seeds) + 0.05
    assert got.min() >= math.ceil(n / P) + 3
