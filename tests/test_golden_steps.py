"""Hand-worked cases for each step of the golden model (expected values worked out by
hand here, not by calling the function under test)."""
import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers

# I=4, F=4: x = xi*16 + xf; selection on S_int (S_sel: test_selection_score_by_hand)
CFG = HDPConfig(seq_max=8, head_dim=2, int_lanes=1, mac_lanes=1, axis_elems=1,
                block_rows=2, block_cols=2, unbiased_selection=False)


def test_split_floors_negative_numbers():
    qi, qf = golden.split(np.array([37, -1, -16, -17, 127, -128]), CFG)
    assert qi.tolist() == [2, -1, -1, -2, 7, -8]           # floor(x / 16)
    assert qf.tolist() == [5, 15, 0, 15, 15, 0]            # x - 16*floor(x / 16)


def test_integer_scores_and_causal_mask():
    qi = np.array([[1, 2], [-3, 0], [2, -1]])
    ki = np.array([[2, 1], [1, -1], [0, 3]])
    s = golden.integer_scores(qi, ki)
    assert s.tolist() == [[4, -1, 6], [-6, -3, 0], [3, 3, -3]]
    assert golden.valid_mask(3, True).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert golden.valid_mask(2, False, size=3).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_block_importance_with_ragged_last_block():
    # n = 3 with 2x2 blocks: blocks (0,0) full, (0,1) one column, (1,0) one row,
    # (1,1) a single pair.
    s = np.array([[4, -1, 6], [-6, -3, 0], [3, 3, -3]])
    valid = golden.valid_mask(3, False)
    bi, bvalid = golden.block_importance(s, valid, CFG)
    assert bi.tolist() == [[4, 6], [3, -3]]
    assert bvalid.all()
    # causal: block (0,1) holds no valid pair; its BI is 0 and it is not valid
    cvalid = golden.valid_mask(3, True)
    bi, bvalid = golden.block_importance(np.where(cvalid, s, 0), cvalid, CFG)
    assert bvalid.tolist() == [[True, False], [True, True]]
    assert bi.tolist() == [[4, 0], [3, -3]]


BI_ROW = np.array([[8, 2, -4, 6]])      # nb = 4, max 8, sum 12, mean 3
VALID = np.ones_like(BI_ROW, dtype=bool)


@pytest.mark.parametrize("rho,kept", [
    (-256, [1, 1, 0, 1]),   # threshold 2*mean - max = -2
    (0, [1, 0, 0, 1]),      # threshold mean = 3
    (128, [1, 0, 0, 1]),    # threshold (max + mean)/2 = 5.5
    (256, [1, 0, 0, 0]),    # threshold max = 8
])
def test_mean_rule(rho, kept):
    regs = Registers(seq_len=4, block_rule=0, rho=rho)
    assert golden.select_blocks(BI_ROW, VALID, regs)[0].astype(int).tolist() == kept


def test_mean_rule_keeps_a_block_equal_to_its_threshold():
    regs = Registers(seq_len=4, block_rule=0, rho=-256)
    row = np.array([[8, 2, 0, 6]])      # threshold 2*mean - max = 2*4 - 8 = 0
    assert golden.select_blocks(row, VALID, regs)[0].astype(int).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("delta,kept", [(0, [1, 0, 0, 0]), (2, [1, 0, 0, 1]),
                                        (6, [1, 1, 0, 1]), (12, [1, 1, 1, 1])])
def test_delta_rule(delta, kept):
    regs = Registers(seq_len=4, block_rule=1, delta=delta)
    assert golden.select_blocks(BI_ROW, VALID, regs)[0].astype(int).tolist() == kept


def test_invalid_blocks_never_kept_and_not_counted():
    valid = np.array([[True, True, False, False]])
    bi = np.array([[1, 3, 0, 0]])       # mean over the two valid blocks: 2
    regs = Registers(seq_len=4, block_rule=0, rho=0)
    assert golden.select_blocks(bi, valid, regs)[0].tolist() == [False, True, False, False]
    off = regs.replace(block_prune_enable=False)
    assert golden.select_blocks(bi, valid, off)[0].tolist() == [True, True, False, False]


def _tiny_head():
    q = np.array([[16, 0], [0, 16]])    # qi = identity, qf = 0
    k = np.array([[32, 0], [16, 16]])
    v = np.array([[16, -16], [32, 0]])
    return q, k, v


