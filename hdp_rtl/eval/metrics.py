"""Fidelity of pruned-model embeddings against the dense float model's."""
from __future__ import annotations

import numpy as np

__all__ = ["rankdata", "spearman", "cosines", "pair_similarities", "nn_agreement", "fidelity"]


def rankdata(x) -> np.ndarray:
    """Ranks 1..n, ties getting their average rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # first index of each run of equal values, and the run's average rank
    starts = np.r_[True, xs[1:] != xs[:-1]]
    run_id = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(xs)] - 1
    avg = (first + last) / 2.0 + 1.0
    ranks = np.empty(len(x))
    ranks[order] = avg[run_id]
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation of two equal-length vectors (nan if either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def cosines(a, b) -> np.ndarray:
    """Row-wise cosine similarity of two ``m x D`` arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-300)


def pair_similarities(emb, pairs=None) -> np.ndarray:
    """Cosine similarity of the given ``(i, j)`` index pairs, or of every ``i < j``."""
    emb = np.asarray(emb, np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    if pairs is None:
        i, j = np.triu_indices(len(emb), k=1)
    else:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        i, j = pairs[:, 0], pairs[:, 1]
    return (emb[i] * emb[j]).sum(axis=1)


def nearest_neighbours(emb) -> np.ndarray:
    """Index of each row's most similar other row (cosine)."""
    emb = np.asarray(emb, np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def nn_agreement(ref, test) -> float:
    """Fraction of inputs whose nearest neighbour is the same under both embeddings."""
    if len(ref) < 2:
        return float("nan")
    return float((nearest_neighbours(ref) == nearest_neighbours(test)).mean())


def fidelity(ref, test, pairs=None) -> dict:
    """Every fidelity number of ``test`` embeddings against ``ref`` (the dense model):
    mean and min cosine, Spearman of the pair similarities, nearest-neighbour agreement."""
    cos = cosines(ref, test)
    sims_ref = pair_similarities(ref, pairs)
    sims_test = pair_similarities(test, pairs)
    return {
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
        "spearman": spearman(sims_ref, sims_test) if len(sims_ref) > 1 else float("nan"),
        "nn_agree": nn_agreement(ref, test),
    }
