"""Attention methods to plug into :class:`hdp_rtl.eval.model.MiniLM`, with their
pruning counters.

Each method is a callable ``method(layer, q, k, v) -> out`` on ``heads x n x d`` float
arrays (the softmax scale ``1/sqrt(d)`` is not yet applied to ``q``), and keeps a
:class:`PruneStats` in ``method.stats``:

- :class:`Dense`: float softmax attention (the reference, nothing pruned);
- :class:`HDPAttention`: every head through the golden model (quantised Q/K/V, integer
  head and block pruning, fixed-point softmax) with its exact float64 matrix products,
  dequantised;
- :class:`TopK`: the per-row top-k oracle on the exact float scores (needs a sort);
- :class:`FixedThreshold`: LeOPArd-style per-layer threshold on the exact logits.

SpAtten's policy (cascade token and head pruning, progressive quantization, through the
golden head) is :class:`hdp_rtl.eval.spatten.SpAttenAttention`; channel pruning of Q and
K (a channel mask per head, through the golden head) is
:class:`hdp_rtl.eval.channels.ChannelAttention`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import golden
from hdp_rtl.config import HDPConfig

from .model import dense_attention

__all__ = ["PruneStats", "Dense", "HDPAttention", "TopK", "FixedThreshold"]


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
    token_layers: int = 0           # (token, layer) pairs of the inputs
    token_layers_pruned: int = 0    # of them, tokens a layer did not compute (SpAtten)
    rows: int = 0                   # query rows computed by progressive quantization
    rows_redone: int = 0            # of them, rows recomputed with the LSBs
    score_kept: float = 0.0         # kept pairs weighted by their score channels kept
    qk_columns_skipped: int = 0     # (token, channel) entries of Q (and of K) not projected
    per_layer: dict = field(default_factory=dict)   # layer -> [valid, kept]

    def add(self, layer: int, valid: int, kept: int, head_pruned: bool = False,
            blocks_total: int = 0, blocks_kept: int = 0, head_pairs: int | None = None,
            score_frac: float = 1.0, qk_columns_skipped: int = 0) -> None:
        """One head: ``valid`` pairs, ``kept`` of them computed. A pruned head counts
        ``head_pairs`` of its pairs as pruned *by the head* (default all ``valid``; SpAtten
        counts only the pairs of its alive tokens, the rest being pruned by tokens).
        Channel pruning: each kept pair's score uses ``score_frac`` of the head's
        channels (``P x V`` all of them), and ``qk_columns_skipped`` (token, channel)
        entries of Q and of K need no projection."""
        self.heads += 1
        self.heads_pruned += int(head_pruned)
        self.pairs_valid += valid
        self.pairs_kept += kept
        self.score_kept += kept * float(score_frac)
        self.qk_columns_skipped += int(qk_columns_skipped)
        if head_pruned:
            self.pairs_head_pruned += valid if head_pairs is None else head_pairs
        self.blocks_total += blocks_total
        self.blocks_kept += blocks_kept
        acc = self.per_layer.setdefault(layer, [0, 0])
        acc[0] += valid
        acc[1] += kept

    def add_tokens(self, total: int, pruned: int) -> None:
        """One layer of one input: ``total`` tokens, ``pruned`` of them not computed."""
        self.token_layers += total
        self.token_layers_pruned += pruned

    def add_rows(self, total: int, redone: int) -> None:
        """Progressive quantization of one head: ``redone`` of ``total`` rows redone."""
        self.rows += total
        self.rows_redone += redone

    def merge(self, other: "PruneStats") -> "PruneStats":
        """Add ``other``'s counters to these (e.g. two calibration folds); returns self."""
        for name in ("heads", "heads_pruned", "pairs_valid", "pairs_kept", "pairs_head_pruned",
                     "blocks_total", "blocks_kept", "token_layers", "token_layers_pruned",
                     "rows", "rows_redone", "score_kept", "qk_columns_skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for layer, (valid, kept) in other.per_layer.items():
            acc = self.per_layer.setdefault(layer, [0, 0])
            acc[0] += valid
            acc[1] += kept
        return self

    @property
    def pruned(self) -> float:
        """Fraction of valid pairs pruned, by heads and blocks together."""
        return 1.0 - self.pairs_kept / self.pairs_valid if self.pairs_valid else 0.0

    @property
    def pruned_work(self) -> float:
        """Fraction of the dense attention MACs skipped: a valid pair costs ``2 d`` MACs
        when dense (``d`` for its score ``q.k``, ``d`` for its ``P x V``); a kept pair
        costs ``d`` for ``P x V`` plus the kept channels of its score. Pair pruning
        alone gives :attr:`pruned`; channel pruning alone ``(1 - kept channels / d) / 2``.
        HDP's integer pass is counted for no method."""
        if not self.pairs_valid:
            return 0.0
        return 1.0 - (self.pairs_kept + self.score_kept) / (2 * self.pairs_valid)

    @property
    def head_pruned(self) -> float:
        """Fraction of valid pairs that belong to pruned heads."""
        return self.pairs_head_pruned / self.pairs_valid if self.pairs_valid else 0.0

    @property
    def block_pruned(self) -> float:
        """Fraction of valid pairs pruned by the block (or pair, or token) selection, i.e.
        not by pruned heads."""
        if not self.pairs_valid:
            return 0.0
        return (self.pairs_valid - self.pairs_kept - self.pairs_head_pruned) / self.pairs_valid

    @property
    def heads_pruned_frac(self) -> float:
        return self.heads_pruned / self.heads if self.heads else 0.0

    @property
    def tokens_pruned(self) -> float:
        """Fraction of (token, layer) pairs not computed (0 for every pair-level method)."""
        return self.token_layers_pruned / self.token_layers if self.token_layers else 0.0

    @property
    def rows_redone_frac(self) -> float | None:
        """Fraction of rows recomputed with the LSBs; None without progressive quantization."""
        return self.rows_redone / self.rows if self.rows else None


class _Method:
    name = "method"

    def __init__(self):
        self.stats = PruneStats()

    def reset(self) -> None:
        self.stats = PruneStats()


class Dense(_Method):
    """Float softmax attention, every pair kept."""

    name = "dense"

    def __call__(self, layer, q, k, v):
        h, n, _ = q.shape
        for _ in range(h):
            self.stats.add(layer, n * n, n * n)
        return dense_attention(layer, q, k, v)


# ---- HDP through the golden model ----------------------------------------------------

class HDPAttention(_Method):
    """Every head through the golden HDP model.

    ``logit_gap`` (natural-log units) makes the host compute the ``delta`` register per
    head from the tensors' scales (:func:`hdp_rtl.config.delta_for`); otherwise the
    ``delta`` register field is used as given. ``head_thresholds`` (one per layer, in
    units of the pair score's magnitude per valid pair: ``|S_int|``, or ``|S_sel|`` with
    ``unbiased_selection``; ``Calibration.head_thresholds``) enable head pruning with
    ``head_threshold = ceil(t * seq_len**2)`` (saturated to the register): the host
    knows ``seq_len``. The head is :func:`golden.attention_head` with
    :func:`golden.float64_matmul`, which raises rather than lose exactness.
    """

    name = "hdp"

    def __init__(self, config: HDPConfig, *, logit_gap: float | None = None,
                 head_thresholds=None, **reg_fields):
        super().__init__()
        self.config = config
        self.logit_gap = logit_gap
        self.head_thresholds = head_thresholds
        self.reg_fields = reg_fields

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
        res = golden.attention_head(q, k, v, cfg, regs, matmul=golden.float64_matmul)
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
    """The per-row top-k oracle: each row keeps its ``round(keep * n)`` (at least 1)
    largest exact scores (ties at the k-th score are all kept). SpAtten's own policy,
    cumulative and per token, is :class:`hdp_rtl.eval.spatten.SpAttenAttention`."""

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
        return golden.float_attention(q, k, v, keep=keep)


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
        return golden.float_attention(q, k, v, keep=keep)
