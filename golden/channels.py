"""Channel pruning of Q and K (automatic channel pruning for multi-head attention, Lee and
Hwang 2024), bit-exact on this core.

A run-time **channel mask** per head says which of the ``head_dim`` channels of Q and K
take part in the scores: channel ``c`` is kept when ``mask[c]`` is True. A masked channel
contributes nothing to the integer pass's pair scores (``S_int``, or ``S_sel`` with
``unbiased_selection``: :func:`golden.selection_scores`; so nothing to ``BI`` and ``HI``
either) nor to the full scores of the kept pairs; V and ``P x V`` are not affected (the
mask is on the Q/K channels only). The paper prunes the same number of channels in every
head of a layer ("equal proportion", to avoid channel misalignment); that is a property
of the masks a host writes, not of the computation, so it is not enforced here.

**Definition.** The core computes the head of :func:`golden.attention_head` on
``Q`` and ``K`` with the masked channels set to 0 (:func:`apply_channel_mask`). That is
the same as summing over the kept channels only (:func:`masked_integer_scores`,
:func:`masked_selection_scores`, :func:`masked_full_scores`): a zero element splits into
integer part 0 and fraction part 0 (:func:`golden.split`), so each of the four products
of a masked channel, ``qi*ki``, ``qi*kf``, ``qf*ki`` and ``qf*kf``, is 0, and so is the
selection score's ``(2*qi + 1)*ki``, whose ``ki`` is 0. Zeroing the channel of Q alone
or of K alone gives the same ``S_int`` and full scores (tested), but not the same
``S_sel``: with Q's channel alone zeroed, ``(2*0 + 1)*ki = ki`` remains, so the core
zeroes both (the input unpacker stores the masked channels of Q and K as 0). What the
hardware saves: a lane chunk whose channels are all masked does no work, in the integer
pass (chunks of ``int_lanes``) and in the score operations of the MAC array (chunks of
``mac_lanes``); ``P x V`` runs every chunk. Because ``q.k`` does not change when the channels of Q and K are permuted
together, a host can first move the kept channels to the front
(:func:`pack_kept_channels`, bit-exact), so that ``k`` kept channels occupy
``ceil(k / lanes)`` chunks (:func:`active_chunks`).

The mask is a bool vector of length ``head_dim`` (:func:`mask_from_bits` /
:func:`mask_to_bits` convert it from / to an integer whose bit ``c`` keeps channel ``c``,
the natural register layout). Inputs narrower than ``head_dim`` are zero-padded, as
:func:`golden.attention_head` does.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from hdp_rtl.config import ConfigError, HDPConfig, Registers

from .model import HeadResult, attention_head, full_scores, integer_scores, selection_scores

__all__ = [
    "full_mask", "mask_from_bits", "mask_to_bits", "check_mask", "apply_channel_mask",
    "masked_integer_scores", "masked_selection_scores", "masked_full_scores",
    "attention_head_channels", "active_chunks", "pack_kept_channels",
]

I64 = np.int64


def full_mask(head_dim: int):
    """Every channel kept: the mask that changes nothing."""
    return np.ones(int(head_dim), bool)


def mask_from_bits(bits: int, head_dim: int):
    """The mask of an integer whose bit ``c`` keeps channel ``c``."""
    bits = int(bits)
    if bits < 0 or bits >> int(head_dim):
        raise ConfigError(f"channel mask 0x{bits:x} has bits above head_dim = {head_dim}")
    return np.array([(bits >> c) & 1 for c in range(int(head_dim))], bool)


def mask_to_bits(mask) -> int:
    """The integer whose bit ``c`` is ``mask[c]``."""
    return sum(1 << c for c, m in enumerate(np.asarray(mask, bool)) if m)


def check_mask(mask, config: HDPConfig):
    """``mask`` as a bool vector of length ``config.head_dim``; raises ConfigError else."""
    m = np.asarray(mask)
    if m.ndim != 1 or m.shape[0] != config.head_dim:
        raise ConfigError(f"channel mask must have head_dim = {config.head_dim} entries, "
                          f"not shape {m.shape}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ConfigError("channel mask entries must be 0/1 or bool")
    return m.astype(bool)


def apply_channel_mask(x, mask):
    """``x`` (``n x d``, ``d <= len(mask)``) with its masked channels set to 0 (a copy).
    Columns beyond ``d`` do not exist (they are the zero padding)."""
    x = np.array(x, copy=True)
    m = np.asarray(mask, bool)[:x.shape[1]]
    x[:, ~m] = 0
    return x


def _kept_columns(a, b, mask):
    """``a`` and ``b`` (rows of channels) cut to the channels ``mask`` keeps."""
    a, b = np.asarray(a, dtype=I64), np.asarray(b, dtype=I64)
    m = np.asarray(mask, bool)[:a.shape[1]]
    return a[:, m], b[:, m]


def masked_integer_scores(qi, ki, mask, matmul=None):
    """``S_int[r, c] = sum over kept channels d of qi[r, d] * ki[c, d]``: the sum over the
    kept channels only (:func:`golden.integer_scores` of the kept columns)."""
    return integer_scores(*_kept_columns(qi, ki, mask), matmul)


def masked_selection_scores(qi, ki, mask, config: HDPConfig, matmul=None):
    """The integer pass's pair scores (:func:`golden.selection_scores`: ``S_int``, or
    ``S_sel = sum (2 qi + 1) ki`` with ``config.unbiased_selection``) summed over the
    kept channels only."""
    return selection_scores(*_kept_columns(qi, ki, mask), config, matmul)


def masked_full_scores(q, k, mask, config: HDPConfig, approx: bool, matmul=None):
    """The full scores (:func:`golden.full_scores`) summed over the kept channels only."""
    return full_scores(*_kept_columns(q, k, mask), config, approx, matmul)


def attention_head_channels(q, k, v, config: HDPConfig, regs: Registers, mask, *,
                            matmul=None) -> HeadResult:
    """One head with a channel mask, bit-exact, as the core computes it.

    :func:`golden.attention_head` on ``Q`` and ``K`` with the masked channels zeroed
    (:func:`apply_channel_mask`); ``V`` is unchanged. Every field of the result is the
    head's; the work counters count the kept channels only: ``int_macs = kept * valid
    pairs``, ``score_macs = kept * kept pairs`` (``pv_macs`` stays ``head_dim * kept
    pairs``). With every channel kept the result is :func:`golden.attention_head`'s bit
    for bit; with none, the pair scores ``s_int`` (``S_int`` or ``S_sel``) and the
    scores are all 0 (each row's softmax is then uniform over its kept pairs).
    """
    m = check_mask(mask, config)
    res = attention_head(apply_channel_mask(q, m), apply_channel_mask(k, m), v, config, regs,
                         matmul=matmul)
    kept = int(m.sum())
    return dataclasses.replace(res, int_macs=kept * res.pairs_valid,
                               score_macs=kept * res.pairs_kept)


def active_chunks(mask, lanes: int) -> int:
    """Lane chunks (``lanes`` channels each, in channel order) holding at least one kept
    channel: the chunks a score operation (``lanes = mac_lanes``) or the integer pass
    (``lanes = int_lanes``) still has to run."""
    m = np.asarray(mask, bool)
    lanes = int(lanes)
    if lanes < 1 or m.shape[0] % lanes:
        raise ValueError(f"{m.shape[0]} channels do not split into chunks of {lanes}")
    return int(m.reshape(-1, lanes).any(axis=1).sum())


def pack_kept_channels(q, k, mask):
    """``(q', k', mask')``: the kept channels moved to the front (in order), the masked
    ones after them, the same permutation for Q and K. The scores of ``(q', k',
    mask')`` equal those of ``(q, k, mask)`` bit for bit (a common permutation of the
    channels changes no dot product), and ``mask'`` keeps channels ``0 .. kept-1``, so
    they fill ``ceil(kept / lanes)`` chunks."""
    m = np.asarray(mask, bool)
    q, k = np.asarray(q), np.asarray(k)
    d = q.shape[1]
    order = np.r_[np.flatnonzero(m[:d]), np.flatnonzero(~m[:d])]
    packed = np.zeros(m.shape[0], bool)
    packed[:int(m[:d].sum())] = True
    return q[:, order], k[:, order], packed
