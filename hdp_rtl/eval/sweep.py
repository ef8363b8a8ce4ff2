"""Settings, calibration and runs of the MiniLM evaluation.

A :class:`Setting` names one attention method with its parameters; :func:`run` embeds a
:class:`Dataset` with it and measures pruning and fidelity against the dense float
model. :class:`Calibration` holds the dense model's Q and K of every layer, from which
per-layer head thresholds (for a target fraction of pruned heads), per-layer
LeOPArd-style logit thresholds (for a target pair sparsity), SpAtten's progressive
quantization threshold (for a target fraction of recomputed rows), SpAtten's token
keep ratio (for a target pruned fraction) and the channel masks of channel pruning (the
same number of Q/K channels kept in every head, chosen by a criterion,
:mod:`hdp_rtl.eval.channels`) are set offline.

**One comparison.** :data:`METHODS` is the single list of the methods compared: dense,
HDP's rules, SpAtten, the LeOPArd-style threshold, channel pruning and the top-k oracle,
each a line made of the rows of some setting groups. The report puts every method in one
table and one plot of fidelity against the *pruned attention work* (the fraction of the
dense attention MACs, score ``q.k`` and ``P x V``, that a method skips:
:attr:`hdp_rtl.eval.attention.PruneStats.pruned_work`), so that methods pruning pairs
and methods pruning channels share an axis.

**Out of sample.** :class:`CrossCalibration` splits an input set into two halves (first
and second half of the file, so that adjacent paraphrase pairs stay together) and
embeds every input with the values calibrated on the *other* half: no number of a
report is calibrated on the input it is measured on (2-fold cross-fitting). The
in-sample mode (each set calibrated on itself) is kept for reproducing earlier runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import golden
from golden.channels import mask_to_bits
from hdp_rtl.config import BLOCK_RULE_DELTA, BLOCK_RULE_MEAN, DEFAULT_LOGIT_GAP, HDPConfig

from .attention import Dense, FixedThreshold, HDPAttention, PruneStats, TopK
from .channels import (CRITERIA, ChannelAttention, attention_difference, contribution_gram,
                       select_channels, similarity_scores)
from .metrics import cosines, fidelity
from .model import dense_attention
from .spatten import SpAttenAttention, msb_row_max, token_keep_for

__all__ = ["Dataset", "Setting", "Calibration", "CrossCalibration", "DEFAULT_HDP",
           "Method", "METHODS", "FAMILIES", "base_config", "hdp", "spatten", "channels",
           "dense", "sweep_settings", "quick_settings", "baselines_at", "run",
           "choose_default", "read_lines", "repo_data", "uses_calibration",
           "CHANNEL_KEEPS", "comparison_rows", "pruned_work", "choose_out_of_sample"]

#: The documented default of the evaluation (docs/evaluation.md): the delta rule with
#: the host computing ``delta`` for the logit gap ``DEFAULT_LOGIT_GAP`` (``delta_for``),
#: element-wise (1x1) blocks, I=4/F=4, unbiased selection scores
#: (``HDPConfig.unbiased_selection``) and the approximation off (on this MAC array it
#: saves no area, docs/fpga.md, and costs fidelity). It prunes >= 55% of the pairs of
#: 150-250-token inputs at mean embedding cosine >= 0.99, chosen out of sample. The
#: `default` preset and `prepare_head` carry the same choice.
_D = HDPConfig.preset("default")
DEFAULT_HDP = dict(rule="delta", gap=DEFAULT_LOGIT_GAP, block_rows=_D.block_rows,
                   block_cols=_D.block_cols, int_bits=_D.int_bits, frac_bits=_D.frac_bits,
                   approx=False, unbiased=_D.unbiased_selection)


# ---- data ------------------------------------------------------------------------------

def read_lines(path) -> list[str]:
    """Non-empty stripped lines of a text file."""
    return [s.strip() for s in Path(path).read_text(encoding="utf-8").splitlines() if s.strip()]


def repo_data() -> Path:
    """The repository's ``data/`` folder (sentences.txt, paragraphs.txt)."""
    return Path(__file__).resolve().parents[2] / "data"


@dataclass
class Dataset:
    """Input texts, their token ids (truncated to the model's limit) and the pairs
    whose similarities are compared (``None``: every pair)."""

    name: str
    texts: list
    ids: list
    pairs: np.ndarray | None = None
    dense: np.ndarray | None = None     # dense float embeddings, set by embed_dense

    @classmethod
    def from_texts(cls, name, texts, model, pair_texts=None):
        texts = list(texts)
        pairs = None
        if pair_texts:
            index = {t: i for i, t in enumerate(texts)}
            rows = []
            for a, b in pair_texts:
                for t in (a, b):
                    if t not in index:
                        index[t] = len(texts)
                        texts.append(t)
                rows.append((index[a], index[b]))
            pairs = np.asarray(rows, dtype=np.int64)
        return cls(name, texts, [model.tokenize(t) for t in texts], pairs)

    @property
    def tokens(self) -> np.ndarray:
        return np.asarray([len(i) for i in self.ids])

    def embed_dense(self, model) -> np.ndarray:
        self.dense = np.stack([model.embed_ids(i) for i in self.ids])
        return self.dense


