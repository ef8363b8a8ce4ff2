"""Channel pruning of Q and K in all-MiniLM-L6-v2, on this core (issue 13, item 2).

After "Automatic Channel Pruning for Multi-Head Attention" (Lee and Hwang, 2024): each
head keeps the same number of its ``head_dim`` Q/K channels ("equal proportion" across
heads, which the paper enforces against channel misalignment); a masked channel takes
no part in the scores. The core's computation is :func:`golden.channels.attention_head_channels`.

The paper *learns* its pruning indicator (training with channel-similarity-based weights,
a reweight module that compensates for the removed channels, and an initialisation from
the attention difference). None of the training and no reweight module is reproduced
here: the channels are chosen once, training-free, from the dense model's Q and K on a
calibration set, with one of the paper's two criteria made training-free (channel
similarity, attention difference; plus an ablation), and the model is used as it is.

Criteria (per layer and head, over every (query, key) pair of every calibration input;
``d = 32``; ``q_c``, ``k_c`` are channel ``c`` of the dense float Q and K):

- **contribution**: channel ``c`` adds ``C_c[r, j] = q_c[r] * k_c[j] / sqrt(d)`` to the
  logit of pair ``(r, j)``. A softmax row ignores a constant, so only the row-centred
  part counts: ``C~_c[r, j] = q_c[r] * (k_c[j] - mean_j k_c) / sqrt(d)``. Their Gram
  matrix over the calibration pairs is ``G[c, c'] = sum_inputs (Q^T Q)[c, c'] *
  (K~^T K~)[c, c'] / d`` (``K~``: K with each channel's mean over the input's keys
  removed): ``O(n d^2)`` per input, no ``n x n`` array (:func:`contribution_gram`).
- **channel similarity** (``"similarity"``): ``sim[c, c'] = G[c, c'] / sqrt(G[c, c] *
  G[c', c'])``, the cosine similarity of two channels' contributions to the (centred)
  logits over the calibration pairs. A channel is worth its contribution's size times
  how little the other channels of the head duplicate it:
  ``score[c] = sqrt(G[c, c]) * (1 - mean_{c' != c} |sim[c, c']|)``. The ``k`` channels
  of largest score are kept. (The paper multiplies its learned indicator by
  similarity-based weights; here the indicator is the contribution's size.)
- **contribution size** (``"magnitude"``, an ablation of the similarity criterion: its
  weight left out): ``score[c] = sqrt(G[c, c])``, the size (root of the summed square
  over the calibration pairs) of the channel's centred contribution to the logits.
- **attention difference** (``"attention"``): the change in the head's attention
  probabilities when channel ``c`` alone is removed. With ``P`` the dense softmax of
  the logits ``S`` and ``P^(-c)`` that of ``S - C_c``, ``score[c] = mean over query rows
  of (1/2) sum_j |P[r, j] - P^(-c)[r, j]|`` (the total-variation distance of each row,
  averaged over the rows of every calibration input). The ``k`` channels whose removal
  changes the attention most are kept (:func:`attention_difference`).

Ties go to the lower channel index (as every top-k of :mod:`golden.spatten`).
"""
from __future__ import annotations

import math

import numpy as np

import golden
from golden import channels as gch

from .attention import HDPAttention

__all__ = ["CRITERIA", "contribution_gram", "similarity_scores", "attention_difference",
           "select_channels", "ChannelAttention"]

#: The channel-selection criteria :meth:`hdp_rtl.eval.sweep.Calibration.channel_masks`
#: knows, with their descriptions for the tables.
CRITERIA = {
    "similarity": "channel similarity",
    "attention": "attention difference",
    "magnitude": "contribution size",
}


