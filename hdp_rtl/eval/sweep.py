"""Settings, calibration and runs of the MiniLM evaluation.

A :class:`Setting` names one attention method with its parameters; :func:`run` embeds a
:class:`Dataset` with it and measures pruning and fidelity against the dense float
model. :class:`Calibration` holds the dense model's Q and K of every layer, from which
per-layer head thresholds (for a target fraction of pruned heads) and per-layer
LeOPArd-style logit thresholds (for a target pair sparsity) are set offline.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import golden
from hdp_rtl.config import BLOCK_RULE_DELTA, BLOCK_RULE_MEAN, DEFAULT_LOGIT_GAP, HDPConfig

from .attention import Dense, FixedThreshold, HDPAttention, TopK
from .metrics import fidelity
from .model import dense_attention

__all__ = ["Dataset", "Setting", "Calibration", "DEFAULT_HDP", "base_config", "hdp",
           "sweep_settings", "quick_settings", "baselines_at", "run", "choose_default",
           "read_lines", "repo_data"]

#: The documented default of the evaluation (docs/evaluation.md): the delta rule with
#: the host computing ``delta`` for a logit gap of 5 (``delta_for``), element-wise (1x1)
#: blocks, I=4/F=4, approximation on. It prunes >= 50% of the pairs of 100-250-token
#: inputs at mean embedding cosine >= 0.99. The `default` preset and `prepare_head`
#: carry the same choice (block shape and ``DEFAULT_LOGIT_GAP``).
_D = HDPConfig.preset("default")
DEFAULT_HDP = dict(rule="delta", gap=DEFAULT_LOGIT_GAP, block_rows=_D.block_rows,
                   block_cols=_D.block_cols, int_bits=_D.int_bits, frac_bits=_D.frac_bits,
                   approx=True)


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
    """One attention method: ``method`` is dense, hdp, topk or threshold; ``group`` is
    the line it belongs to in the plots."""

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
    if not p.get("approx", True):
        parts.append("exact")
    if p.get("head_sparsity"):
        parts.append(f"heads {p['head_sparsity']:.0%}")
    return " ".join(parts)


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
    cfg = base.replace(**changes)
    narrow = 8 - cfg.data_bits
    if narrow > 0 and cfg.data_bits < base.data_bits:
        cfg = cfg.replace(score_scale_frac=max(0, base.score_scale_frac - 2 * narrow))
    return cfg


def quick_settings() -> list[Setting]:
    """Without ``--sweep``: the documented default, the quantisation-only point and the
    mean rule at rho 0."""
    return [
        hdp("reference", prune=False),
        hdp("HDP default", label="HDP default: " + describe(dict(DEFAULT_HDP))),
        hdp("mean rule 1x4", rule="mean", rho=0.0, block_rows=1, block_cols=4),
    ]


def sweep_settings() -> list[Setting]:
    """Every setting of ``--sweep`` (baselines at equal sparsity come after)."""
    s = [hdp("reference", prune=False), hdp("reference", prune=False, approx=False)]
    for rho in (-0.5, -0.3, -0.15, 0.0, 0.2):
        s.append(hdp("mean rule 1x4", rule="mean", rho=rho, block_rows=1, block_cols=4))
    for rho in (-0.3, 0.0):
        s.append(hdp("mean rule 1x1", rule="mean", rho=rho, block_rows=1, block_cols=1))
    for gap in (3.0, 4.0, 4.5, 5.0, 5.5, 6.0, 8.0):
        s.append(hdp("delta rule 1x1", gap=gap))
    for gap in (3.0, 3.5, 4.0, 5.0, 6.0, 8.0):
        s.append(hdp("delta rule 1x4", gap=gap, block_rows=1, block_cols=4))
    for br, bc in ((1, 2), (2, 2), (1, 8), (4, 4)):
        for gap in (4.0, 5.0):
            s.append(hdp(f"delta rule {br}x{bc}", gap=gap, block_rows=br, block_cols=bc))
    for br, bc in ((1, 1), (1, 4)):
        s.append(hdp("delta register 8", delta=8, block_rows=br, block_cols=bc))
    for ib, fb in ((3, 5), (5, 3), (6, 2), (4, 3), (5, 4), (6, 4)):
        for gap in (4.5, 5.0):
            s.append(hdp(f"delta 1x1 I{ib}F{fb}", gap=gap, int_bits=ib, frac_bits=fb))
    s.append(hdp("delta rule 1x1 exact", approx=False))
    s.append(hdp("mean rule 1x4 exact", rule="mean", rho=0.0, block_rows=1, block_cols=4,
                 approx=False))
    for hs in (0.03, 0.10, 0.25):
        s.append(hdp("head pruning only", prune=False, head_sparsity=hs))
        s.append(hdp("default + head pruning", head_sparsity=hs))
    for keep in (0.8, 0.6, 0.5, 0.4, 0.3):
        s.append(Setting(f"top-k keep {keep:.0%}", "top-k (SpAtten)", "topk", _params(keep=keep)))
    for sp in (0.2, 0.4, 0.5, 0.6, 0.7):
        s.append(Setting(f"threshold sparsity {sp:.0%}", "threshold (LeOPArd)", "threshold",
                         _params(sparsity=sp)))
    return s


def baselines_at(sparsity: float, tag: str) -> list[Setting]:
    """Top-k and fixed-threshold baselines at a measured sparsity."""
    return [
        Setting(f"top-k at {tag} ({sparsity:.1%})", "top-k (SpAtten)", "topk",
                _params(keep=1.0 - sparsity)),
        Setting(f"threshold at {tag} ({sparsity:.1%})", "threshold (LeOPArd)", "threshold",
                _params(sparsity=sparsity)),
    ]


# ---- calibration ---------------------------------------------------------------------

@dataclass
class Calibration:
    """Dense-model Q and K of every (input, layer): ``qk[i][layer] = (q, k)``, each
    ``heads x n x d``. Thresholds are computed from them on demand and cached."""

    qk: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict)

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

    def head_importance_per_pair(self, config: HDPConfig) -> np.ndarray:
        """``HI / n**2`` of every (layer, input, head) at ``config``'s I and F."""
        key = ("hi", config.int_bits, config.frac_bits)
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
                        s = golden.integer_scores(qi, ki, golden.float64_matmul)
                        vals.append(np.abs(s).sum() / (n * n))
                rows.append(vals)
            self._cache[key] = np.asarray(rows)
        return self._cache[key]

    def head_thresholds(self, config: HDPConfig, head_sparsity: float) -> np.ndarray:
        """Per-layer ``|S_int|``-per-pair thresholds pruning ``head_sparsity`` of the
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


# ---- runs ------------------------------------------------------------------------------

def make_method(setting: Setting, base: HDPConfig, cal: Calibration | None):
    p = setting.p
    if setting.method == "dense":
        return Dense()
    if setting.method == "topk":
        return TopK(p["keep"])
    if setting.method == "threshold":
        return FixedThreshold(cal.logit_thresholds(p["sparsity"]))
    if setting.method != "hdp":
        raise ValueError(f"unknown method {setting.method!r}")
    cfg = hdp_config(base, p)
    fields = dict(approx_enable=bool(p.get("approx", True)))
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


def run(model, data: Dataset, setting: Setting, base: HDPConfig, cal: Calibration | None,
        progress=None) -> dict:
    """Embed ``data`` with ``setting``; pruning counters and fidelity vs the dense model."""
    method = make_method(setting, base, cal)
    t0 = time.perf_counter()
    embs = []
    for ids in data.ids:
        embs.append(model.embed_ids(ids, method))
        if progress is not None:
            progress.update(1)
    st = method.stats
    row = dict(dataset=data.name, label=setting.label, group=setting.group,
               method=setting.method, params=dict(setting.p),
               pruned=st.pruned, block_pruned=st.block_pruned, head_pruned=st.head_pruned,
               heads_pruned=st.heads_pruned_frac, seconds=time.perf_counter() - t0,
               layer_pruned=[1 - kept / valid for _, (valid, kept) in sorted(st.per_layer.items())])
    row.update(fidelity(data.dense, np.stack(embs), data.pairs))
    return row


def choose_default(rows, dataset: str, min_cos: float = 0.99):
    """The HDP block-pruning setting (no head pruning) of ``dataset`` that prunes the
    most pairs at mean cosine >= ``min_cos``; ``None`` if none does."""
    ok = [r for r in rows if r["dataset"] == dataset and r["method"] == "hdp"
          and r["params"].get("prune", True) and not r["params"].get("head_sparsity")
          and r["cos_mean"] >= min_cos]
    return max(ok, key=lambda r: r["pruned"]) if ok else None