def read_pairs(path) -> list[tuple[str, str]]:
    """Tab-separated text pairs, one a line."""
    out = []
    for line in read_lines(path):
        a, sep, b = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}: a pairs line needs two texts separated by a tab: {line!r}")
        out.append((a.strip(), b.strip()))
    return out


# ---- settings ------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One attention method: ``method`` is dense, hdp, spatten, topk, threshold or
    channels; ``group`` is the line it belongs to in the plots."""

    label: str
    group: str
    method: str
    params: tuple = ()

    @property
    def p(self) -> dict:
        return dict(self.params)


def _params(**kw) -> tuple:
    return tuple(sorted(kw.items()))


def hdp(group: str, label: str | None = None, **kw) -> Setting:
    """An HDP setting; unnamed fields take :data:`DEFAULT_HDP`'s values (``rule`` mean
    uses ``rho`` in -1..1, the delta rule ``gap`` (natural-log logit gap, the host turns
    it into ``delta``) or a fixed ``delta`` register; ``head_sparsity`` calibrates head
    thresholds; ``prune=False`` disables block pruning)."""
    p = dict(DEFAULT_HDP)
    p.update(kw)
    if p["rule"] == "mean":
        p.pop("gap", None)
        p.setdefault("rho", 0.0)
    elif "delta" in p:
        p.pop("gap", None)
    if p.get("prune", True) is False:
        for key in ("rule", "gap", "rho", "delta", "block_rows", "block_cols"):
            p.pop(key, None)
    return Setting(label or describe(p), group, "hdp", _params(**p))


def _score_parts(p: dict) -> list[str]:
    """Label parts for the score options that differ from :data:`DEFAULT_HDP`'s."""
    parts = []
    if p.get("approx", DEFAULT_HDP["approx"]) != DEFAULT_HDP["approx"]:
        parts.append("approx" if p["approx"] else "exact")
    if p.get("unbiased", DEFAULT_HDP["unbiased"]) != DEFAULT_HDP["unbiased"]:
        parts.append("unbiased selection" if p["unbiased"] else "floor selection")
    return parts


def describe(p: dict) -> str:
    """A short label of HDP parameters."""
    parts = []
    if p.get("prune", True) is False:
        parts.append("no block pruning")
    elif p["rule"] == "mean":
        parts.append(f"mean rho={p['rho']:+.2f}")
    elif "delta" in p:
        parts.append(f"delta reg={p['delta']}")
    else:
        parts.append(f"delta gap={p['gap']:g}")
    if "block_rows" in p:
        parts.append(f"{p['block_rows']}x{p['block_cols']}")
    parts.append(f"I{p['int_bits']}F{p['frac_bits']}")
    parts += _score_parts(p)
    if p.get("head_sparsity"):
        parts.append(f"heads {p['head_sparsity']:.0%}")
    return " ".join(parts)


def spatten(group: str, label: str | None = None, **kw) -> Setting:
    """A SpAtten setting (:class:`hdp_rtl.eval.spatten.SpAttenAttention`) on the core at
    :data:`DEFAULT_HDP`'s bits and approximation: ``token_keep`` and ``head_keep`` are
    the final keep ratios of the linear schedule; ``pruned`` instead calibrates the token
    keep ratio for that pruned fraction; ``pq_rows`` calibrates progressive
    quantization's threshold to recompute that fraction of rows (``pq`` gives the
    threshold as a probability in 0..1); ``pool`` is ``alive`` (default) or ``frozen``;
    ``mode`` is ``tokens`` (default) or ``keys`` (the key-only variant)."""
    p = dict(token_keep=1.0, head_keep=1.0, int_bits=DEFAULT_HDP["int_bits"],
             frac_bits=DEFAULT_HDP["frac_bits"], approx=DEFAULT_HDP["approx"],
             unbiased=DEFAULT_HDP["unbiased"])
    p.update(kw)
    if "pruned" in p:
        p.pop("token_keep", None)
    return Setting(label or describe_spatten(p), group, "spatten", _params(**p))


def describe_spatten(p: dict) -> str:
    """A short label of SpAtten parameters."""
    parts = ["SpAtten"]
    if "pruned" in p:
        parts.append(f"at {p['pruned']:.1%} pruned")
    elif p["token_keep"] < 1:
        parts.append(f"tokens {p['token_keep']:.0%}")
    if p.get("head_keep", 1.0) < 1:
        parts.append(f"heads {p['head_keep']:.0%}")
    if "pq_rows" in p:
        parts.append(f"PQ {p['pq_rows']:.0%} rows")
    elif "pq" in p:
        parts.append(f"PQ p<{p['pq']:g}")
    if p.get("mode", "tokens") != "tokens":
        parts.append(f"{p['mode']} only")
    if p.get("pool", "alive") != "alive":
        parts.append(f"{p['pool']} states")
    if (p["int_bits"], p["frac_bits"]) != (DEFAULT_HDP["int_bits"], DEFAULT_HDP["frac_bits"]):
        parts.append(f"I{p['int_bits']}F{p['frac_bits']}")
    parts += _score_parts(p)
    if len(parts) == 1:
        parts.append("no pruning")
    return " ".join(parts)


