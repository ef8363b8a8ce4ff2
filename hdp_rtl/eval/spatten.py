"""SpAtten's policy (Wang, Zhang, Han, HPCA 2021) inside all-MiniLM-L6-v2, on this core.

:class:`SpAttenAttention` is an attention method for :class:`hdp_rtl.eval.model.MiniLM`
(the same ``method(layer, q, k, v)`` form as :class:`hdp_rtl.eval.attention.HDPAttention`)
that runs every head through the bit-exact golden model on the quantised core, with
SpAtten's selection policy from :mod:`golden.spatten` on top:

- **cascade token pruning**: per input, one :class:`golden.spatten.CascadeState` lives
  across the layers. After each layer, every computed head's token importance (column
  sums of its probability codes, :func:`golden.spatten.token_importance`) is added to
  the tokens' accumulated scores and the top ``k`` alive tokens survive into the next
  layer. A pruned token is neither a query nor a key in any later layer: the heads run
  on the alive tokens only (:func:`golden.spatten.gather_alive`, ``seq_len`` = tokens
  alive) and the importances are scattered back (:func:`golden.spatten.scatter_alive`);
- **cascade head pruning**: a head's importance is the magnitude of its output
  (:func:`golden.spatten.head_importance_out`, shifted by the host to one common scale,
  since each head's V has its own power-of-two scale), accumulated per head index over
  the layers; heads outside the top ``k`` are skipped (output zero) in every later layer;
- **progressive quantization** (optional): the MSB pass is the core's integer pass;
  rows whose largest MSB-pass probability is below a threshold are recomputed with the
  LSBs (:func:`golden.spatten.progressive_head`).

**Schedule.** SpAtten prunes progressively: the per-layer pruning ratios are
hyper-parameters, and the sentence shrinks layer after layer as the accumulated
importance gathers evidence (nothing is pruned before the first layer's probabilities
exist). Here one number, the final keep ratio ``r``, sets them: layer ``l`` of ``L``
computes ``round(a_l * n)`` tokens (at least 1) with ``a_l = 1 - (1 - r) * l / (L - 1)``,
a linear ramp from every token in layer 0 to ``r * n`` in the last layer; heads follow
the same ramp to their own final keep ratio. One knob per kind of pruning keeps the
sweep one-dimensional, and a linear ramp spends the pruning where the importance has
been accumulated over the most layers.

**Pruned tokens and the sentence embedding.** MiniLM's embedding is the mean of every
token's last hidden state, and SpAtten removes pruned tokens from the sentence. Two
readings, both measured:

- ``pool="alive"`` (the default): the mean over the tokens that survive to the last
  layer, i.e. the pooling applied to the sentence SpAtten leaves (for a classifier
  SpAtten reads the kept [CLS] token; here the kept tokens are all there is);
- ``pool="frozen"``: a pruned token's hidden state is frozen at the output of the last
  layer that computed it (a per-token early exit) and still counts in the mean.

The frozen states come from earlier layers, whose geometry differs from the last
layer's; on MiniLM that costs far more than dropping them (docs/evaluation.md), so the
default is the reading that treats SpAtten best. Either way a pruned token's state is
never updated again. See :class:`hdp_rtl.eval.model.MiniLM` for the ``token_mask`` /
``pool_mask`` protocol.

**Key-only variant** (``mode="keys"``, not the issue's policy): a pruned token stops
being a key (and its V row is not fetched) but stays a query, so every token is still
computed by every layer and pooled with its last-layer state. It is SpAtten's token
pruning as it applies to generation, where each step's query is new and only the
cached keys and values are pruned; here it separates the cost of losing a token's
later layers (the frozen state in the mean) from the cost of losing it as a key.

**Work accounting** (:class:`hdp_rtl.eval.attention.PruneStats`), on the same footing as
HDP's: every head of every layer has the full input's ``n**2`` valid pairs; a head that
runs on ``m`` alive tokens computes ``m**2`` of them (``n * m`` in the key-only variant);
the others are pruned *by tokens*, in the *by blocks / tokens* column; a pruned head
computes none, and its ``m**2`` (``n * m``) pairs are pruned *by heads*. On top of the
pairs, a pruned token also skips its projections and feed-forward in the later layers
(*tokens pruned*), which HDP's pair pruning does not.
"""
from __future__ import annotations

