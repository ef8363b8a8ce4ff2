"""SpAtten's selection policy (Wang, Zhang, Han, HPCA 2021), bit-exact on this core.

The golden model of issue 12 item 1: SpAtten's cascade token and head pruning, its
top-k selection, and its progressive quantization, in the fixed-point formats the HDP
core already uses (:mod:`golden.model`). Of these only the per-row top-k is built in
RTL (selector ``"topk"``, :func:`row_topk_selector_for`); every
function is integer arithmetic (int64) where the hardware would be integer, and reuses
:mod:`golden.model` for every step it shares with HDP (the integer pass, the scores,
the softmax), so the two policies cannot drift apart.

**Tie rule** (every top-k below): among equal values the entry of *lower index* wins.
It is what a hardware compare-and-zero-eliminate pass gives when it streams entries in
index order and keeps ``> threshold`` entries plus the first equal ones until ``k`` are
kept; it makes every selection a deterministic function of its integer inputs.

**Formats.** Probabilities are the softmax unit's codes (``HeadResult.probs``, unsigned,
``prob_bits`` fraction bits: ``2**prob_bits`` is 1.0); outputs are ``HeadResult.out``
codes (signed ``out_bits``, ``out_frac`` fraction bits, in units of V's scale). All
importances are exact integer sums of these codes: nothing rounds or saturates.

**How a caller applies token pruning.** SpAtten removes a pruned token from the
sentence: it is neither a query nor a key in any later layer. The caller gathers the
alive tokens' rows of Q, K and V (:func:`gather_alive`), runs
:func:`golden.attention_head` on the shorter head (``seq_len`` = number alive; order is
kept, so the causal rule ``c <= r`` is unchanged among them), and scatters the head's
token importance back to full length (:func:`scatter_alive`). That is bit-exact with
masking: a pruned key ANDed out of ``keep`` gets probability 0 and changes no other
entry of its row, because the softmax only reads kept pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hdp_rtl.config import HDPConfig, Registers

from .model import (_as_head, approximated, full_scores, integer_scores, pv_output, softmax_rows, split,
                    valid_mask)

__all__ = [
    "topk_mask", "row_topk_selector_for", "token_importance", "head_importance_out",
    "gather_alive", "scatter_alive", "CascadeState", "msb_scores", "progressive_rows",
    "progressive_probs", "progressive_head", "quickselect_cycles",
]

I64 = np.int64


def _int_vector(values, name: str):
    a = np.asarray(values)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must be a 1-D integer vector, not {a.dtype} {a.shape}")
    return a.astype(I64)


# ---- top-k -----------------------------------------------------------------------------

def topk_mask(values, k: int, valid=None):
    """Bool mask of the ``k`` largest valid entries of a 1-D integer vector.

    Parameters
    ----------
    values : array_like of int
        The integer importances (any integer dtype; floats are rejected because the
        hardware compares integers).
    k : int
        How many to keep. ``k >= number valid`` keeps every valid entry; ``k <= 0``
        keeps none.
    valid : array_like of bool, optional
        Entries that may be kept (default all).

    Returns
    -------
    numpy.ndarray of bool
        Exactly ``min(max(k, 0), number valid)`` True entries, all valid.

    Notes
    -----
    Tie rule: among equal values the entry of lower index is kept first. Entries are
    ordered by ``~v`` (``-v - 1``: descending in ``v``, never overflows int64) with a
    stable sort, so equal values stay in index order.
    """
    v = _int_vector(values, "values")
    valid = np.ones(v.shape, bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != v.shape:
        raise ValueError(f"valid has shape {valid.shape}, values {v.shape}")
    idx = np.flatnonzero(valid)
    order = idx[np.argsort(~v[idx], kind="stable")]
    keep = np.zeros(v.shape, bool)
    keep[order[:max(int(k), 0)]] = True
    return keep


def row_topk_selector_for(k: int):
    """A block-selection policy keeping the ``k`` most important blocks of each block row.

    Returns ``policy(bi, bvalid, regs, config) -> keep`` with the seam signature of
    :mod:`golden.selectors`: in each block row, the ``k`` blocks of largest block
    importance ``BI`` among the valid ones (:func:`topk_mask`, lower block column wins a
    tie), so a row keeps ``min(k, nb_R)`` blocks and never an invalid one. With
    ``regs.block_prune_enable`` off it keeps every valid block, as the HDP policy does.

    ``k`` is fixed when the policy is made; :func:`golden.selectors.select_topk`, the
    policy of selector ``"topk"`` (``SELECTORS["topk"]``, RTL unit
    ``hdp_rtl.rtl.topk_selector.TopKSelector``), makes it with ``k`` from the
    ``block_k`` register. ``BI`` is HDP's block importance (max of ``S_int``), the
    importance the seam sees; SpAtten's own token importance is cumulative
    (:class:`CascadeState`).
    """
    k = int(k)

    def policy(bi, bvalid, regs: Registers, config: HDPConfig | None = None):
        bi = np.asarray(bi, dtype=I64)
        bvalid = np.asarray(bvalid, dtype=bool)
        if not regs.block_prune_enable:
            return bvalid.copy()
        return np.stack([topk_mask(bi[r], k, bvalid[r]) for r in range(bi.shape[0])])

    policy.__name__ = policy.__qualname__ = f"row_top{k}"
    return policy


# ---- importances -----------------------------------------------------------------------

def token_importance(p, keep):
    """SpAtten's token importance of one head: the column sums of its probabilities.

    ``imp[c] = sum_r p[r, c]`` over the kept pairs ``(r, c)``: the attention token ``c``
    receives. ``p`` is ``HeadResult.probs`` (codes with ``prob_bits`` fraction bits),
    ``keep`` is ``HeadResult.keep``. Exact: each sum fits ``prob_bits + 1 +
    clog2(seq_max)`` unsigned bits. Returns an int64 vector of length ``n``.
    """
    p = np.asarray(p, dtype=I64)
    return np.where(np.asarray(keep, bool), p, 0).sum(axis=0, dtype=I64)


def head_importance_out(out) -> int:
    """SpAtten's head importance of one head: ``sum |out|`` of its output codes.

    ``out`` is ``HeadResult.out`` (signed ``out_bits`` codes). Exact in ``out_bits +
    clog2(n * d)`` bits. A pruned head's output is zero, so its importance is 0.
    The codes are in units of V's scale ``2**(v_exp - out_frac)``: heads compared
    against each other must share ``v_exp`` (or the host shifts them to a common one).
    """
    return int(np.abs(np.asarray(out, dtype=I64)).sum())


def gather_alive(x, alive):
    """The rows of ``x`` (a ``n x d`` Q, K or V) of the alive tokens, in order."""
    return np.asarray(x)[np.asarray(alive, bool)]


def scatter_alive(values, alive):
    """A per-alive-token int64 vector back at full length; pruned tokens get 0."""
    alive = np.asarray(alive, bool)
    full = np.zeros(alive.shape, I64)
    full[alive] = np.asarray(values, dtype=I64)
    return full


# ---- cascade pruning -------------------------------------------------------------------

@dataclass
class CascadeState:
    """SpAtten's cascade pruning state across layers.

    Attributes
    ----------
    token_score : numpy.ndarray of int64
        Accumulated token importance, length ``n`` (sum over heads and layers of
        :func:`token_importance`, frozen once a token is pruned).
    head_score : numpy.ndarray of int64
        Accumulated head importance per head index (sum over layers of
        :func:`head_importance_out`, frozen once the head is pruned).
    token_alive, head_alive : numpy.ndarray of bool
        The tokens and heads still computed. Cascade rule: once False, False for good.
    """

    token_score: np.ndarray
    head_score: np.ndarray
    token_alive: np.ndarray
    head_alive: np.ndarray

    @classmethod
    def start(cls, n_tokens: int, n_heads: int) -> "CascadeState":
        """Nothing accumulated, every token and head alive."""
        return cls(np.zeros(n_tokens, I64), np.zeros(n_heads, I64),
                   np.ones(n_tokens, bool), np.ones(n_heads, bool))

    @staticmethod
    def _step(score, alive, importance, k: int):
        imp = np.asarray(importance, dtype=I64)
        if imp.ndim == 2:          # one row per head: sum over heads first
            imp = imp.sum(axis=0, dtype=I64)
        if imp.shape != score.shape:
            raise ValueError(f"importance has shape {imp.shape}, expected {score.shape}")
        score = score + np.where(alive, imp, 0)
        # top-k among the alive only: a pruned entry never comes back
        return score, topk_mask(score, k, valid=alive)

    def update_tokens(self, importance, k: int) -> None:
        """Add one layer's token importance, then keep the top ``k`` alive tokens.

        ``importance`` is the full-length vector (or a ``heads x n`` array, summed over
        heads) of :func:`token_importance`, scattered back with :func:`scatter_alive`.
        Pruned tokens add nothing. The survivors are the ``k`` alive tokens of largest
        accumulated importance (lower token index wins a tie).
        """
        self.token_score, self.token_alive = self._step(
            self.token_score, self.token_alive, importance, k)

    def update_heads(self, importance, k: int) -> None:
        """Add one layer's head importances (per head index; pruned heads add nothing),
        then keep the top ``k`` alive heads (lower head index wins a tie); the others
        are skipped in every later layer."""
        self.head_score, self.head_alive = self._step(
            self.head_score, self.head_alive, importance, k)


# ---- progressive quantization ----------------------------------------------------------

def msb_scores(q, k, config: HDPConfig, matmul=None):
    """The MSB-pass scores: ``S_int * 2**(2F)`` for every pair (mask separately).

    SpAtten's MSB pass uses the high bits of Q and K; on this core those are the integer
    parts (:func:`golden.split`), so the MSB pass is the integer pass
    (:func:`golden.integer_scores`), shifted to the full scores' scale so the same
    ``score_scale`` register applies. Fits ``score_bits``.
    """
    qi, _ = split(q, config)
    ki, _ = split(k, config)
    return integer_scores(qi, ki, matmul) << (2 * config.frac_bits)


def progressive_rows(p_msb, keep, threshold: int):
    """The rows to recompute with the LSBs: bool per row.

    Row ``r`` is flagged when its largest kept MSB-pass probability is strictly below
    ``threshold`` (an unsigned probability code, ``prob_bits`` fraction bits): a flat
    row, whose MSB-only probabilities are least trustworthy. A row without a kept pair
    is never flagged (it has nothing to recompute).
    """
    keep = np.asarray(keep, bool)
    row_max = np.where(keep, np.asarray(p_msb, dtype=I64), -1).max(axis=1)
    return keep.any(axis=1) & (row_max < int(threshold))


def progressive_probs(q, k, keep, threshold: int, config: HDPConfig, regs: Registers,
                      matmul=None):
    """SpAtten's progressive quantization of one head's probabilities.

    Pass 1 (MSBs): :func:`golden.softmax_rows` of :func:`msb_scores` over ``keep``.
    Rows flagged by :func:`progressive_rows` are recomputed in pass 2 (MSBs + LSBs):
    :func:`golden.softmax_rows` of :func:`golden.full_scores` (with ``qf.kf`` dropped
    when :func:`golden.approximated`) over the flagged rows' kept pairs only. The softmax is
    per row, so a recomputed row equals that row of the full-precision head.

    Returns
    -------
    probs : numpy.ndarray of int64
        ``n x n`` probability codes: pass 2's rows where flagged, pass 1's elsewhere.
    redo : numpy.ndarray of bool
        The flagged rows (whose LSBs the hardware fetches).
    """
    keep = np.asarray(keep, bool)
    s1 = np.where(keep, msb_scores(q, k, config, matmul), 0)
    p1, _, _ = softmax_rows(s1, keep, config, regs.score_scale)
    redo = progressive_rows(p1, keep, threshold)
    keep2 = keep & redo[:, None]
    s2 = np.where(keep2, full_scores(q, k, config, approximated(config, regs), matmul), 0)
    p2, _, _ = softmax_rows(s2, keep2, config, regs.score_scale)
    return np.where(redo[:, None], p2, p1), redo


def progressive_head(q, k, v, config: HDPConfig, regs: Registers, threshold: int, *,
                     matmul=None):
    """One head with SpAtten's progressive quantization, on this core's formats.

    Every valid pair is kept (SpAtten prunes by tokens and heads, which the caller does
    by gathering the alive tokens, :func:`gather_alive`, and skipping pruned heads), so
    ``regs.block_prune_enable`` and ``regs.head_prune_enable`` must be off. The
    probabilities are :func:`progressive_probs` over the valid pairs (MSB pass, flat
    rows recomputed with the LSBs), the output :func:`golden.pv_output` of them, as
    :func:`golden.attention_head` does with its own probabilities.

    With ``threshold`` above ``2**prob_bits`` every row is recomputed and the result
    is :func:`golden.attention_head`'s (block pruning off) bit for bit; with
    ``threshold = 0`` no row is, and the head is the MSB (integer) pass alone.

    Returns
    -------
    out : numpy.ndarray of int64
        ``n x head_dim`` output codes (``HeadResult.out``'s format).
    probs : numpy.ndarray of int64
        ``n x n`` probability codes.
    keep : numpy.ndarray of bool
        The valid pairs (every one is computed).
    redo : numpy.ndarray of bool
        The rows recomputed with the LSBs.
    """
    regs.check(config)
    if regs.block_prune_enable or regs.head_prune_enable:
        raise ValueError("progressive_head keeps every valid pair: turn block_prune_enable "
                         "and head_prune_enable off")
    n = regs.seq_len
    q, k, v = (_as_head(x, name, n, config) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    keep = valid_mask(n, bool(regs.causal))
    probs, redo = progressive_probs(q, k, keep, threshold, config, regs, matmul)
    return pv_output(probs, v, config, matmul), probs, keep, redo


# ---- SpAtten's top-k engine latency ----------------------------------------------------

def quickselect_cycles(values, k: int, comparators: int, rng) -> int:
    """Cycles SpAtten's quick-select top-k engine takes to find the k-th boundary.

    SpAtten's latency model, not an RTL unit of this project. Each round streams the
    ``m`` current candidates past a pivot drawn uniformly from them (``rng``) through
    ``comparators`` parallel comparators into ping-pong FIFOs: ``ceil(m / P) + 3``
    cycles. With ``g`` candidates above the pivot and ``e`` equal to it, the boundary
    is found when ``g == k`` (keep ``> pivot``) or ``g < k <= g + e`` (keep ``>= pivot``,
    ties by lower index); otherwise the next round takes the side that holds it: the
    ``g`` larger ones when ``k < g``, else the smaller ones with ``k - g - e``.
    ``k <= 0`` or ``k >= n`` needs no selection: 0 cycles. Not counted: the final
    compare-with-threshold and zero-eliminate pass over all ``n`` values.

    Parameters
    ----------
    values : array_like of int
        The 1-D integer importances.
    k : int
        How many to keep.
    comparators : int
        ``P``, the comparators working in parallel (>= 1).
    rng : numpy.random.Generator or int
        Source of the pivots; an int seeds ``numpy.random.default_rng``, so a given seed
        always gives the same count.
    """
    v = _int_vector(values, "values")
    if comparators < 1:
        raise ValueError(f"comparators must be >= 1, not {comparators}")
    rng = np.random.default_rng(rng)
    k = int(k)
    if k <= 0 or k >= v.size:
        return 0
    cycles = 0
    while True:                      # invariant: 1 <= k < len(v)
        cycles += math.ceil(v.size / comparators) + 3
        pivot = v[rng.integers(v.size)]
        above, equal = v[v > pivot], int(np.count_nonzero(v == pivot))
        g = above.size
        if g == k or g < k <= g + equal:
            return cycles
        if k < g:
            v = above
        else:
            v, k = v[v < pivot], k - g - equal