def test_head_pruning_threshold():
    q, k, v = _tiny_head()
    # S_int = [[2, 1], [0, 1]] -> HI = 4
    base = Registers(seq_len=2, head_prune_enable=True, score_scale=1 << 10)
    kept = golden.attention_head(q, k, v, CFG, base.replace(head_threshold=4))
    assert kept.head_importance == 4 and not kept.head_pruned
    pruned = golden.attention_head(q, k, v, CFG, base.replace(head_threshold=5))
    assert pruned.head_pruned and not pruned.out.any() and not pruned.probs.any()
    assert pruned.score_macs == pruned.pv_macs == pruned.blocks_kept == 0
    assert pruned.int_macs == 2 * 4


def test_selection_score_by_hand():
    """With unbiased_selection the head scores (2qi+1).ki: qi = identity, so row 0
    weighs ki by [3, 1] and row 1 by [1, 3]; ki = [[2, 0], [1, 1]]."""
    q, k, v = _tiny_head()
    cfg = CFG.replace(unbiased_selection=True)
    qi, ki = golden.split(q, cfg)[0], golden.split(k, cfg)[0]
    assert golden.selection_scores(qi, ki, cfg).tolist() == [[6, 4], [2, 4]]
    assert golden.selection_scores(qi, ki, CFG).tolist() == [[2, 1], [0, 1]]
    base = Registers(seq_len=2, head_prune_enable=True, score_scale=1 << 10)
    kept = golden.attention_head(q, k, v, cfg, base.replace(head_threshold=16))
    assert kept.head_importance == 16 and not kept.head_pruned
    assert kept.s_int.tolist() == [[6, 4], [2, 4]] and kept.block_importance.tolist() == [[6]]
    assert golden.attention_head(q, k, v, cfg, base.replace(head_threshold=17)).head_pruned


def test_exp_table_and_single_pair_row():
    cfg = HDPConfig(seq_max=8, head_dim=2, int_lanes=1, mac_lanes=1, axis_elems=1,
                    exp_lut_bits=2, exp_bits=8)
    # round(256 * 2**(-j/4)) for j = 0..3
    assert golden.exp_table(cfg).tolist() == [256, 215, 181, 152]
    s = np.array([[5, 0], [0, 0]])
    keep = np.array([[True, False], [False, False]])
    p, e, sums = golden.softmax_rows(s, keep, cfg, 12345)
    assert p[0, 0] == 1 << cfg.prob_bits and e[0, 0] == 256 and sums.tolist() == [256, 0]
    assert p[1].tolist() == [0, 0]


def test_softmax_two_pairs_worked_by_hand():
    cfg = HDPConfig(seq_max=8, head_dim=2, int_lanes=1, mac_lanes=1, axis_elems=1,
                    exp_lut_bits=2, exp_bits=8, prob_bits=8, recip_guard_bits=0,
                    score_scale_frac=4)
    # z = [0, 6]; score_scale = 8 (0.5 in 4 fraction bits) -> z*scale = [0, 48];
    # shift by 4 - 2 = 2 with rounding -> u = [0, 12] (quarters): e = [256, 256 >> 3 = 32]
    s = np.array([[10, 4]])
    keep = np.ones_like(s, dtype=bool)
    p, e, sums = golden.softmax_rows(s, keep, cfg, 8)
    assert e.tolist() == [[256, 32]] and sums.tolist() == [288]
    recip = (1 << 16) // 288                         # 227
    assert p.tolist() == [[(256 * recip + 128) >> 8, (32 * recip + 128) >> 8]]   # [227, 28]


def test_pv_output_rounds_half_up_and_saturates():
    cfg = HDPConfig(seq_max=8, head_dim=2, int_lanes=1, mac_lanes=1, axis_elems=1,
                    prob_bits=4, frac_bits=4, out_bits=7, out_frac=6)   # shift 2
    p = np.array([[16]])                             # probability 1.0
    v = np.array([[2, -2], ])
    assert golden.pv_output(p, v, cfg).tolist() == [[8, -8]]           # 32/4, -32/4
    v = np.array([[127, -128]])
    assert golden.pv_output(p, v, cfg).tolist() == [[63, -64]]         # 508, -512 saturated
    p = np.array([[1]])
    v = np.array([[2, -2]])                          # 2/4 = 0.5 -> 1; -0.5 -> 0
    assert golden.pv_output(p, v, cfg).tolist() == [[1, 0]]


def test_quantize_scale_rounding_and_saturation():
    q, e = golden.quantize(np.array([3.0, -1.015625, 0.0]), CFG)
    assert e == -1                                   # the finest scale at which 3 fits: 1/2
    assert q.tolist() == [96, -33, 0]                # -1.015625*32 = -32.5 -> -33 (away from 0)
    q, e = golden.quantize(np.array([20.0, -3.0]), CFG)
    assert e == 2 and q.tolist() == [80, -12]        # scale 4: 20/4*16, -3/4*16
    q, e = golden.quantize(np.array([100.0]), CFG, exp=0)
    assert q.tolist() == [127]                       # saturated


