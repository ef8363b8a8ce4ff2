"""SpAtten's cascade token and head pruning across a model's layers, for ``make bench``:
per layer, the tokens alive, the heads skipped, the input beats the host sends for
the gathered heads against the full heads', and integer heads to run on the core.

The cascade is the evaluation's (:class:`hdp_rtl.eval.spatten.SpAttenAttention`: its
schedule, importances and :class:`golden.spatten.CascadeState`), with every pair of the
alive tokens computed (SpAtten prunes by tokens and heads, not by pairs). The host
gathers the alive tokens' rows of Q, K and V (:func:`golden.spatten.gather_alive`,
docs/interface.md "SpAtten's cascade"), so a head of ``m`` alive tokens is a plain head
of ``seq_len = m`` on the core.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import golden
from golden.spatten import quickselect_cycles
from hdp_rtl.config import HDPConfig
from hdp_rtl.eval.spatten import SpAttenAttention, keep_counts

from .topk_match import COMPARATORS

__all__ = ["Cascade", "minilm_cascade", "synthetic_cascade", "MINILM_TEXT"]

#: The stored MiniLM heads' long input (scripts/export_minilm_heads.py): 128 tokens.
MINILM_TEXT = ("data/paragraphs.txt", 3)


class Cascade(SpAttenAttention):
    """:class:`SpAttenAttention` (SpAtten's policy: a pruned token is no query and no
    key in any later layer; block and head pruning off, exact scores)
    that also keeps what the benchmark reports: ``records``, one a layer, and
    ``core_heads``, the integer heads ``(layer, head, q, k, v, regs)`` of each layer's
    first and last alive head, to run on the core. ``seeds``: pivot seeds of SpAtten's
    quick-select model for the next layer's tokens."""

    def __init__(self, config: HDPConfig, token_keep: float, head_keep: float,
                 layers: int = 6, seeds: int = 5):
        super().__init__(config, token_keep=token_keep, head_keep=head_keep, layers=layers)
        self.seeds = seeds
        self.records: list[dict] = []
        self.core_heads: list[tuple] = []
        self._heads: list[tuple] = []

    def head(self, xq, xk, xv):
        # the integer head the core gets: what SpAttenAttention.head quantises
        q, k, v, regs, _ = golden.prepare_head(xq, xk, xv, self.config, logit_gap=None,
                                               block_prune_enable=False,
                                               approx_enable=self.approx)
        self._heads.append((q, k, v, regs))
        return super().head(xq, xk, xv)

    def __call__(self, layer, q, k, v):
        self._heads = []
        out = super().__call__(layer, q, k, v)
        heads, n, _ = np.shape(q)
        alive, head_alive = self.history[-1]
        m, computed = int(alive.sum()), np.flatnonzero(head_alive)
        for i in sorted({0, len(computed) - 1}):
            self.core_heads.append((layer, int(computed[i]), *self._heads[i]))
        bpr = self.config.beats_per_row
        record = {"layer": layer, "tokens": m, "heads": len(computed),
                  "heads_skipped": heads - len(computed),
                  "beats": len(computed) * 3 * m * bpr, "beats_full": heads * 3 * n * bpr,
                  "pairs": len(computed) * m * m, "pairs_full": heads * n * n,
                  "token_topk_cycles": 0.0}
        if layer + 1 < self.layers:
            # SpAtten's engine picks the next layer's tokens among this layer's alive
            keep = keep_counts(n, self.token_keep, self.layers)[layer + 1]
            scores = self.state.token_score[alive]
            record["token_topk_cycles"] = float(np.mean([
                quickselect_cycles(scores, keep, COMPARATORS, s) for s in range(self.seeds)]))
        self.records.append(record)
        return out


def minilm_cascade(config: HDPConfig, max_tokens: int, token_keep: float, head_keep: float,
                   root=None) -> tuple[Cascade, str]:
    """The cascade on all-MiniLM-L6-v2's 6 layers x 12 heads for :data:`MINILM_TEXT`
    cut to ``max_tokens`` (needs the eval extra and the model package; raises
    ImportError, ModuleNotFoundError or FileNotFoundError without them)."""
    from hdp_rtl.eval.model import load_minilm

    model = load_minilm(max_tokens=max_tokens)
    path, line = MINILM_TEXT
    root = Path(root or Path(__file__).resolve().parents[1])
    ids = model.tokenize((root / path).read_text().splitlines()[line])
    cascade = Cascade(config, token_keep, head_keep, layers=len(model.layers))
    model.hidden_states(ids, cascade)
    return cascade, (f"all-MiniLM-L6-v2, {path} line {line + 1} ({len(ids)} tokens), "
                     f"{len(model.layers)} layers x {model.heads} heads")


def synthetic_cascade(config: HDPConfig, n: int, token_keep: float, head_keep: float,
                      layers: int = 6, heads: int = 12, seed: int = 2026) -> tuple[Cascade, str]:
    """The cascade on random heads (a fresh draw each layer, MiniLM's 32-wide heads or
    ``head_dim`` if narrower; keys near a permutation of the queries, so attention
    concentrates), when the model is not installed."""
    rng = np.random.default_rng(seed)
    d = min(32, config.head_dim)
    cascade = Cascade(config, token_keep, head_keep, layers=layers)
    for layer in range(layers):
        q, k, v = rng.standard_normal((3, heads, n, d))
        k = 2.0 * q[:, rng.permutation(n)] + 0.3 * k
        cascade(layer, q, k, v)
    return cascade, (f"synthetic: {layers} layers x {heads} random heads of {n} tokens "
                     f"(seed {seed})")