def dense() -> Setting:
    """The dense float model itself (its row reuses the dense embeddings: fidelity 1)."""
    return Setting("dense (float)", "dense", "dense")


#: Kept Q/K channels of the channel-pruning sweep, of ``head_dim = 32``: 75, 62.5, 50
#: and 37.5 %.
CHANNEL_KEEPS = (24, 20, 16, 12)


def channels(criterion: str, keep: int, group: str | None = None, label: str | None = None,
             **kw) -> Setting:
    """A channel-pruning setting (:class:`hdp_rtl.eval.channels.ChannelAttention`) on the
    core at :data:`DEFAULT_HDP`'s bits and approximation: ``keep`` of the 32 Q/K channels
    of every head, chosen by ``criterion`` (a key of
    :data:`hdp_rtl.eval.channels.CRITERIA`) on the calibration inputs. ``hdp=True`` adds
    HDP's default rule (the delta rule at :data:`DEFAULT_HDP`'s gap) on top."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown channel criterion {criterion!r}")
    p = dict(criterion=criterion, keep=int(keep), int_bits=DEFAULT_HDP["int_bits"],
             frac_bits=DEFAULT_HDP["frac_bits"], approx=DEFAULT_HDP["approx"],
             unbiased=DEFAULT_HDP["unbiased"])
    p.update(kw)
    on_top = " + HDP default" if p.get("hdp") else ""
    if group is None:
        group = ("channels + HDP default" if p.get("hdp")
                 else f"channels: {CRITERIA[criterion]}")
    label = label or f"channels {p['keep']}/32, {CRITERIA[criterion]}{on_top}"
    return Setting(label, group, "channels", _params(**p))


def base_config(preset: str = "default", seq_max: int = 256) -> HDPConfig:
    """The preset with MiniLM's head dimension 32 and at most ``seq_max`` tokens."""
    cfg = HDPConfig.preset(preset)
    changes = dict(head_dim=32)
    if cfg.seq_max < seq_max and preset == "default":
        changes["seq_max"] = seq_max
    changes["int_lanes"] = min(cfg.int_lanes, 32)
    changes["mac_lanes"] = min(cfg.mac_lanes, 32)
    changes["axis_elems"] = min(cfg.axis_elems, 32)
    return cfg.replace(**changes)


def hdp_config(base: HDPConfig, p: dict) -> HDPConfig:
    """``base`` with a setting's bits and block shape. Narrower data (``B < 8``) makes a
    score step worth ``2**(2*(8-B))`` times more, so ``score_scale_frac`` drops by as
    much to keep the ``score_scale`` register in its 20 bits."""
    changes = {k: p[k] for k in ("int_bits", "frac_bits", "block_rows", "block_cols") if k in p}
    if "unbiased" in p:
        changes["unbiased_selection"] = bool(p["unbiased"])
    # a setting with the approximation on needs a build with the approximation unit
    changes["approximation"] = bool(p.get("approx", DEFAULT_HDP["approx"]))
    cfg = base.replace(**changes)
    narrow = 8 - cfg.data_bits
    if narrow > 0 and cfg.data_bits < base.data_bits:
        cfg = cfg.replace(score_scale_frac=max(0, base.score_scale_frac - 2 * narrow))
    return cfg


def quick_settings() -> list[Setting]:
    """Without ``--sweep``: the documented default, the quantisation-only point and the
    mean rule at rho 0 (the baselines, SpAtten included, follow at the default's
    sparsity: :func:`baselines_at`)."""
    return [
        dense(),
        hdp("quantisation only", prune=False),
        hdp("HDP default", label="HDP default: " + describe(dict(DEFAULT_HDP))),
        hdp("mean rule 1x4", rule="mean", rho=0.0, block_rows=1, block_cols=4),
        channels("attention", 16),
        channels("similarity", 16),
    ]


