"""Float64 softmax attention: the one float reference of the repository.

The golden model's accuracy is measured against it (:mod:`golden.accuracy`), and the
MiniLM evaluation uses it as the dense model and for the float baselines
(:mod:`hdp_rtl.eval`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["float_attention", "reference_attention"]


def float_attention(q, k, v, *, keep=None, causal: bool = False, scale: float | None = None):
    """``softmax(q k^T * scale) v`` over the kept pairs, batched over leading axes.

    Parameters
    ----------
    q, k, v : array_like
        ``(..., n, d)`` arrays (``v`` may have its own last dimension).
    keep : array_like of bool, optional
        ``(..., n, n)`` mask (broadcast against the scores) of the pairs the softmax
        runs over; every row must keep at least one pair. Default: every pair.
    causal : bool
        Also drop the pairs with key index > query index.
    scale : float, optional
        Score scale; default ``1/sqrt(d)``.

    Returns
    -------
    numpy.ndarray
        ``(..., n, d_v)`` float64 attention output.
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) * (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if causal:
        below = np.tri(s.shape[-1], dtype=bool)
        keep = below if keep is None else np.asarray(keep, dtype=bool) & below
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v


#: The name the README and the accuracy script use: ``reference_attention(q, k, v,
#: causal=..., scale=...)`` on one ``n x d`` head.
reference_attention = float_attention
