"""What the host already has: the same attention head in NumPy on this machine's CPU.

``make bench`` prints these next to the core's cycles (issue 11's stretch goal is a
core faster than NumPy on the CPU a user already has). Two figures per head size,
best of several runs (NumPy as installed, its BLAS threads included): the repository's
float64 reference (``golden.float_attention``: ``softmax(q k^T / sqrt(d)) v``) and the
golden model's bit-exact head (the reference every RTL check uses; its
speed bounds how many heads a regression can check an hour).
"""
from __future__ import annotations

import time

import numpy as np

import golden
from hdp_rtl.config import HDPConfig

__all__ = ["host_times"]


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def host_times(config: HDPConfig, sizes=(128, 256), repeat: int = 5, seed: int = 0) -> dict:
    """Seconds per head of ``n`` tokens (``head_dim`` of ``config``), best of ``repeat``:
    ``{n: {"numpy_float": s, "golden": s}}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        xq, xk, xv = rng.standard_normal((3, n, config.head_dim))
        q, k, v, regs, _ = golden.prepare_head(xq, xk, xv, config)
        out[n] = {"numpy_float": _best(lambda: golden.float_attention(xq, xk, xv), repeat),
                  "golden": _best(lambda: golden.attention_head(q, k, v, config, regs),
                                  max(1, repeat // 2))}
    return out