def sweep_settings() -> list[Setting]:
    """Every setting of ``--sweep`` (baselines at equal sparsity come after)."""
    s = [dense(), hdp("quantisation only", prune=False),
         hdp("quantisation only, approximation on", prune=False, approx=True)]
    for rho in (-0.5, -0.3, -0.15, 0.0, 0.2):
        s.append(hdp("mean rule 1x4", rule="mean", rho=rho, block_rows=1, block_cols=4))
    for rho in (-0.3, 0.0):
        s.append(hdp("mean rule 1x1", rule="mean", rho=rho, block_rows=1, block_cols=1))
    for gap in (3.0, 4.0, 4.25, 4.5, 4.75, 5.0, 5.5, 6.0, 8.0):
        s.append(hdp("delta rule 1x1", gap=gap))
    # the earlier default's scores (floor integer parts, approximation on) and each
    # change alone (docs/evaluation.md, recommendations 4 and 5)
    for gap in (4.5, 5.0):
        s.append(hdp("delta 1x1 floor selection, approx", gap=gap, unbiased=False, approx=True))
        s.append(hdp("delta 1x1 floor selection", gap=gap, unbiased=False))
        s.append(hdp("delta 1x1 approx", gap=gap, approx=True))
    for gap in (3.0, 3.5, 3.75, 4.0, 5.0, 6.0, 8.0):
        s.append(hdp("delta rule 1x4", gap=gap, block_rows=1, block_cols=4))
    for gap in (3.75, 4.0):
        s.append(hdp("delta 1x4 I5F3", gap=gap, block_rows=1, block_cols=4, int_bits=5,
                     frac_bits=3))
    for br, bc in ((1, 2), (2, 2), (1, 8), (4, 4)):
        for gap in (4.0, 5.0):
            s.append(hdp(f"delta rule {br}x{bc}", gap=gap, block_rows=br, block_cols=bc))
    for br, bc in ((1, 1), (1, 4)):
        s.append(hdp("delta register 8", delta=8, block_rows=br, block_cols=bc))
    for ib, fb in ((3, 5), (5, 3), (6, 2), (4, 3), (5, 4), (6, 4)):
        for gap in (4.5, 5.0):
            s.append(hdp(f"delta 1x1 I{ib}F{fb}", gap=gap, int_bits=ib, frac_bits=fb))
    s.append(hdp("mean rule 1x4 approx", rule="mean", rho=0.0, block_rows=1, block_cols=4,
                 approx=True))
    for hs in (0.03, 0.10, 0.25):
        s.append(hdp("head pruning only", prune=False, head_sparsity=hs))
        s.append(hdp("default + head pruning", head_sparsity=hs))
    s.append(spatten("reference", label="SpAtten no pruning (= quantisation only)"))
    for tk in (0.9, 0.7, 0.5, 0.3, 0.2, 0.1):
        s.append(spatten("SpAtten tokens", token_keep=tk))
    for tk in (0.9, 0.7, 0.5, 0.3):
        s.append(spatten("SpAtten tokens, frozen states", token_keep=tk, pool="frozen"))
    for tk in (0.7, 0.5, 0.3, 0.1):
        s.append(spatten("SpAtten keys only", token_keep=tk, mode="keys"))
    for hk in (0.9, 0.75, 0.5):
        s.append(spatten("SpAtten heads only", head_keep=hk))
    for tk in (0.9, 0.7, 0.5, 0.3):
        s.append(spatten("SpAtten tokens + heads 75%", token_keep=tk, head_keep=0.75))
    for rows in (0.1, 0.3):
        s.append(spatten("SpAtten PQ only", pq_rows=rows))
        s.append(spatten("SpAtten tokens 30% + PQ", token_keep=0.3, pq_rows=rows))
    s.append(spatten("SpAtten tokens approx", token_keep=0.3, approx=True))
    for keep in (0.8, 0.6, 0.5, 0.4, 0.3):
        s.append(Setting(f"top-k keep {keep:.0%}", "top-k oracle", "topk", _params(keep=keep)))
    for sp in (0.2, 0.4, 0.5, 0.6, 0.7):
        s.append(Setting(f"threshold sparsity {sp:.0%}", "threshold (LeOPArd)", "threshold",
                         _params(sparsity=sp)))
    for criterion in CRITERIA:
        for keep in CHANNEL_KEEPS:
            s.append(channels(criterion, keep))
    for keep in (24, 16):
        s.append(channels("attention", keep, hdp=True))
    return s


def baselines_at(sparsity: float, tag: str) -> list[Setting]:
    """Top-k, fixed-threshold and SpAtten baselines at a measured sparsity (the
    threshold and SpAtten's token keep ratio are calibrated for it, out of sample)."""
    return [
        Setting(f"top-k at {tag} ({sparsity:.1%})", "top-k oracle", "topk",
                _params(keep=1.0 - sparsity)),
        Setting(f"threshold at {tag} ({sparsity:.1%})", "threshold (LeOPArd)", "threshold",
                _params(sparsity=sparsity)),
        spatten("SpAtten tokens", label=f"SpAtten at {tag} ({sparsity:.1%})", pruned=sparsity),
    ]


# ---- the methods compared --------------------------------------------------------------

#: The method families (``Setting.method``) ``hdp-rtl eval --methods`` can choose from.
FAMILIES = ("dense", "hdp", "spatten", "threshold", "channels", "topk")


@dataclass(frozen=True)
class Method:
    """One method of the comparison: ``name`` in the comparison table and plot,
    ``family`` the ``Setting.method`` of its rows, ``groups`` the setting groups whose
    rows (of that family) make its line."""

    name: str
    family: str
    groups: tuple

    def holds(self, row) -> bool:
        return row["method"] == self.family and row["group"] in self.groups