def test_full_scores_decompose_into_integer_and_fraction_parts():
    q = np.array([[37, -20]])                        # qi = [2, -2], qf = [5, 12]
    k = np.array([[-3, 18]])                         # ki = [-1, 1], kf = [13, 2]
    exact = golden.full_scores(q, k, CFG, approx=False)
    assert exact.tolist() == [[37 * -3 + -20 * 18]]
    approx = golden.full_scores(q, k, CFG, approx=True)
    assert approx.tolist() == [[exact[0, 0] - (5 * 13 + 12 * 2)]]


# ---- pluggable matrix products ---------------------------------------------------------

def test_float64_matmul_is_exact_up_to_its_bound():
    # max|a| * max|b| * inner = 2**24 * 2**24 * 31 < 2**53: products near 2**53 are exact
    rng = np.random.default_rng(0)
    a = rng.integers(-2**24, 2**24, (5, 31))
    b = rng.integers(-2**24, 2**24, (31, 4))
    a[0, 0], b[0, 0] = -2**24, 2**24
    np.testing.assert_array_equal(golden.float64_matmul(a, b), golden.int64_matmul(a, b))
    with pytest.raises(ValueError, match="2\\*\\*53"):    # one more term: bound 2**53
        golden.float64_matmul(np.pad(a, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0))))


def test_float64_matmul_refuses_a_product_float64_would_round():
    a, b = np.array([[2**30, 1]]), np.array([[2**23], [1]])
    assert golden.int64_matmul(a, b).tolist() == [[2**53 + 1]]      # not a float64
    with pytest.raises(ValueError):
        golden.float64_matmul(a, b)
    with pytest.raises(TypeError):
        golden.float64_matmul(np.ones((1, 2)), b)


def test_steps_use_the_given_matmul():
    calls = []

    def spy(a, b):
        calls.append(a.shape[1])
        return golden.int64_matmul(a, b)

    q, k, v = _tiny_head()
    qi, ki = golden.split(q, CFG)[0], golden.split(k, CFG)[0]
    assert golden.integer_scores(qi, ki, spy).tolist() == [[2, 1], [0, 1]]
    assert golden.full_scores(q, k, CFG, False, spy).tolist() == (q @ k.T).tolist()
    assert golden.pv_output(np.eye(2, dtype=int) << CFG.prob_bits, v, CFG, spy).shape == (2, 2)
    # S_int; qi.ki, qf.kf and the two cross terms as one (inner 2d); P x V
    assert sorted(calls) == [2, 2, 2, 2, 4]


# ---- the selection seam ----------------------------------------------------------------

def test_every_selector_name_has_a_golden_policy():
    from hdp_rtl.config import SELECTOR_NAMES
    assert set(SELECTOR_NAMES) <= set(golden.SELECTORS)
    assert golden.SELECTORS["hdp"] is golden.select_blocks


def test_attention_head_selects_with_the_configured_policy(monkeypatch):
    seen = []

    def keep_first_valid_block(bi, bvalid, regs, config):
        seen.append(config)
        return bvalid & (np.cumsum(bvalid, axis=1) == 1)

    monkeypatch.setitem(golden.SELECTORS, CFG.selector, keep_first_valid_block)
    q = np.tile(_tiny_head()[0], (2, 1))
    # the hdp policy with pruning off would keep all four 2x2 blocks
    regs = Registers(seq_len=4, block_prune_enable=False)
    res = golden.attention_head(q, q, q, CFG, regs)
    assert seen == [CFG] and res.block_keep.tolist() == [[True, False], [True, False]]
    assert res.keep[:, 2:].sum() == 0 and res.keep[:, :2].all()


# ---- float reference -------------------------------------------------------------------

def test_float_attention_worked_by_hand():
    # scores q.k = [0, ln 3] in every row: weights 1/4, 3/4
    q = np.ones((2, 1))
    k = np.array([[0.0], [np.log(3)]])
    v = np.array([[4.0], [8.0]])
    np.testing.assert_allclose(golden.float_attention(q, k, v), [[7], [7]])
    np.testing.assert_allclose(golden.float_attention(q, k, v, causal=True), [[4], [7]])
    keep = np.array([[False, True], [True, False]])
    np.testing.assert_allclose(golden.float_attention(q, k, v, keep=keep), [[8], [4]])
    np.testing.assert_allclose(golden.float_attention(q, k, v, scale=0.0), [[6], [6]])
    heads = golden.float_attention(np.stack([q, q]), np.stack([k, k]), np.stack([v, -v]),
                                   causal=True)
    np.testing.assert_allclose(heads, [[[4], [7]], [[-4], [-7]]])
