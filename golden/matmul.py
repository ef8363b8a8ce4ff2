"""Integer matrix products for the golden model, pluggable per call.

Every integer matrix product of :mod:`golden.model` goes through a ``matmul(a, b)``
with the semantics of ``a @ b`` on int64. :func:`int64_matmul` is that product itself
(the default); :func:`float64_matmul` gets the same integers from float64 BLAS, several
times faster, and refuses operands for which it could not be exact.
"""
from __future__ import annotations

import numpy as np

__all__ = ["int64_matmul", "float64_matmul", "FLOAT64_EXACT"]

#: Every integer of magnitude below this is a float64, and so is every sum of two of
#: them that stays below it: the limit of exact float64 integer arithmetic.
FLOAT64_EXACT = 2 ** 53


def int64_matmul(a, b):
    """``a @ b`` in int64: the exact reference product."""
    return np.asarray(a, dtype=np.int64) @ np.asarray(b, dtype=np.int64)


def _peak(x) -> int:
    """``max|x|`` as a Python int (no int64 overflow at the most negative value)."""
    return max(int(x.max()), -int(x.min())) if x.size else 0


def float64_matmul(a, b):
    """``a @ b`` of integer arrays through float64 BLAS, rounded back to int64.

    Exact whatever order BLAS sums in: every product and partial sum is an integer of
    magnitude at most ``max|a| * max|b| * inner_dim``, and while that bound is below
    ``2**53`` each is a float64 and each addition is exact.

    Raises
    ------
    TypeError
        If an operand is not of integer type.
    ValueError
        If the bound reaches ``2**53``, i.e. when exactness is not guaranteed.
    """
    a, b = np.asarray(a), np.asarray(b)
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError(f"float64_matmul takes integer arrays, not {a.dtype} and {b.dtype}")
    bound = _peak(a) * _peak(b) * a.shape[-1]
    if bound >= FLOAT64_EXACT:
        raise ValueError(f"float64_matmul would not be exact: partial sums up to {bound} "
                         f"(max|a| * max|b| * inner_dim) reach 2**53")
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
