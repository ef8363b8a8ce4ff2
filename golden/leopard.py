"""LeOPArd's bit-serial early termination, bit-exact on this core's integer scores.

The golden model of issue 13 item 1 (the RTL unit is
:class:`hdp_rtl.rtl.bitserial_scorer.BitSerialScorer`). LeOPArd (Li et al., ISCA 2022)
computes a pair's score with K's bits one plane at a time, MSB first, and stops the
pair as soon as an upper bound on its final score falls below the layer's threshold:
the pair would be pruned anyway, and the planes it did not read are the saving.

On this core the scores the threshold selector compares are the integer scores
``S_int = sum_d qi[d] * ki[d]`` (:func:`golden.integer_scores`; ``qi``, ``ki`` the
signed ``I = int_bits``-bit integer parts of :func:`golden.split`), and a pair is kept
when ``S_int >= score_threshold`` (:func:`golden.selectors.select_threshold`). Write
``ki[d]`` in two's complement, ``ki = -2^(I-1) b_{I-1} + sum_{t < I-1} 2^t b_t``, so

    S_int = sum_t w_t P_t,   P_t = sum_d qi[d] b_t[d],   w_{I-1} = -2^(I-1), w_t = 2^t.

**The bound.** After the top ``j`` planes (``t = I-1 .. I-j``, ``j >= 1``) the partial
sum is ``sum_{t >= I-j} w_t P_t``; every remaining plane has a positive weight, and its
bits can be anything (any bit pattern is an ``I``-bit number), so plane ``t`` adds at
most ``2^t Pos`` with ``Pos = sum_d max(0, qi[d])`` (its bits set exactly where
``qi > 0``). Hence

    B_j = partial_j + (2^(I-j) - 1) Pos  >=  S_int,

and the bound is *tight*: the K row whose processed planes are ``ki``'s and whose
remaining bits are 1 exactly where ``qi > 0`` scores ``B_j``. ``B_I = S_int``.
Before any plane, ``B_0 = sum_d max(qi[d] (2^(I-1) - 1), -qi[d] 2^(I-1))`` (each
product's largest value over ``ki``). The bound never increases (``B_j <= B_{j-1}``).

**Termination.** A pair processes plane 1, 2, ... and stops after plane ``j < I`` when
``B_j < threshold``: then ``S_int <= B_j < threshold``, so the pair is pruned and stops
*early*. A pair that does not stop runs all ``I`` planes and yields ``S_int`` exactly
(``B_I``); it is kept when ``S_int >= threshold``. So ``keep`` equals the threshold
rule on ``S_int`` for every pair, terminated or not, and is independent of how early
the pairs stop. At least one plane is always processed (``planes`` is ``1 .. I``).

**Cost.** A pair costs ``planes`` bit-plane steps (one a cycle in the RTL, all
``head_dim`` elements at once) instead of ``I``: ``I - planes`` planes, i.e.
``(I - planes) * head_dim`` bits of K, are never read (:func:`savings`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BitSerialResult", "plane_bounds", "max_score", "bitserial_scores",
           "bitserial_head", "savings"]

I64 = np.int64


def _check_parts(qi, ki, int_bits: int):
    qi, ki = np.asarray(qi, dtype=I64), np.asarray(ki, dtype=I64)
    if qi.ndim != 2 or ki.ndim != 2 or qi.shape[1] != ki.shape[1]:
        raise ValueError(f"qi and ki must be (rows, d) and (cols, d), not {qi.shape}, {ki.shape}")
    lo, hi = -(1 << (int_bits - 1)), (1 << (int_bits - 1)) - 1
    for name, a in (("qi", qi), ("ki", ki)):
        if a.size and (a.min() < lo or a.max() > hi):
            raise ValueError(f"{name} must be {int_bits}-bit integer parts in {lo}..{hi}")
    return qi, ki


def max_score(qi, int_bits: int):
    """``B_0`` of each row of ``qi``: the largest ``qi . k`` over all ``int_bits``-bit K
    rows, ``sum_d max(qi (2^(I-1) - 1), -qi 2^(I-1))``."""
    qi = np.asarray(qi, dtype=I64)
    half = I64(1) << (int_bits - 1)
    return np.maximum(qi * (half - 1), -qi * half).sum(axis=-1)


def plane_bounds(qi, ki, int_bits: int):
    """The upper bounds ``B_j`` of every pair after its top ``j`` planes, ``j = 0 .. I``.

    Returns an int64 array ``(I + 1, rows, cols)``: ``[0]`` is :func:`max_score` of the
    row, ``[j]`` the partial sum of the top ``j`` planes of ``ki`` plus
    ``(2^(I-j) - 1) Pos`` (``Pos = sum_d max(0, qi)``), ``[I]`` the exact ``S_int``.
    """
    qi, ki = _check_parts(qi, ki, int_bits)
    I = int_bits
    pos = np.maximum(qi, 0).sum(axis=1)[:, None]                     # rows x 1
    bounds = np.empty((I + 1, qi.shape[0], ki.shape[0]), dtype=I64)
    bounds[0] = max_score(qi, I)[:, None]
    partial = np.zeros((qi.shape[0], ki.shape[0]), dtype=I64)
    for j in range(1, I + 1):
        t = I - j                                                    # the plane processed
        bits = (ki >> t) & 1                                         # (two's complement)
        weight = -(I64(1) << t) if t == I - 1 else (I64(1) << t)
        partial = partial + weight * (qi @ bits.T)
        bounds[j] = partial + ((I64(1) << t) - 1) * pos
    return bounds


@dataclass
class BitSerialResult:
    """The bit-serial outcome of every pair of one head (arrays ``rows x cols``).

    ``terminated``: stopped after fewer than ``I`` planes (its bound fell below the
    threshold); ``planes``: K bit-planes processed, ``1 .. I`` (0 for an invalid pair);
    ``s_int``: the exact integer score of a pair that ran all planes (0 when terminated
    or invalid); ``keep``: ``s_int >= threshold`` for a pair that ran all planes.
    """

    terminated: np.ndarray
    planes: np.ndarray
    s_int: np.ndarray
    keep: np.ndarray
    valid: np.ndarray
    int_bits: int
    threshold: int


def bitserial_scores(qi, ki, threshold: int, valid=None, *, int_bits: int) -> BitSerialResult:
    """Bit-serial early termination of every pair ``(r, c)`` of one head.

    Parameters
    ----------
    qi, ki : array (rows, d), (cols, d)
        The signed ``int_bits``-bit integer parts of Q and K (:func:`golden.split`).
    threshold : int
        The signed ``score_threshold``: a pair is kept when ``S_int >= threshold``.
    valid : bool array (rows, cols), optional
        The pairs to compute (default every pair); the others get ``planes`` 0.
    int_bits : int
        ``I``, the width of the integer parts (sign included).
    """
    bounds = plane_bounds(qi, ki, int_bits)
    I = int_bits
    shape = bounds.shape[1:]
    valid = np.ones(shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    below = bounds[1:I] < threshold                    # j = 1 .. I-1: may stop after plane j
    stops = below.any(axis=0)
    first = np.argmax(below, axis=0) + 1               # the first j whose bound is below
    terminated = stops & valid
    planes = np.where(valid, np.where(stops, first, I), 0).astype(I64)
    s_int = np.where(valid & ~stops, bounds[I], 0)
    keep = valid & ~stops & (bounds[I] >= threshold)
    return BitSerialResult(terminated=terminated, planes=planes, s_int=s_int, keep=keep,
                           valid=valid, int_bits=I, threshold=int(threshold))


def bitserial_head(q, k, threshold: int, config, n: int | None = None,
                   causal: bool = False) -> BitSerialResult:
    """:func:`bitserial_scores` of a head's fixed-point ``q``, ``k`` (``B``-bit
    elements of ``config``): their integer parts, the pairs valid for ``n`` rows and
    ``causal`` (:func:`golden.valid_mask`)."""
    from .model import split, valid_mask
    n = len(q) if n is None else n
    qi, _ = split(np.asarray(q)[:n], config)
    ki, _ = split(np.asarray(k)[:n], config)
    return bitserial_scores(qi, ki, threshold, valid_mask(n, causal), int_bits=config.int_bits)


def savings(result: BitSerialResult, head_dim: int) -> dict:
    """What early termination saved over the valid pairs of ``result``.

    ``planes_per_pair``: mean planes processed (a plane a cycle: the unit's cycles per
    pair); ``planes_saved_per_pair``: ``I`` less that; ``fraction_saved``: of the
    ``I`` planes; ``k_bits_saved_per_pair``: K bits never read, ``head_dim`` a plane;
    ``terminated``: fraction of pairs stopped early; ``kept``: fraction kept.
    """
    v = result.valid
    pairs = int(v.sum())
    I = result.int_bits
    if not pairs:
        return {"pairs": 0, "planes_per_pair": 0.0, "planes_saved_per_pair": 0.0,
                "fraction_saved": 0.0, "k_bits_saved_per_pair": 0.0, "terminated": 0.0,
                "kept": 0.0}
    planes = float(result.planes[v].mean())
    return {"pairs": pairs, "planes_per_pair": planes, "planes_saved_per_pair": I - planes,
            "fraction_saved": (I - planes) / I,
            "k_bits_saved_per_pair": (I - planes) * head_dim,
            "terminated": float(result.terminated[v].mean()),
            "kept": float(result.keep[v].mean())}