#: The single list of methods compared side by side (one table and one plot per input
#: set): dense, the core with nothing pruned, HDP's block rules, SpAtten, the LeOPArd-style
#: threshold, channel pruning (both criteria, and with HDP's rule on top) and the top-k
#: oracle. Every row of a method comes from the settings run (no run of its own).
METHODS = (
    Method("dense (float)", "dense", ("dense",)),
    Method("quantisation only (core, nothing pruned)", "hdp", ("quantisation only",)),
    Method("HDP delta rule 1x1 (the default's rule)", "hdp", ("HDP default", "delta rule 1x1")),
    Method("HDP delta rule 1x4", "hdp", ("delta rule 1x4",)),
    Method("HDP mean rule 1x1", "hdp", ("mean rule 1x1",)),
    Method("HDP mean rule 1x4", "hdp", ("mean rule 1x4",)),
    Method("SpAtten (cascade token pruning)", "spatten", ("SpAtten tokens",)),
    Method("LeOPArd-style threshold", "threshold", ("threshold (LeOPArd)",)),
    Method("channel pruning, attention difference", "channels",
           ("channels: attention difference",)),
    Method("channel pruning, channel similarity", "channels",
           ("channels: channel similarity",)),
    Method("channel pruning (attention difference) + HDP default", "channels",
           ("channels + HDP default",)),
    Method("top-k oracle", "topk", ("top-k oracle",)),
)


def comparison_rows(rows, dataset: str):
    """``[(method, rows)]`` of :data:`METHODS` on ``dataset``: each method's rows sorted
    by pruned attention work; methods without a row are left out. A row belongs to the
    first method that holds it."""
    out = []
    taken = set()
    for m in METHODS:
        rs = [r for r in rows if r["dataset"] == dataset and m.holds(r) and id(r) not in taken]
        taken.update(id(r) for r in rs)
        if rs:
            out.append((m, sorted(rs, key=lambda r: (pruned_work(r), r["label"]))))
    return out


def pruned_work(row) -> float:
    """A row's pruned attention work (rows of runs before it existed: their pairs
    pruned, which is the same number for pair pruning)."""
    return row.get("pruned_work", row["pruned"])


# ---- calibration ---------------------------------------------------------------------

@dataclass
class Calibration:
    """Dense-model Q and K of every (input, layer): ``qk[i][layer] = (q, k)``, each
    ``heads x n x d``. Thresholds are computed from them on demand and cached."""

    qk: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict)
    _inputs: dict = field(default_factory=dict)   # per-input statistics, shared by subsets

    @classmethod
    def collect(cls, model, id_lists) -> "Calibration":
        cal = cls()
        for ids in id_lists:
            per_layer = {}

            def hook(layer, q, k, v, _store=per_layer):
                _store[layer] = (q.astype(np.float32), k.astype(np.float32))
                return dense_attention(layer, q, k, v)

            model.hidden_states(ids, hook)
            cal.qk.append([per_layer[li] for li in sorted(per_layer)])
        return cal

    @property
    def layers(self) -> int:
        return len(self.qk[0]) if self.qk else 0

    @property
    def heads(self) -> int:
        return self.qk[0][0][0].shape[0] if self.qk else 0

    @property
    def lengths(self) -> list[int]:
        """Token count of every calibration input."""
        return [per_input[0][0].shape[1] for per_input in self.qk]

    def subset(self, indices) -> "Calibration":
        """A calibration on some of the inputs only (its own cache of thresholds; the
        per-input channel statistics are shared, computed once per input)."""
        return Calibration(qk=[self.qk[i] for i in indices], _inputs=self._inputs)

    def _channel_stats(self, kind: str, per_input) -> tuple:
        """``(stat, rows)`` of one input for every (layer, head): Gram matrices of the
        channel contributions (``layers x heads x d x d``) for ``gram``, summed attention
        differences (``layers x heads x d``) for ``attention``; ``rows``: its tokens."""
        key = (kind, id(per_input))
        if key not in self._inputs:
            fn = contribution_gram if kind == "gram" else attention_difference
            stat = np.asarray([[fn(q[h], k[h]) for h in range(q.shape[0])]
                               for q, k in per_input])
            self._inputs[key] = (stat, per_input[0][0].shape[1])
        return self._inputs[key]

    def channel_scores(self, criterion: str) -> np.ndarray:
        """``layers x heads x d`` scores of the channel criterion ``criterion`` over the
        calibration inputs (larger: keep first); :mod:`hdp_rtl.eval.channels`."""
        if criterion not in CRITERIA:
            raise ValueError(f"unknown channel criterion {criterion!r}")
        key = ("channel scores", criterion)
        if key not in self._cache:
            kind = "attention" if criterion == "attention" else "gram"
            stats = [self._channel_stats(kind, per_input) for per_input in self.qk]
            total = sum(st for st, _ in stats)
            if criterion == "similarity":
                scores = np.asarray([[similarity_scores(g) for g in layer] for layer in total])
            elif criterion == "magnitude":
                scores = np.sqrt(np.clip(np.einsum("lhcc->lhc", total), 0.0, None))
            else:
                scores = total / sum(rows for _, rows in stats)
            self._cache[key] = scores
        return self._cache[key]

    def channel_masks(self, criterion: str, keep: int) -> np.ndarray:
        """``layers x heads x d`` bool: the ``keep`` channels of largest score in every
        head (the same number in every head)."""
        return select_channels(self.channel_scores(criterion), keep)

    def spatten_token_keep(self, target: float, head_keep: float = 1.0,
                           mode: str = "tokens") -> float:
        """SpAtten's final token keep ratio pruning ``target`` of the calibration
        inputs' pairs (exact counts from their lengths: no model run needed)."""
        return token_keep_for(target, self.lengths, head_keep, layers=self.layers,
                              heads=self.heads, mode=mode)

    def pq_threshold(self, config: HDPConfig, rows: float) -> int:
        """SpAtten's progressive-quantization threshold (a probability code) that sends
        ``rows`` of the dense model's rows to the LSB pass: every row's largest
        MSB-pass probability at ``config``'s bits, over every (input, layer, head);
        rows below the threshold are recomputed."""
        key = ("pq", config.int_bits, config.frac_bits, config.prob_bits)
        if key not in self._cache:
            maxima = []
            for per_input in self.qk:
                for q, k in per_input:
                    for h in range(q.shape[0]):
                        maxima.append(msb_row_max(q[h].astype(np.float64),
                                                  k[h].astype(np.float64), config))
            self._cache[key] = np.sort(np.concatenate(maxima))
        m = self._cache[key]
        # the smallest code t with at least `rows` of the maxima below it
        idx = min(len(m) - 1, max(0, int(math.ceil(rows * len(m))) - 1))
        return int(m[idx]) + 1 if rows > 0 else 0

    def head_importance_per_pair(self, config: HDPConfig) -> np.ndarray:
        """``HI / n**2`` of every (layer, input, head) at ``config``'s I and F, on the
        integer pass's pair scores (``S_int``, or ``S_sel`` with ``unbiased_selection``:
        :func:`golden.selection_scores`), the scale of the ``head_threshold`` register."""
        key = ("hi", config.int_bits, config.frac_bits, config.unbiased_selection)
        if key not in self._cache:
            rows = []
            for layer in range(self.layers):
                vals = []
                for per_input in self.qk:
                    q, k = per_input[layer]
                    n = q.shape[1]
                    for h in range(q.shape[0]):
                        qi, _ = golden.split(golden.quantize(q[h], config)[0], config)
                        ki, _ = golden.split(golden.quantize(k[h], config)[0], config)
                        s = golden.selection_scores(qi, ki, config, golden.float64_matmul)
                        vals.append(np.abs(s).sum() / (n * n))
                rows.append(vals)
            self._cache[key] = np.asarray(rows)
        return self._cache[key]

    def head_thresholds(self, config: HDPConfig, head_sparsity: float) -> np.ndarray:
        """Per-layer thresholds of ``HI / n**2`` (:meth:`head_importance_per_pair`, so in
        the units of ``config``'s pair scores) pruning ``head_sparsity`` of the
        calibration heads (the host writes ``ceil(t * n**2)`` to ``head_threshold``)."""
        hi = self.head_importance_per_pair(config)
        return np.quantile(hi, head_sparsity, axis=1, method="higher") + 1e-9

    def logit_thresholds(self, sparsity: float, stride: int = 5) -> np.ndarray:
        """Per-layer logit thresholds that prune ``sparsity`` of the dense model's pairs."""
        key = ("logits", stride)
        if key not in self._cache:
            samples = []
            for layer in range(self.layers):
                parts = []
                for per_input in self.qk:
                    q, k = (x.astype(np.float64) for x in per_input[layer])
                    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
                    parts.append(s.ravel()[::stride])
                samples.append(np.concatenate(parts))
            self._cache[key] = samples
        return np.asarray([np.quantile(s, sparsity) for s in self._cache[key]])


