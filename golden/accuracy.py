"""Measured error of the golden model against float attention.

``python -m golden.accuracy`` prints the table that docs/algorithm.md records: for
random and for peaked (low-entropy) heads at a preset, with both prunings off, the
error of ``out`` against float64 attention on the same quantised inputs (the
fixed-point softmax, the approximation and the output rounding) and against the
original float inputs (quantisation of Q, K, V included). Errors are in units of
``max|V|`` of the head.
"""
from __future__ import annotations

import argparse

import numpy as np

from hdp_rtl.config import HDPConfig

from .model import attention_head, dequantize, prepare_head
from .reference import reference_attention

__all__ = ["random_head", "measure", "main"]


def random_head(rng: np.random.Generator, n: int, d: int, peaked: bool):
    """Float Q, K, V; peaked heads have keys near scaled copies of the queries, so each
    row's attention concentrates on a few keys."""
    q, k, v = rng.standard_normal((3, n, d))
    if peaked:
        k = 2.5 * q[rng.permutation(n)] + 0.3 * k
    return q, k, v


def measure(config: HDPConfig, *, n: int, heads: int, peaked: bool, approx: bool, seed: int = 0):
    """Max and mean |out - reference| / max|V| over ``heads`` random heads."""
    rng = np.random.default_rng(seed)
    d = config.head_dim
    worst_q = worst_f = mean_q = mean_f = 0.0
    for _ in range(heads):
        xq, xk, xv = random_head(rng, n, d, peaked)
        q, k, v, regs, (eq, ek, ev) = prepare_head(
            xq, xk, xv, config, block_prune_enable=False, approx_enable=approx)
        out = attention_head(q, k, v, config, regs).out * 2.0 ** (ev - config.out_frac)
        deq = [dequantize(a, e, config) for a, e in ((q, eq), (k, ek), (v, ev))]
        ref_q = reference_attention(*deq)
        ref_f = reference_attention(xq, xk, xv)
        err_q = np.abs(out - ref_q) / np.abs(deq[2]).max()
        err_f = np.abs(out - ref_f) / np.abs(xv).max()
        worst_q, worst_f = max(worst_q, err_q.max()), max(worst_f, err_f.max())
        mean_q += err_q.mean() / heads
        mean_f += err_f.mean() / heads
    return {"max_vs_quantised": worst_q, "mean_vs_quantised": mean_q,
            "max_vs_float": worst_f, "mean_vs_float": mean_f}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("-n", type=int, default=128, help="tokens per head")
    ap.add_argument("--heads", type=int, default=20)
    args = ap.parse_args(argv)
    cfg = HDPConfig.preset(args.preset)
    print(f"preset {args.preset}, {args.heads} heads of {args.n} x {cfg.head_dim}, "
          f"prunings off; errors in units of max|V|\n")
    print("| heads | approximation | max vs quantised | mean vs quantised | max vs float | mean vs float |")
    print("| --- | --- | --- | --- | --- | --- |")
    for peaked in (False, True):
        for approx in (False, True):
            r = measure(cfg, n=args.n, heads=args.heads, peaked=peaked, approx=approx)
            print(f"| {'peaked' if peaked else 'random'} | {'on' if approx else 'off'} | "
                  f"{r['max_vs_quantised']:.2e} | {r['mean_vs_quantised']:.2e} | "
                  f"{r['max_vs_float']:.2e} | {r['mean_vs_float']:.2e} |")


if __name__ == "__main__":
    main()
