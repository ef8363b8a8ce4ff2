"""Stored test vectors: real all-MiniLM-L6-v2 heads with their golden outputs.

``tests/data/minilm_heads.npz`` (written by ``scripts/export_minilm_heads.py``) holds,
for each head, the quantised integer Q, K and V (``seq_len x 32``, ``B``-bit values), the
register values, the configuration (a preset name and overrides) and the expected
``out`` of :func:`golden.attention_head`. Only NumPy and this repository are needed to
read it, so the RTL testbenches can drive the same heads::

    from golden.vectors import load_minilm_heads
    for config, regs, q, k, v, out in load_minilm_heads():
        ...   # feed q, k, v with regs to the core built for config; expect out
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdp_rtl.config import HDPConfig, Registers

__all__ = ["HeadVector", "MINILM_HEADS", "load_minilm_heads", "save_minilm_heads"]

MINILM_HEADS = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_heads.npz"


@dataclass(frozen=True)
class HeadVector:
    """One stored head. Unpacks as ``config, regs, q, k, v, out``."""

    name: str
    config: HDPConfig
    regs: Registers
    q: np.ndarray            # seq_len x d int64, B-bit two's-complement values
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray          # seq_len x config.head_dim, the golden output
    preset: str = "default"
    overrides: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)   # text, layer, head, scale exponents

    def __iter__(self):
        return iter((self.config, self.regs, self.q, self.k, self.v, self.out))


def load_minilm_heads(path: str | Path | None = None) -> list[HeadVector]:
    """Every stored head of ``path`` (default ``tests/data/minilm_heads.npz``)."""
    with np.load(path or MINILM_HEADS, allow_pickle=False) as data:
        metas = [json.loads(s) for s in data["meta"]]
        heads = []
        for i, meta in enumerate(metas):
            config = HDPConfig.preset(meta["preset"]).replace(**meta["overrides"])
            regs = Registers(**meta["registers"])
            heads.append(HeadVector(
                name=meta["name"], config=config, regs=regs,
                q=data[f"q{i}"].astype(np.int64), k=data[f"k{i}"].astype(np.int64),
                v=data[f"v{i}"].astype(np.int64), out=data[f"out{i}"].astype(np.int64),
                preset=meta["preset"], overrides=meta["overrides"], source=meta.get("source", {})))
    return heads


def _smallest_int(a: np.ndarray) -> np.ndarray:
    for dt in (np.int8, np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(dt).min and a.max() <= np.iinfo(dt).max):
            return a.astype(dt)
    return a.astype(np.int64)


def save_minilm_heads(heads: list[HeadVector], path: str | Path | None = None) -> Path:
    """Write ``heads`` in the format :func:`load_minilm_heads` reads."""
    path = Path(path or MINILM_HEADS)
    arrays = {}
    metas = []
    for i, h in enumerate(heads):
        metas.append(json.dumps({"name": h.name, "preset": h.preset, "overrides": h.overrides,
                                 "registers": h.regs.to_dict(), "source": h.source},
                                sort_keys=True))
        for key in ("q", "k", "v", "out"):
            arrays[f"{key}{i}"] = _smallest_int(np.asarray(getattr(h, key)))
    np.savez_compressed(path, meta=np.asarray(metas), **arrays)
    return path