class CrossCalibration:
    """Out-of-sample calibration of one input set (2-fold cross-fitting).

    The inputs are split into two folds, the first ``ceil(n / 2)`` inputs and the rest
    (contiguous, so adjacent paraphrase pairs stay in one fold); :meth:`for_input`
    gives input ``i`` the :class:`Calibration` of the *other* fold, so every threshold
    or ratio used on an input was calibrated without it. ``in_sample=True`` (or a set of
    one input) gives every input the whole set's calibration instead.
    """

    def __init__(self, cal: Calibration, in_sample: bool = False):
        self.full = cal
        n = len(cal.qk)
        self.in_sample = in_sample or n < 2
        half = (n + 1) // 2
        self.fold = [0 if i < half else 1 for i in range(n)]
        self._parts = {}
        if not self.in_sample:
            for f in (0, 1):
                self._parts[f] = cal.subset([i for i in range(n) if self.fold[i] != f])

    def for_input(self, i: int) -> Calibration:
        """The calibration to use on input ``i``."""
        return self.full if self.in_sample else self._parts[self.fold[i]]

    @property
    def mode(self) -> str:
        return "in-sample" if self.in_sample else "2-fold cross-fitted"


# ---- runs ------------------------------------------------------------------------------

def make_method(setting: Setting, base: HDPConfig, cal: Calibration | None):
    p = setting.p
    if setting.method == "dense":
        return Dense()
    if setting.method == "channels":
        cfg = hdp_config(base, p)
        fields = dict(approx_enable=bool(p.get("approx", DEFAULT_HDP["approx"])))
        gap = None
        if p.get("hdp"):
            fields.update(block_prune_enable=True, block_rule=BLOCK_RULE_DELTA)
            gap = float(p.get("gap", DEFAULT_HDP["gap"]))
        else:
            fields["block_prune_enable"] = False
        return ChannelAttention(cfg, cal.channel_masks(p["criterion"], p["keep"]),
                                logit_gap=gap, **fields)
    if setting.method == "topk":
        return TopK(p["keep"])
    if setting.method == "threshold":
        return FixedThreshold(cal.logit_thresholds(p["sparsity"]))
    if setting.method == "spatten":
        cfg = hdp_config(base, p)
        token_keep = p.get("token_keep", 1.0)
        if "pruned" in p:
            token_keep = cal.spatten_token_keep(p["pruned"], p.get("head_keep", 1.0),
                                                p.get("mode", "tokens"))
        pq = None
        if "pq_rows" in p:
            pq = cal.pq_threshold(cfg, p["pq_rows"])
        elif "pq" in p:
            pq = int(round(p["pq"] * (1 << cfg.prob_bits)))
        return SpAttenAttention(cfg, token_keep=token_keep, head_keep=p.get("head_keep", 1.0),
                                pq_threshold=pq, approx=bool(p.get("approx", DEFAULT_HDP["approx"])),
                                pool=p.get("pool", "alive"), mode=p.get("mode", "tokens"),
                                layers=cal.layers if cal is not None else 6)
    if setting.method != "hdp":
        raise ValueError(f"unknown method {setting.method!r}")
    cfg = hdp_config(base, p)
    fields = dict(approx_enable=bool(p.get("approx", DEFAULT_HDP["approx"])))
    gap = None
    if p.get("prune", True) is False:
        fields["block_prune_enable"] = False
    elif p["rule"] == "mean":
        fields.update(block_rule=BLOCK_RULE_MEAN, rho=int(round(p["rho"] * 256)))
    else:
        fields["block_rule"] = BLOCK_RULE_DELTA
        if "delta" in p:
            fields["delta"] = int(p["delta"])
        else:
            gap = float(p["gap"])
    thresholds = None
    if p.get("head_sparsity"):
        thresholds = cal.head_thresholds(cfg, p["head_sparsity"])
    return HDPAttention(cfg, logit_gap=gap, head_thresholds=thresholds, **fields)