import math

import numpy as np

import golden
from golden import spatten as sp
from hdp_rtl.config import HDPConfig, Registers, score_scale_for

from .attention import _Method

__all__ = ["SpAttenAttention", "keep_schedule", "keep_counts", "pruned_fraction",
           "token_keep_for", "msb_row_max", "HEAD_EXP_REF"]

I64 = np.int64

#: Head importances are shifted to units of ``2**(HEAD_EXP_REF - out_frac)`` before they
#: are compared and accumulated (a V scale ``2**v_exp`` below it would lose bits).
HEAD_EXP_REF = -8


def keep_schedule(keep: float, layers: int) -> list[float]:
    """Alive fraction of each layer: 1 in layer 0, linearly down to ``keep`` in the last."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in 0..1, not {keep}")
    if layers <= 1:
        return [1.0] * layers
    return [1.0 - (1.0 - keep) * li / (layers - 1) for li in range(layers)]


def keep_counts(n: int, keep: float, layers: int) -> list[int]:
    """Tokens (or heads) alive in each layer: ``round(a_l * n)``, at least 1, never more
    than the layer before (so the cascade can only shrink)."""
    return [min(n, max(1, int(math.floor(a * n + 0.5)))) for a in keep_schedule(keep, layers)]


def pruned_fraction(lengths, token_keep: float, head_keep: float = 1.0, *, layers: int = 6,
                    heads: int = 12, mode: str = "tokens") -> float:
    """The pruned-pair fraction :class:`SpAttenAttention` reports on inputs of these
    lengths: it depends on the lengths and the schedule only (exact counts, not
    measured), so a keep ratio can be calibrated without running the model."""
    valid = kept = 0
    hc = keep_counts(heads, head_keep, layers)
    for n in lengths:
        tc = keep_counts(int(n), token_keep, layers)
        valid += layers * heads * int(n) ** 2
        queries = (lambda m: m) if mode == "tokens" else (lambda m: int(n))  # noqa: E731
        kept += sum(h * queries(m) * m for h, m in zip(hc, tc))
    return 1.0 - kept / valid if valid else 0.0


def token_keep_for(target: float, lengths, head_keep: float = 1.0, *, layers: int = 6,
                   heads: int = 12, mode: str = "tokens", steps: int = 1000) -> float:
    """The final token keep ratio (a multiple of ``1/steps``) whose
    :func:`pruned_fraction` on ``lengths`` is closest to ``target`` (the largest such
    ratio when several are: the counts are rounded, so neighbours often tie)."""
    grid = np.linspace(1.0, 0.0, steps + 1)
    errs = [abs(pruned_fraction(lengths, r, head_keep, layers=layers, heads=heads, mode=mode)
                - target) for r in grid]
    return float(grid[int(np.argmin(errs))])


def msb_row_max(xq, xk, config: HDPConfig) -> np.ndarray:
    """Largest MSB-pass probability code of every row of one float head (every pair
    valid), quantised as :func:`golden.prepare_head` does: what
    :func:`golden.spatten.progressive_rows` compares with the threshold."""
    q, k, _, regs, _ = golden.prepare_head(xq, xk, xk, config, logit_gap=None,
                                           block_prune_enable=False)
    n = q.shape[0]
    keep = np.ones((n, n), bool)
    s = sp.msb_scores(q, k, config, golden.float64_matmul)
    p, _, _ = golden.softmax_rows(s, keep, config, regs.score_scale)
    return p.max(axis=1)


class SpAttenAttention(_Method):
    """SpAtten's cascade token and head pruning (and optional progressive quantization)
    with every head through the golden model on the quantised core.

    Parameters
    ----------
    config : HDPConfig
        The core (bits, formats, ``seq_max``); its block shape is not used.
    token_keep, head_keep : float
        Final keep ratios of the linear schedule (:func:`keep_schedule`); 1.0 prunes
        nothing, and the method then equals
        ``HDPAttention(config, block_prune_enable=False)`` bit for bit.
    pq_threshold : int or None
        Progressive quantization's threshold, a probability code (``prob_bits``
        fraction bits): rows whose largest MSB-pass probability is below it are
        recomputed with the LSBs. None: no progressive quantization (one full pass).
    approx : bool
        The core's approximation (``qf.kf`` dropped from the full scores).
    pool : str
        ``"alive"``: only the tokens alive in the last layer are pooled; ``"frozen"``: a
        pruned token's hidden state is frozen at the last layer that computed it and
        counts in the mean pooling. (The key-only variant computes every token: it
        pools them all.)
    mode : str
        ``"tokens"`` (SpAtten's policy): a pruned token is neither a query nor a key in
        any later layer; ``"keys"``: it is no key any more but stays a query.
    layers : int
        Layers of the model (MiniLM: 6), for the schedule.
    """

    name = "spatten"

    def __init__(self, config: HDPConfig, *, token_keep: float = 1.0, head_keep: float = 1.0,
                 pq_threshold: int | None = None, approx: bool = False, pool: str = "alive",
                 mode: str = "tokens", layers: int = 6):
        super().__init__()
        if pool not in ("frozen", "alive"):
            raise ValueError(f"pool must be 'frozen' or 'alive', not {pool!r}")
        if mode not in ("tokens", "keys"):
            raise ValueError(f"mode must be 'tokens' or 'keys', not {mode!r}")
        keep_schedule(token_keep, layers)
        keep_schedule(head_keep, layers)
        self.config = config
        self.token_keep = float(token_keep)
        self.head_keep = float(head_keep)
        self.pq_threshold = None if pq_threshold is None else int(pq_threshold)
        self.approx = bool(approx)
        self.pool = pool
        self.mode = mode
        self.layers = int(layers)
        self.state: sp.CascadeState | None = None
        self.history: list = []     # (token_alive, head_alive) of each layer, last input

    # ---- the model's token-pruning protocol ---------------------------------------
    def token_mask(self, layer: int, n: int):
        """The tokens layer ``layer`` computes (all in layer 0: a new input starts)."""
        if (self.mode == "keys" or layer == 0 or self.state is None
                or self.state.token_alive.shape[0] != n):
            return None
        return self.state.token_alive.copy()

    def pool_mask(self, n: int):
        """The tokens the mean pooling averages (None: all)."""
        if self.pool == "frozen" or self.state is None or self.mode == "keys":
            return None
        return self.state.token_alive.copy()

    # ---- one head --------------------------------------------------------------------
    def head(self, xq, xk, xv):
        """``(out_float, out_codes, probs, keep, v_exp, redo)`` of one float head (the
        alive tokens' rows), on the core with block and head pruning off; ``redo`` is
        None without progressive quantization.

        ``xk`` and ``xv`` may have fewer rows than ``xq`` (the key-only variant): they
        are quantised on their own rows and zero-padded to the queries' length, and the
        padding is masked out of every row (bit-exact with a head of that many keys,
        as a key outside ``keep`` changes nothing else in its row)."""
        cfg = self.config
        n, m = xq.shape[0], xk.shape[0]
        if m < n:
            return self._head_fewer_keys(xq, xk, xv)
        q, k, v, regs, (_, _, ev) = golden.prepare_head(
            xq, xk, xv, cfg, logit_gap=None, block_prune_enable=False,
            approx_enable=self.approx)
        if self.pq_threshold is None:
            res = golden.attention_head(q, k, v, cfg, regs, matmul=golden.float64_matmul)
            codes, probs, keep, redo = res.out, res.probs, res.keep, None
        else:
            codes, probs, keep, redo = sp.progressive_head(
                q, k, v, cfg, regs, self.pq_threshold, matmul=golden.float64_matmul)
        out = codes[:, :xq.shape[1]] * 2.0 ** (ev - cfg.out_frac)
        return out, codes, probs, keep, ev, redo

    def _head_fewer_keys(self, xq, xk, xv):
        cfg = self.config
        n, m = xq.shape[0], xk.shape[0]
        q, eq = golden.quantize(xq, cfg)
        k, ek = golden.quantize(xk, cfg)
        v, ev = golden.quantize(xv, cfg)
        regs = Registers(seq_len=n, block_prune_enable=False, approx_enable=self.approx,
                         score_scale=score_scale_for(cfg, eq, ek, head_dim=xq.shape[1]))
        regs.check(cfg)
        kp = np.zeros((n, k.shape[1]), I64)
        vp = np.zeros((n, v.shape[1]), I64)
        kp[:m], vp[:m] = k, v
        keep = np.zeros((n, n), bool)
        keep[:, :m] = True
        if self.pq_threshold is None:
            mm = golden.float64_matmul
            s = np.where(keep, golden.full_scores(q, kp, cfg, self.approx, mm), 0)
            probs, _, _ = golden.softmax_rows(s, keep, cfg, regs.score_scale)
            redo = None
        else:
            probs, redo = sp.progressive_probs(q, kp, keep, self.pq_threshold, cfg, regs,
                                               golden.float64_matmul)
        codes = golden.pv_output(probs, vp, cfg, golden.float64_matmul)
        out = codes[:, :xq.shape[1]] * 2.0 ** (ev - cfg.out_frac)
        return out, codes, probs[:, :m], keep[:, :m], ev, redo

    @staticmethod
    def head_importance(codes, v_exp: int) -> int:
        """:func:`golden.spatten.head_importance_out` in the common units
        ``2**(HEAD_EXP_REF - out_frac)`` (the host's shift by ``v_exp - HEAD_EXP_REF``)."""
        imp = sp.head_importance_out(codes)
        sh = int(v_exp) - HEAD_EXP_REF
        if sh > 24:
            raise OverflowError(f"V scale 2**{v_exp} too large for the head-importance shift")
        return imp << sh if sh >= 0 else imp >> -sh

    # ---- one layer -------------------------------------------------------------------
    def __call__(self, layer, q, k, v):
        h, n, d = q.shape
        st = self.state
        if layer == 0 or st is None or st.token_alive.shape[0] != n or st.head_alive.shape[0] != h:
            st = self.state = sp.CascadeState.start(n, h)
            self.history = []
        alive = st.token_alive.copy()
        m = int(alive.sum())
        self.history.append((alive, st.head_alive.copy()))
        keys_only = self.mode == "keys"
        queries = n if keys_only else m
        self.stats.add_tokens(n, 0 if keys_only else n - m)
        out = np.zeros((h, n, d))
        tok_imp = np.zeros((h, n), I64)
        head_imp = np.zeros(h, I64)
        for hh in range(h):
            if not st.head_alive[hh]:
                self.stats.add(layer, n * n, 0, head_pruned=True, head_pairs=queries * m)
                continue
            o, codes, probs, keep, ev, redo = self.head(
                q[hh] if keys_only else sp.gather_alive(q[hh], alive),
                sp.gather_alive(k[hh], alive), sp.gather_alive(v[hh], alive))
            if keys_only:
                out[hh] = o
            else:
                out[hh, alive] = o
            tok_imp[hh] = sp.scatter_alive(sp.token_importance(probs, keep), alive)
            head_imp[hh] = self.head_importance(codes, ev)
            self.stats.add(layer, n * n, queries * m)
            if redo is not None:
                self.stats.add_rows(queries, int(redo.sum()))
        if layer + 1 < self.layers:        # the cascade: survivors of the next layer
            st.update_tokens(tok_imp, keep_counts(n, self.token_keep, self.layers)[layer + 1])
            st.update_heads(head_imp, keep_counts(h, self.head_keep, self.layers)[layer + 1])
        return out
