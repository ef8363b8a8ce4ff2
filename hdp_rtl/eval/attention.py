"""Attention methods to plug into :class:`hdp_rtl.eval.model.MiniLM`, with their
pruning counters.

Each method is a callable ``method(layer, q, k, v) -> out`` on ``heads x n x d`` float
arrays (the softmax scale ``1/sqrt(d)`` is not yet applied to ``q``), and keeps a
:class:`PruneStats` in ``method.stats``:

- :class:`Dense`: float softmax attention (the reference, nothing pruned);
- :class:`HDPAttention`: every head through the golden model (quantised Q/K/V, integer
  head and block pruning, fixed-point softmax), dequantised;
- :class:`TopK`: SpAtten-style per-row top-k on the exact float scores (needs a sort);
- :class:`FixedThreshold`: LeOPArd-style per-layer threshold on the exact logits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import golden
from hdp_rtl.config import HDPConfig, Registers

from .model import dense_attention

__all__ = ["PruneStats", "Dense", "HDPAttention", "TopK", "FixedThreshold", "hdp_head",
           "masked_softmax_attention"]


@dataclass
class PruneStats:
    """Pair and head counters summed over every head a method ran."""

    heads: int = 0
    heads_pruned: int = 0
    pairs_valid: int = 0
    pairs_kept: int = 0
    pairs_head_pruned: int = 0      # valid pairs of pruned heads
    blocks_total: int = 0
    blocks_kept: int = 0
    per_layer: dict = field(default_factory=dict)   # layer -> [valid, kept]

    def add(self, layer: int, valid: int, kept: int, head_pruned: bool = False,
            blocks_total: int = 0, blocks_kept: int = 0) -> None:
        self.heads += 1
        self.heads_pruned += int(head_pruned)
        self.pairs_valid += valid
        self.pairs_kept += kept
        self.pairs_head_pruned += valid if head_pruned else 0
        self.blocks_total += blocks_total
        self.blocks_kept += blocks_kept
        acc = self.per_layer.setdefault(layer, [0, 0])
        acc[0] += valid
        acc[1] += kept

    @property
    def pruned(self) -> float:
        """Fraction of valid pairs pruned, by heads and blocks together."""
        return 1.0 - self.pairs_kept / self.pairs_valid if self.pairs_valid else 0.0

    @property
    def head_pruned(self) -> float:
        """Fraction of valid pairs that belong to pruned heads."""
        return self.pairs_head_pruned / self.pairs_valid if self.pairs_valid else 0.0

    @property
    def block_pruned(self) -> float:
        """Fraction of valid pairs pruned by the block (or pair) selection in kept heads."""
        return self.pruned - self.head_pruned

    @property
    def heads_pruned_frac(self) -> float:
        return self.heads_pruned / self.heads if self.heads else 0.0


class _Method:
    name = "method"

    def __init__(self):
        self.stats = PruneStats()

    def reset(self) -> None:
        self.stats = PruneStats()


def masked_softmax_attention(q, k, v, keep):
    """Float softmax over the kept pairs only (``keep``: ``heads x n x n`` bool)."""
    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    s = np.where(keep, s, -np.inf)
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v


class Dense(_Method):
    """Float softmax attention, every pair kept."""

    name = "dense"

    def __call__(self, layer, q, k, v):
        h, n, _ = q.shape
        for _ in range(h):
            self.stats.add(layer, n * n, n * n)
        return dense_attention(layer, q, k, v)


# ---- HDP through the golden model ----------------------------------------------------

def _exact_matmul(a, b):
    """Integer matrix product through float64 BLAS; exact while every partial sum stays
    below 2**53 (true for every HDP width: scores < 2**30, P x V < 2**40)."""
    return np.rint(np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.int64)


def hdp_head(q, k, v, config: HDPConfig, regs: Registers) -> golden.HeadResult:
    """:func:`golden.attention_head`, bit for bit, with its integer matrix products done
    in float64 (exact) for speed; every other step is the golden model's own function.
    ``q, k, v`` are ``n x d`` integers in the ``B``-bit format (``d <= head_dim``; the
    zero padding to ``head_dim`` changes nothing and is skipped)."""
    regs.check(config)
    n = regs.seq_len
    q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
    d = config.head_dim
    qi, qf = golden.split(q, config)
    ki, kf = golden.split(k, config)
    valid = golden.valid_mask(n, bool(regs.causal))
    s_int = np.where(valid, _exact_matmul(qi, ki.T), 0)
    bi, bvalid = golden.block_importance(s_int, valid, config)
    hi = golden.head_importance(s_int, valid)
    pruned = bool(regs.head_prune_enable and hi < regs.head_threshold)
    zeros = np.zeros((n, n), dtype=np.int64)
    if pruned:
        block_keep = np.zeros_like(bvalid)
        keep = np.zeros((n, n), dtype=bool)
        scores, exps, probs = zeros, zeros, zeros
        sums = np.zeros(n, dtype=np.int64)
        out = np.zeros((n, d), dtype=np.int64)
    else:
        F = config.frac_bits
        block_keep = golden.select_blocks(bi, bvalid, regs)
        keep = golden.expand_blocks(block_keep, n, config) & valid
        cross = _exact_matmul(np.concatenate([qi, qf], axis=1),
                              np.concatenate([kf, ki], axis=1).T)
        s = (s_int << (2 * F)) + (cross << F)
        if not regs.approx_enable:
            s = s + _exact_matmul(qf, kf.T)
        scores = np.where(keep, s, 0)
        probs, exps, sums = golden.softmax_rows(scores, keep, config, regs.score_scale)
        acc = _exact_matmul(probs, v)
        sh = config.out_shift
        if sh > 0:
            acc = (acc + (np.int64(1) << (sh - 1))) >> sh
        top = (1 << (config.out_bits - 1)) - 1
        out = np.zeros((n, d), dtype=np.int64)
        out[:, :v.shape[1]] = np.clip(acc, -top - 1, top)
    kept = int(keep.sum())
    return golden.HeadResult(
        out=out, s_int=s_int, valid=valid, block_importance=bi, block_valid=bvalid,
        head_importance=hi, head_pruned=pruned, block_keep=block_keep, keep=keep,
        scores=scores, exps=exps, exp_sums=sums, probs=probs,
        int_macs=d * int(valid.sum()), score_macs=d * kept, pv_macs=d * kept,
        blocks_kept=int(block_keep.sum()), blocks_total=int(bvalid.sum()))


class HDPAttention(_Method):
    """Every head through the golden HDP model.

    ``logit_gap`` (natural-log units) makes the host compute the ``delta`` register per
    head from the tensors' scales (:func:`hdp_rtl.config.delta_for`); otherwise the
    ``delta`` register field is used as given. ``head_thresholds`` (one per layer, in
    units of ``|S_int|`` per valid pair) enable head pruning with
    ``head_threshold = ceil(t * seq_len**2)`` (saturated to the register): the host
    knows ``seq_len``.
    ``check_every`` > 0 runs :func:`golden.attention_head` itself on every that many-th
    head and asserts the fast path agrees bit for bit.
    """

    name = "hdp"

    def __init__(self, config: HDPConfig, *, logit_gap: float | None = None,
                 head_thresholds=None, check_every: int = 0, **reg_fields):
        super().__init__()
        self.config = config
        self.logit_gap = logit_gap
        self.head_thresholds = head_thresholds
        self.check_every = check_every
        self.reg_fields = reg_fields
        self._count = 0

    def head(self, layer, xq, xk, xv):
        """``(out_float, HeadResult, regs, (q, k, v))`` of one float head."""
        cfg = self.config
        fields = dict(self.reg_fields)
        if self.head_thresholds is not None:
            n = xq.shape[0]
            fields["head_prune_enable"] = True
            fields["head_threshold"] = min(int(math.ceil(self.head_thresholds[layer] * n * n)),
                                           (1 << cfg.hi_bits) - 1)
        q, k, v, regs, (_, _, ev) = golden.prepare_head(
            xq, xk, xv, cfg, logit_gap=self.logit_gap, **fields)
        res = hdp_head(q, k, v, cfg, regs)
        self._count += 1
        if self.check_every and self._count % self.check_every == 1 % self.check_every:
            ref = golden.attention_head(q, k, v, cfg, regs)
            if not (np.array_equal(ref.out, res.out) and np.array_equal(ref.keep, res.keep)):
                raise AssertionError("fast HDP head differs from golden.attention_head")
        out = res.out[:, :xq.shape[1]] * 2.0 ** (ev - cfg.out_frac)
        return out, res, regs, (q, k, v)

    def __call__(self, layer, q, k, v):
        outs = []
        for h in range(q.shape[0]):
            out, res, _, _ = self.head(layer, q[h], k[h], v[h])
            self.stats.add(layer, res.pairs_valid, res.pairs_kept, res.head_pruned,
                           res.blocks_total, res.blocks_kept)
            outs.append(out)
        return np.stack(outs)


# ---- baselines ---------------------------------------------------------------------

class TopK(_Method):
    """SpAtten-style: each row keeps its ``round(keep * n)`` (at least 1) largest exact
    scores (ties at the k-th score are all kept)."""

    name = "topk"

    def __init__(self, keep: float):
        super().__init__()
        self.keep = keep

    def __call__(self, layer, q, k, v):
        h, n, _ = q.shape
        kk = min(n, max(1, int(math.floor(self.keep * n + 0.5))))
        s = q @ k.transpose(0, 2, 1)
        kth = np.partition(s, n - kk, axis=-1)[..., n - kk:n - kk + 1]
        keep = s >= kth
        for hh in range(h):
            self.stats.add(layer, n * n, int(keep[hh].sum()))
        return masked_softmax_attention(q, k, v, keep)


class FixedThreshold(_Method):
    """LeOPArd-style: a pair is kept when its exact logit ``q.k/sqrt(d)`` reaches the
    layer's calibrated threshold; each row's largest logit is always kept."""

    name = "threshold"

    def __init__(self, thresholds):
        super().__init__()
        self.thresholds = np.asarray(thresholds, dtype=np.float64)

    def __call__(self, layer, q, k, v):
        h, n, d = q.shape
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        keep = (s >= self.thresholds[layer]) | (s >= s.max(axis=-1, keepdims=True))
        for hh in range(h):
            self.stats.add(layer, n * n, int(keep[hh].sum()))
        return masked_softmax_attention(q, k, v, keep)