def run(model, data: Dataset, setting: Setting, base: HDPConfig,
        cal: Calibration | CrossCalibration | None, progress=None) -> dict:
    """Embed ``data`` with ``setting``; pruning counters and fidelity vs the dense model.

    With a :class:`CrossCalibration`, each input is embedded by a method made from its
    own calibration (the other fold's), and the counters of both are added up. The
    dense setting reuses ``data.dense`` (and counts every pair) instead of a model run."""
    t0 = time.perf_counter()
    methods = {}                      # id(calibration) -> (calibration, method)
    calibrated = []                   # the values a calibrated method was given, per fold
    embs = []
    per_pairs = []                    # (valid, kept) pairs of each input
    if setting.method == "dense":     # the dense pass is already done: reuse it
        st = PruneStats()
        heads, layers = model.heads, len(model.layers)
        for ids in data.ids:
            for layer in range(layers):
                for _ in range(heads):
                    st.add(layer, len(ids) ** 2, len(ids) ** 2)
            per_pairs.append((layers * heads * len(ids) ** 2,) * 2)
        embs = list(data.dense)
        if progress is not None:
            progress.update(len(data.ids))
    else:
        for i, ids in enumerate(data.ids):
            c = cal.for_input(i) if isinstance(cal, CrossCalibration) else cal
            if id(c) not in methods:
                methods[id(c)] = (c, make_method(setting, base, c))
                calibrated.append(_calibrated_values(methods[id(c)][1]))
            m = methods[id(c)][1]
            before = (m.stats.pairs_valid, m.stats.pairs_kept)
            embs.append(model.embed_ids(ids, m))
            per_pairs.append((m.stats.pairs_valid - before[0], m.stats.pairs_kept - before[1]))
            if progress is not None:
                progress.update(1)
        st = PruneStats()
        for _, m in methods.values():
            st.merge(m.stats)
    # whole-model multiply-accumulates saved: a pruned pair saves its score and P x V
    # (2 * head_dim), a masked score channel of a kept pair one, a pruned (token, layer)
    # its projections and feed-forward, a masked Q/K channel its Q and K projection
    # columns (2 * hidden MACs a token)
    L0 = model.layers[0]
    per_token = sum(w.size for w in (L0.wq, L0.wk, L0.wv, L0.wo, L0.wi, L0.wo2))
    per_pair = 2 * model.head_dim
    token_layers = len(model.layers) * sum(len(i) for i in data.ids)
    macs = token_layers * per_token + st.pairs_valid * per_pair
    macs_saved = (st.token_layers_pruned * per_token
                  + (st.pairs_valid - st.pairs_kept) * per_pair
                  + (st.pairs_kept - st.score_kept) * model.head_dim
                  + st.qk_columns_skipped * 2 * L0.wq.shape[0])
    row = dict(dataset=data.name, label=setting.label, group=setting.group,
               method=setting.method, params=dict(setting.p),
               pruned=st.pruned, pruned_work=st.pruned_work,
               score_channels=st.score_kept / st.pairs_kept if st.pairs_kept else 1.0,
               block_pruned=st.block_pruned, head_pruned=st.head_pruned,
               heads_pruned=st.heads_pruned_frac, tokens_pruned=st.tokens_pruned,
               model_macs_pruned=macs_saved / macs if macs else 0.0,
               lsb_rows=st.rows_redone_frac, calibrated=calibrated,
               calibration=(cal.mode if isinstance(cal, CrossCalibration) else "given")
               if uses_calibration(setting) else None,
               seconds=time.perf_counter() - t0,
               layer_pruned=[1 - kept / valid for _, (valid, kept) in sorted(st.per_layer.items())])
    row.update(fidelity(data.dense, np.stack(embs), data.pairs))
    # each input's (valid pairs, kept pairs, cosine): settings chosen on one half of a
    # set are reported on the other (:func:`choose_out_of_sample`)
    row["per_input"] = [(v, k, float(c)) for (v, k), c
                        in zip(per_pairs, cosines(data.dense, np.stack(embs)))]
    return row


