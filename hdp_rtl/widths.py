"""Derived widths of the HDP co-processor, each computed once.

:class:`~hdp_rtl.config.HDPConfig`'s properties and the units' constructors both call
these functions, so a unit built from keyword arguments and a unit built from a config
agree on every width by construction. ``docs/algorithm.md`` gives the reason for each.
"""
from __future__ import annotations

__all__ = ["clog2", "bits_for", "index_bits", "ceil_div", "data_range", "pair_score_max",
           "sint_bits",
           "score_bits", "hi_bits", "delta_bits", "exp_sum_bits", "recip_bits",
           "pv_acc_bits", "out_shift", "lane_bits"]


def clog2(x: int) -> int:
    """Bits needed to index ``x`` items (0 for x <= 1)."""
    return max(0, (int(x) - 1).bit_length())


def bits_for(x: int) -> int:
    """Bits of an unsigned number holding values 0..x (at least 1)."""
    return max(1, int(x).bit_length())


def index_bits(count: int) -> int:
    """Width of an index 0..count-1 (at least 1, so a one-entry index is a real net)."""
    return max(1, clog2(count))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def data_range(data_bits: int) -> tuple[int, int]:
    """``(min, max)`` of a ``data_bits``-bit two's-complement element."""
    return -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1


def pair_score_max(*, int_bits: int, head_dim: int, unbiased: bool = False) -> int:
    """The largest ``|score|`` of a pair in the integer pass: a sum of ``head_dim``
    products of I-bit integer parts (``-2**(I-1) .. 2**(I-1) - 1``).

    ``S_int = sum qi*ki``: each product is at most ``2**(2I-2)`` in magnitude (both
    factors ``-2**(I-1)``). With ``unbiased`` (``S_sel = sum (2qi+1)*ki``), ``2qi+1``
    is odd with ``|2qi+1| <= 2**I - 1``, so each product is at most
    ``(2**I - 1) * 2**(I-1)`` (either sign: ``2qi+1`` and ``ki`` reach their extremes of
    both signs)."""
    per_product = (((1 << int_bits) - 1) << (int_bits - 1) if unbiased
                   else 1 << (2 * int_bits - 2))
    return head_dim * per_product


def sint_bits(*, int_bits: int, head_dim: int, unbiased: bool = False) -> int:
    """Signed width of the integer pass's pair score (``S_int``, or ``S_sel`` with
    ``unbiased``): holds ``-pair_score_max .. pair_score_max``. Both are
    ``2I + log2(head_dim)`` bits for a power-of-two ``head_dim``: ``S_sel``'s bound is
    below ``2**(2I-1) * head_dim``."""
    return bits_for(pair_score_max(int_bits=int_bits, head_dim=head_dim,
                                   unbiased=unbiased)) + 1


def score_bits(*, data_bits: int, head_dim: int) -> int:
    """Signed width of the full score ``S``: a sum of ``head_dim`` products of B-bit numbers."""
    return 2 * data_bits + clog2(head_dim)


def hi_bits(*, int_bits: int, head_dim: int, seq_max: int, unbiased: bool = False) -> int:
    """Unsigned width of the head importance (sum of the pair score's magnitude over
    seq_max**2 pairs)."""
    return bits_for(pair_score_max(int_bits=int_bits, head_dim=head_dim, unbiased=unbiased)
                    * seq_max * seq_max)


def delta_bits(*, int_bits: int, head_dim: int, unbiased: bool = False) -> int:
    """Unsigned width of the ``delta`` register (a difference of two pair scores)."""
    return sint_bits(int_bits=int_bits, head_dim=head_dim, unbiased=unbiased) + 1


def exp_sum_bits(*, seq_max: int, exp_bits: int) -> int:
    """Unsigned width of a row's sum of exponentials (each at most ``2**exp_bits``)."""
    return bits_for(seq_max << exp_bits)


def recip_bits(*, prob_bits: int, recip_guard_bits: int) -> int:
    """Unsigned width of the row reciprocal (its maximum is ``2**(prob_bits+guard)``)."""
    return prob_bits + recip_guard_bits + 1


def pv_acc_bits(*, prob_bits: int, data_bits: int, seq_max: int) -> int:
    """Signed width of a ``P x V`` accumulator."""
    return (prob_bits + 1) + data_bits + clog2(seq_max) + 1


def out_shift(*, frac_bits: int, prob_bits: int, out_frac: int) -> int:
    """Right shift from the ``P x V`` accumulator to the output format."""
    return frac_bits + prob_bits - out_frac


def lane_bits(bits: int, *, lanes=(8, 16, 32)) -> int:
    """The narrowest stream lane of ``lanes`` that holds a ``bits``-bit value."""
    for lane in lanes:
        if bits <= lane:
            return lane
    raise ValueError(f"{bits} bits fit no lane of {lanes}")