def contribution_gram(q, k) -> np.ndarray:
    """Gram matrix ``G`` (``d x d``) of the row-centred per-channel logit contributions of
    one head of one input (``q``, ``k``: ``n x d`` float): ``G[c, c'] = sum_{r, j}
    C~_c[r, j] * C~_c'[r, j]`` with ``C~_c[r, j] = q[r, c] * (k[j, c] - mean_j k[j, c])
    / sqrt(d)``. Gram matrices of several inputs add up."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    kc = k - k.mean(axis=0, keepdims=True)
    return (q.T @ q) * (kc.T @ kc) / q.shape[1]


def similarity_scores(gram) -> np.ndarray:
    """The channel-similarity criterion of a head from its (summed) Gram matrix:
    ``sqrt(G[c, c]) * (1 - mean_{c' != c} |sim[c, c']|)``; a channel with no
    contribution scores 0."""
    g = np.asarray(gram, np.float64)
    d = g.shape[0]
    diag = np.clip(np.diag(g), 0.0, None)
    norm = np.sqrt(diag)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = g / np.outer(norm, norm)
    sim = np.where(np.outer(norm, norm) > 0, np.abs(sim), 0.0)
    np.fill_diagonal(sim, 0.0)
    redundancy = sim.sum(axis=1) / max(d - 1, 1)
    return norm * (1.0 - np.clip(redundancy, 0.0, 1.0))


def _softmax(s):
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def attention_difference(q, k) -> np.ndarray:
    """Per channel, the summed total-variation distance over the query rows between the
    head's softmax attention and the attention with that channel removed (``q``, ``k``:
    ``n x d`` float of one head of one input; logits ``q k^T / sqrt(d)``). Divide the
    sum over inputs by their total rows for the mean."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    s = q @ k.T * scale
    p = _softmax(s)
    # every channel at once: d x n x n logits without channel c
    pc = _softmax(s[None] - q.T[:, :, None] * k.T[:, None, :] * scale)
    return 0.5 * np.abs(pc - p[None]).sum(axis=(1, 2))


def select_channels(scores, keep: int) -> np.ndarray:
    """Bool masks (the shape of ``scores``): in each head (last axis), the ``keep``
    channels of largest score, the lower index first on a tie."""
    s = np.asarray(scores, np.float64)
    d = s.shape[-1]
    keep = min(max(int(keep), 0), d)
    order = np.argsort(-s, axis=-1, kind="stable")
    mask = np.zeros(s.shape, bool)
    np.put_along_axis(mask, order[..., :keep], True, axis=-1)
    return mask


class ChannelAttention(HDPAttention):
    """Every head through the golden core with a channel mask per (layer, head).

    ``masks`` is ``layers x heads x head_dim`` bool. The host computes only the kept
    channels of Q and K (a fixed mask lets it drop those columns of the Q and K
    projections), so the power-of-two scales of Q and K come from the kept channels; the
    head is :func:`golden.channels.attention_head_channels`. Block pruning is off unless
    the registers say otherwise (``logit_gap`` and the other fields of
    :class:`HDPAttention`: channel pruning with HDP's rule on top). The counters add, per
    head, the fraction of score channels kept and the Q/K projection columns skipped.
    """

    name = "channels"

    def __init__(self, config, masks, **kw):
        if kw.get("head_thresholds") is not None:
            raise ValueError("ChannelAttention does not prune heads")
        kw.setdefault("block_prune_enable", False)
        super().__init__(config, **kw)
        self.masks = np.asarray(masks, bool)

    def head(self, layer, xq, xk, xv, head_index: int = 0):
        cfg = self.config
        mask = np.zeros(cfg.head_dim, bool)
        mask[:xq.shape[1]] = self.masks[layer, head_index, :xq.shape[1]]
        xq = gch.apply_channel_mask(xq, mask)
        xk = gch.apply_channel_mask(xk, mask)
        q, k, v, regs, (_, _, ev) = golden.prepare_head(
            xq, xk, xv, cfg, logit_gap=self.logit_gap, **self.reg_fields)
        res = gch.attention_head_channels(q, k, v, cfg, regs, mask,
                                          matmul=golden.float64_matmul)
        out = res.out[:, :xq.shape[1]] * 2.0 ** (ev - cfg.out_frac)
        return out, res, regs, (q, k, v)

    def __call__(self, layer, q, k, v):
        h, n, d = q.shape
        outs = []
        for hh in range(h):
            out, res, _, _ = self.head(layer, q[hh], k[hh], v[hh], hh)
            kept = int(self.masks[layer, hh, :d].sum())
            self.stats.add(layer, res.pairs_valid, res.pairs_kept, res.head_pruned,
                           res.blocks_total, res.blocks_kept, score_frac=kept / d,
                           qk_columns_skipped=(d - kept) * n)
            outs.append(out)
        return np.stack(outs)