def uses_calibration(setting: Setting) -> bool:
    """Whether a setting has numbers calibrated on inputs (thresholds, ratios, masks)."""
    p = setting.p
    return (setting.method in ("threshold", "channels")
            or (setting.method == "spatten" and ("pruned" in p or "pq_rows" in p))
            or (setting.method == "hdp" and bool(p.get("head_sparsity"))))


def _calibrated_values(method) -> dict:
    """The calibrated numbers a method was made with (for results.json)."""
    out = {}
    if isinstance(method, SpAttenAttention):
        out.update(token_keep=method.token_keep, head_keep=method.head_keep,
                   pq_threshold=method.pq_threshold)
    elif isinstance(method, FixedThreshold):
        out["logit_thresholds"] = [float(t) for t in method.thresholds]
    elif isinstance(method, ChannelAttention):
        # per layer, per head: the kept channels as a mask word (bit c keeps channel c)
        out["channel_masks"] = [[mask_to_bits(m) for m in layer] for layer in method.masks]
    elif isinstance(method, HDPAttention) and method.head_thresholds is not None:
        out["head_thresholds"] = [float(t) for t in method.head_thresholds]
    return out


def _block_settings(rows, dataset: str, min_pairs: int = 1):
    """HDP block-pruning rows of ``dataset`` (no head pruning) whose blocks hold at
    least ``min_pairs`` pairs."""
    return [r for r in rows if r["dataset"] == dataset and r["method"] == "hdp"
            and r["params"].get("prune", True) and not r["params"].get("head_sparsity")
            and r["params"].get("block_rows", 1) * r["params"].get("block_cols", 1) >= min_pairs]


def _on_inputs(row, inputs) -> tuple[float, float, float]:
    """(pruned pairs, mean cosine, min cosine) of a row on some of its inputs."""
    per = [row["per_input"][i] for i in inputs]
    valid, kept = sum(p[0] for p in per), sum(p[1] for p in per)
    cos = [p[2] for p in per]
    return (1 - kept / valid if valid else 0.0), float(np.mean(cos)), float(np.min(cos))


def choose_out_of_sample(rows, dataset: str, fold, min_cos: float = 0.99,
                         min_pairs: int = 1):
    """The HDP setting chosen without the inputs it is reported on (2-fold): on each
    fold's inputs, the block-pruning setting (blocks of at least ``min_pairs`` pairs)
    that prunes the most pairs of the *other* fold at mean cosine >= ``min_cos`` there.
    ``fold[i]`` is input ``i``'s fold (:attr:`CrossCalibration.fold`). Returns
    ``{"chosen": [label of fold 0, label of fold 1], "pruned", "cos_mean", "cos_min"}``
    over all inputs, each reported by its fold's choice; ``None`` if a fold's other half
    has no setting at ``min_cos`` (or there is one fold)."""
    cands = [r for r in _block_settings(rows, dataset, min_pairs) if "per_input" in r]
    folds = sorted(set(fold))
    if len(folds) < 2 or not cands:
        return None
    chosen, per = [], []
    for f in folds:
        mine = [i for i, g in enumerate(fold) if g == f]
        other = [i for i, g in enumerate(fold) if g != f]
        ok = [r for r in cands if _on_inputs(r, other)[1] >= min_cos]
        if not ok:
            return None
        best = max(ok, key=lambda r: (_on_inputs(r, other)[0], r["label"]))
        chosen.append(best["label"])
        per += [best["per_input"][i] for i in mine]
    valid, kept = sum(p[0] for p in per), sum(p[1] for p in per)
    cos = [p[2] for p in per]
    return {"chosen": chosen, "pruned": 1 - kept / valid, "cos_mean": float(np.mean(cos)),
            "cos_min": float(np.min(cos)), "min_pairs": min_pairs}


def choose_default(rows, dataset: str, min_cos: float = 0.99):
    """The HDP block-pruning setting (no head pruning) of ``dataset`` that prunes the
    most pairs at mean cosine >= ``min_cos``; ``None`` if none does."""
    ok = [r for r in _block_settings(rows, dataset) if r["cos_mean"] >= min_cos]
    return max(ok, key=lambda r: r["pruned"]) if ok else None
