"""Block-selection policies: the golden side of the selection seam.

The head's integer pass scores every ``Br x Bc`` block; a *policy* then decides which
blocks the rest of the head computes. :func:`golden.attention_head` calls the policy
named by ``config.selector`` (one of :data:`hdp_rtl.config.SELECTOR_NAMES`) as::

    keep = policy(bi, bvalid, regs, config)

with

- ``bi``: int64 block importances, ``block rows x block cols``: the (signed) maximum of
  the integer pass's pair scores (``S_int``, or ``S_sel`` with ``unbiased_selection``:
  :func:`golden.selection_scores`) over each block's valid pairs, 0 for a block without
  one (:func:`golden.block_importance`);
- ``bvalid``: bool, same shape: the blocks holding at least one valid pair (inside
  ``seq_len``, and on or below the diagonal when causal);
- ``regs``: the run-time :class:`hdp_rtl.config.Registers` (rule, ``rho``, ``delta``,
  ``block_k``, ``score_threshold``, ``block_prune_enable``, ...);
- ``config``: the build-time :class:`hdp_rtl.config.HDPConfig`;

and it returns ``keep``, a bool mask of the same shape; blocks outside ``bvalid`` must
not be kept. Head pruning happens before the policy is called (a pruned head calls
none), and the kept pairs are ``expand_blocks(keep) & valid``.

Policies: ``"hdp"`` (:func:`select_blocks`, the top-k-free rule), ``"topk"``
(:func:`select_topk`, SpAtten-style per-row top-k) and ``"threshold"``
(:func:`select_threshold`, LeOPArd-style per-layer score threshold). A new policy is
one function with this signature plus one entry in
:data:`SELECTORS` under its name in ``SELECTOR_NAMES``; its RTL unit sits behind the
same seam (``hdp_rtl.rtl.selectors``).
"""
from __future__ import annotations

import numpy as np

from hdp_rtl.config import BLOCK_RULE_MEAN, HDPConfig, Registers

__all__ = ["SELECTORS", "select_blocks", "select_topk", "select_threshold"]

I64 = np.int64


def select_blocks(bi, bvalid, regs: Registers, config: HDPConfig | None = None):
    """Top-k-free row-balanced block selection (spec step 4): the keep mask of blocks.

    Mean rule (``block_rule`` 0): ``256*nb*BI >= rho*nb*max + (256-rho)*sum``.
    Delta rule (``block_rule`` 1): ``BI >= max - delta``. Both over each block row's
    valid blocks; no sort, no division. Pruning disabled keeps every valid block.
    ``config`` is not needed by this policy (the seam passes it to every policy).
    """
    bi = np.asarray(bi, dtype=I64)
    if not regs.block_prune_enable:
        return bvalid.copy()
    lowest = np.iinfo(I64).min
    nb = bvalid.sum(axis=1, keepdims=True).astype(I64)
    row_max = np.where(bvalid, bi, lowest).max(axis=1, keepdims=True)
    row_max = np.where(nb > 0, row_max, 0)
    if regs.block_rule == BLOCK_RULE_MEAN:
        row_sum = np.where(bvalid, bi, 0).sum(axis=1, keepdims=True)
        rho = regs.rho
        keep = 256 * nb * bi >= rho * nb * row_max + (256 - rho) * row_sum
    else:
        keep = bi >= row_max - regs.delta
    return keep & bvalid


def select_topk(bi, bvalid, regs: Registers, config: HDPConfig | None = None):
    """SpAtten-style per-row top-k (selector ``"topk"``): in each block row the
    ``regs.block_k`` valid blocks of largest ``BI`` (the lower block column wins a tie;
    ``block_k`` >= the row's valid blocks keeps them all). Pruning disabled keeps every
    valid block. :func:`golden.spatten.row_topk_selector_for` with ``k`` read from the
    register."""
    # (golden.spatten imports golden.model, which imports this module: import late)
    from .spatten import row_topk_selector_for
    return row_topk_selector_for(regs.block_k)(bi, bvalid, regs, config)


def select_threshold(bi, bvalid, regs: Registers, config: HDPConfig | None = None):
    """LeOPArd-style score threshold (selector ``"threshold"``): in each block row the
    valid blocks with ``BI >= regs.score_threshold`` (signed), and always the row's best
    block: the valid block of largest ``BI``, the lowest column of a tie (as
    :func:`select_topk` with ``block_k`` 1). Pruning disabled keeps every valid block.
    With 1 x 1 blocks ``BI`` is the pair's integer score."""
    bi = np.asarray(bi, dtype=I64)
    if not regs.block_prune_enable:
        return bvalid.copy()
    best = np.argmax(np.where(bvalid, bi, np.iinfo(I64).min), axis=1)   # first of a tie
    is_best = np.arange(bi.shape[1])[None, :] == best[:, None]
    return ((bi >= regs.score_threshold) | is_best) & bvalid


#: Selector name (``HDPConfig.selector``) -> policy function.
SELECTORS = {"hdp": select_blocks, "topk": select_topk, "threshold": select_threshold}
