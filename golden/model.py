"""Bit-exact NumPy model of one HDP attention head, step by step as in the spec.

Each step is its own function so that the RTL unit tests can compare against the step
their unit implements. ``docs/algorithm.md`` gives the reason for every width and
rounding used here; the widths themselves come from :class:`hdp_rtl.config.HDPConfig`.
Every integer matrix product goes through a pluggable ``matmul`` (:mod:`golden.matmul`;
default the exact int64 product), and the block selection through the policy the
config names (:mod:`golden.selectors`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdp_rtl.config import (DEFAULT_LOGIT_GAP, ConfigError, HDPConfig, Registers,
                            delta_for, score_scale_for)

from .matmul import int64_matmul
from .selectors import SELECTORS

__all__ = [
    "HeadResult", "quantize", "dequantize", "split", "valid_mask", "integer_scores",
    "selection_scores", "block_importance", "head_importance", "expand_blocks",
    "full_scores", "approximated", "exp_table", "softmax_rows", "pv_output", "attention_head",
    "prepare_head",
]

I64 = np.int64


# ---- numbers ---------------------------------------------------------------------------

def quantize(x, config: HDPConfig, exp: int | None = None):
    """Quantise a float tensor to ``B = I + F``-bit signed fixed point.

    Returns ``(q, exp)`` with ``x ~= q * 2**(exp - F)``: ``2**exp`` is the tensor's
    power-of-two scale, chosen (unless given) as the smallest that makes ``max|x|``
    fit the ``I`` integer bits. Rounds to nearest (ties away from zero) and saturates.
    """
    x = np.asarray(x, dtype=np.float64)
    F, B = config.frac_bits, config.data_bits
    top = 2 ** (B - 1) - 1
    if exp is None:
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak == 0.0:
            exp = 0
        else:
            exp = int(np.ceil(np.log2(peak * 2.0 ** F / (top + 0.5))))
            while peak * 2.0 ** (F - exp) >= top + 0.5:  # guard float rounding
                exp += 1
    scaled = x * 2.0 ** (F - exp)
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(q, -top - 1, top).astype(I64), int(exp)


def dequantize(q, exp: int, config: HDPConfig):
    """The real values of fixed-point ``q`` at scale ``2**exp``."""
    return np.asarray(q, dtype=np.float64) * 2.0 ** (exp - config.frac_bits)


def split(x, config: HDPConfig):
    """``x = xi * 2**F + xf``: ``xi = x >> F`` (floor), ``xf = x & (2**F - 1)``."""
    x = np.asarray(x, dtype=I64)
    return x >> config.frac_bits, x & ((1 << config.frac_bits) - 1)


# ---- integer pass (head scorer) --------------------------------------------------------

def valid_mask(n: int, causal: bool, size: int | None = None):
    """``size x size`` bool: pair (r, c) is valid when r, c < n and (causal ->) c <= r."""
    size = n if size is None else size
    idx = np.arange(size)
    mask = (idx[:, None] < n) & (idx[None, :] < n)
    if causal:
        mask &= idx[None, :] <= idx[:, None]
    return mask


def integer_scores(qi, ki, matmul=None):
    """``S_int[r, c] = sum_d qi[r, d] * ki[c, d]`` (every pair; mask separately)."""
    matmul = matmul or int64_matmul
    return matmul(np.asarray(qi, dtype=I64), np.asarray(ki, dtype=I64).T)


def selection_scores(qi, ki, config: HDPConfig, matmul=None):
    """The integer pass's pair scores, which every selection step uses (every pair;
    mask separately).

    ``S_int`` (:func:`integer_scores`), or with ``config.unbiased_selection``
    ``S_sel[r, c] = sum_d (2 qi[r, d] + 1) * ki[c, d] = 2 S_int[r, c] + sum_d ki[c, d]``:
    the floor ``qi = q >> F`` biases the integer parts by -1/2; the score of the
    intervals' midpoints, ``sum_d (2qi+1)(2ki+1) = 2 S_sel + sum_d (2qi+1)``, differs
    from ``2 S_sel`` by a term constant in a query row, which changes no comparison
    within the row (docs/algorithm.md).
    """
    if not config.unbiased_selection:
        return integer_scores(qi, ki, matmul)
    return integer_scores(2 * np.asarray(qi, dtype=I64) + 1, ki, matmul)


def _pad_to_blocks(a, config: HDPConfig, fill):
    n = a.shape[0]
    br, bc = config.block_rows, config.block_cols
    rows, cols = -(-n // br) * br, -(-n // bc) * bc
    out = np.full((rows, cols), fill, dtype=a.dtype)
    out[:n, :n] = a
    return out.reshape(rows // br, br, cols // bc, bc)


def block_importance(s_int, valid, config: HDPConfig):
    """``(BI, block_valid)`` over the ``Br x Bc`` blocks of the ``n x n`` scores.

    ``s_int`` is the integer pass's pair score (:func:`selection_scores`).
    ``BI[R, C]`` is the (signed) maximum of it over the valid pairs of block
    (R, C), and 0 for a block with no valid pair (``block_valid`` False). The last
    block row and column are ragged when ``n`` is not a multiple of the block shape.
    """
    lowest = np.iinfo(I64).min
    masked = np.where(valid, s_int, lowest)
    blocks = _pad_to_blocks(masked, config, lowest)
    bi = blocks.max(axis=(1, 3))
    bvalid = _pad_to_blocks(valid, config, False).any(axis=(1, 3))
    return np.where(bvalid, bi, 0), bvalid


def head_importance(s_int, valid) -> int:
    """``HI = sum |s_int|`` over the valid pairs, ``s_int`` the integer pass's pair score
    (:func:`selection_scores`: ``S_int``, or ``S_sel`` with ``unbiased_selection``)."""
    return int(np.abs(np.where(valid, s_int, 0)).sum())


def expand_blocks(block_mask, n: int, config: HDPConfig):
    """The ``n x n`` pair mask of a block mask."""
    m = np.repeat(np.repeat(block_mask, config.block_rows, axis=0), config.block_cols, axis=1)
    return m[:n, :n]


# ---- scores of kept pairs (MAC array with approximation unit) --------------------------

def approximated(config: HDPConfig, regs: Registers) -> bool:
    """Whether the scores of kept pairs drop ``qf.kf``: ``approx_enable`` set, in a
    build with the approximation unit (``HDPConfig.approximation``)."""
    return bool(regs.approx_enable) and config.approximation


def full_scores(q, k, config: HDPConfig, approx: bool, matmul=None):
    """``S = S_int*2^2F + (qi.kf + qf.ki)*2^F (+ qf.kf unless approx)`` for every pair."""
    matmul = matmul or int64_matmul
    F = config.frac_bits
    qi, qf = split(q, config)
    ki, kf = split(k, config)
    # the two cross terms as one product over the concatenated inner dimension
    cross = matmul(np.concatenate([qi, qf], axis=1), np.concatenate([kf, ki], axis=1).T)
    s = (matmul(qi, ki.T) << (2 * F)) + (cross << F)
    if not approx:
        s = s + matmul(qf, kf.T)
    return s


# ---- softmax unit ----------------------------------------------------------------------

def exp_table(config: HDPConfig):
    """``T[j] = round(2**exp_bits * 2**(-j / 2**exp_lut_bits))`` for ``j`` in the table."""
    L, E = config.exp_lut_bits, config.exp_bits
    j = np.arange(1 << L, dtype=np.float64)
    return np.floor(2.0 ** E * 2.0 ** (-j / (1 << L)) + 0.5).astype(I64)


def softmax_rows(s, keep, config: HDPConfig, score_scale: int):
    """Fixed-point softmax of each row over its kept pairs; returns ``(probs, exps, sums)``.

    For row r: ``z = max - S`` (>= 0); ``u = round(z * score_scale / 2**(scale_frac -
    lut_bits))``, the negated log2 of the unnormalised probability with ``lut_bits``
    fraction bits; ``e = T[u mod 2**L] >> (u >> L)`` (0 once the shift passes
    ``exp_bits``); ``recip = floor(2**recip_shift / sum e)``;
    ``p = round(e * recip / 2**(exp_bits + guard))``. Probabilities have ``prob_bits``
    fraction bits; pruned and invalid pairs get 0.
    """
    s = np.asarray(s, dtype=I64)
    L, E = config.exp_lut_bits, config.exp_bits
    lowest = np.iinfo(I64).min
    row_has = keep.any(axis=1, keepdims=True)
    row_max = np.where(keep, s, lowest).max(axis=1, keepdims=True)
    row_max = np.where(row_has, row_max, 0)
    z = np.where(keep, row_max - s, 0)
    prod = z * I64(score_scale)
    sh = config.score_scale_frac - L
    if sh > 0:
        u = (prod + (I64(1) << (sh - 1))) >> sh
    else:
        u = prod << (-sh)
    ui = u >> L
    uf = u & ((1 << L) - 1)
    table = exp_table(config)
    e = np.where(ui > E, 0, table[uf] >> np.minimum(ui, E + 1))
    e = np.where(keep, e, 0)
    sums = e.sum(axis=1)
    safe = np.where(sums > 0, sums, 1)
    recip = (I64(1) << config.recip_shift) // safe
    shift = E + config.recip_guard_bits
    p = (e * recip[:, None] + (I64(1) << (shift - 1))) >> shift
    p = np.where(keep, p, 0)
    return p, e, sums


# ---- P x V -----------------------------------------------------------------------------

def pv_output(p, v, config: HDPConfig, matmul=None):
    """``O = sum_c p[r,c] * v[c,:]``, rounded (half up) by ``out_shift`` and saturated."""
    matmul = matmul or int64_matmul
    acc = matmul(np.asarray(p, dtype=I64), np.asarray(v, dtype=I64))
    sh = config.out_shift
    if sh > 0:
        acc = (acc + (I64(1) << (sh - 1))) >> sh
    top = (1 << (config.out_bits - 1)) - 1
    return np.clip(acc, -top - 1, top)


# ---- the whole head --------------------------------------------------------------------

@dataclass
class HeadResult:
    """Everything the golden model computes for one head (all integer arrays)."""

    out: np.ndarray            # n x d output in the output format
    # n x n: the integer pass's pair scores (0 where invalid), from which the block and
    # head importances come: S_int, or S_sel with unbiased_selection (selection_scores)
    s_int: np.ndarray
    valid: np.ndarray          # n x n valid pairs
    block_importance: np.ndarray  # block rows x block cols
    block_valid: np.ndarray
    head_importance: int
    head_pruned: bool
    block_keep: np.ndarray     # bool, block rows x block cols
    keep: np.ndarray           # n x n kept pairs
    scores: np.ndarray         # n x n full scores of kept pairs (0 elsewhere)
    exps: np.ndarray           # n x n exponentials
    exp_sums: np.ndarray       # n row sums
    probs: np.ndarray          # n x n probabilities, prob_bits fraction bits
    int_macs: int
    score_macs: int
    pv_macs: int
    blocks_kept: int
    blocks_total: int

    @property
    def blocks_pruned(self) -> int:
        return self.blocks_total - self.blocks_kept

    @property
    def pairs_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def pairs_kept(self) -> int:
        return int(self.keep.sum())


def _as_head(x, name: str, n: int, config: HDPConfig):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != n:
        raise ConfigError(f"{name} must be seq_len x d = {n} x d, not {x.shape}")
    if x.shape[1] > config.head_dim:
        raise ConfigError(f"{name} has {x.shape[1]} columns, more than head_dim = {config.head_dim}")
    lo, hi = -(1 << (config.data_bits - 1)), (1 << (config.data_bits - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ConfigError(f"{name} holds values outside the {config.data_bits}-bit range {lo}..{hi}")
    padded = np.zeros((n, config.head_dim), dtype=I64)
    padded[:, :x.shape[1]] = x
    return padded


def attention_head(q, k, v, config: HDPConfig, regs: Registers, *,
                   matmul=None) -> HeadResult:
    """One head, bit-exact, as the co-processor computes it.

    ``q``, ``k``, ``v`` are ``seq_len x d`` integer arrays (``d <= head_dim``; shorter
    heads are zero-padded, which changes no score) in the ``B``-bit format. Every
    integer matrix product is ``matmul(a, b)`` (default :func:`golden.int64_matmul`;
    :func:`golden.float64_matmul` is faster and as exact). The blocks are selected by
    ``golden.SELECTORS[config.selector]``, on the block importances of the integer
    pass's pair scores (:func:`selection_scores`: ``S_int``, or ``S_sel`` with
    ``config.unbiased_selection``), which also give the head importance.
    """
    regs.check(config)
    n = regs.seq_len
    q, k, v = (_as_head(x, name, n, config) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    d = config.head_dim
    qi, _ = split(q, config)
    ki, _ = split(k, config)
    valid = valid_mask(n, bool(regs.causal))
    s_int = np.where(valid, selection_scores(qi, ki, config, matmul), 0)
    bi, bvalid = block_importance(s_int, valid, config)
    hi = head_importance(s_int, valid)
    pruned = bool(regs.head_prune_enable and hi < regs.head_threshold)
    zeros = np.zeros((n, n), dtype=I64)
    if pruned:
        block_keep = np.zeros_like(bvalid)
        keep = np.zeros((n, n), dtype=bool)
        scores, exps, probs = zeros, zeros, zeros
        sums = np.zeros(n, dtype=I64)
        out = np.zeros((n, d), dtype=I64)
    else:
        block_keep = SELECTORS[config.selector](bi, bvalid, regs, config)
        keep = expand_blocks(block_keep, n, config) & valid
        scores = np.where(keep, full_scores(q, k, config, approximated(config, regs), matmul), 0)
        probs, exps, sums = softmax_rows(scores, keep, config, regs.score_scale)
        out = pv_output(probs, v, config, matmul)
    kept = int(keep.sum())
    return HeadResult(
        out=out, s_int=s_int, valid=valid, block_importance=bi, block_valid=bvalid,
        head_importance=hi, head_pruned=pruned, block_keep=block_keep, keep=keep,
        scores=scores, exps=exps, exp_sums=sums, probs=probs,
        int_macs=d * int(valid.sum()), score_macs=d * kept, pv_macs=d * kept,
        blocks_kept=int(block_keep.sum()), blocks_total=int(bvalid.sum()),
    )


def prepare_head(xq, xk, xv, config: HDPConfig, logit_gap: float | None = DEFAULT_LOGIT_GAP,
                 **reg_fields):
    """Quantise float Q, K, V and build matching registers.

    Returns ``(q, k, v, regs, exps)`` where ``exps = (q_exp, k_exp, v_exp)``; the output
    ``out`` of :func:`attention_head` is then in units of ``2**(v_exp - out_frac)``.
    ``score_scale`` is computed from the scales and the real head dimension unless
    given; ``delta`` is computed for the natural-log gap ``logit_gap`` (default
    ``DEFAULT_LOGIT_GAP`` = 4.5, :func:`hdp_rtl.config.delta_for`) unless ``logit_gap`` is
    None or ``delta`` is given; other registers default as in :class:`Registers`.
    """
    q, eq = quantize(xq, config)
    k, ek = quantize(xk, config)
    v, ev = quantize(xv, config)
    fields_ = dict(seq_len=q.shape[0])
    fields_["score_scale"] = score_scale_for(config, eq, ek, head_dim=np.shape(xq)[1])
    if logit_gap is not None:
        fields_["delta"] = delta_for(config, logit_gap, eq, ek, head_dim=np.shape(xq)[1])
    fields_.update(reg_fields)
    return q, k, v, Registers(**fields_), (eq, ek, ev)
