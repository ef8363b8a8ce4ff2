"""Row-store tests as data: the writes of a head (word by word), random reads on all five
read ports with ``int_phase`` changing at random, and the word each port then shows;
shared by the amaranth.sim test and the cocotb module of the row store."""
from __future__ import annotations

import random

import numpy as np

__all__ = ["PORTS", "random_rows", "writes", "read_cycles", "read_results", "word_at"]

PORTS = ("q_int", "k_int", "q_mac", "k_mac", "v_mac")


def random_rows(config, rng: random.Random) -> np.ndarray:
    """Q, K and V of ``seq_max`` rows."""
    return np.random.default_rng(rng.getrandbits(32)).integers(
        config.data_min, config.data_max + 1, (3, config.seq_max, config.head_dim))


def word_at(config, rows, tensor: int, addr: int) -> list[int]:
    """The word at ``addr`` of ``tensor``'s buffer (``config.row_words`` words a row)."""
    e, row, word = config.row_word_elems, *divmod(addr, config.row_words)
    return [int(v) for v in rows[tensor][row][word * e:(word + 1) * e]]


def writes(config, rows, rng: random.Random) -> list[dict]:
    """``i_word`` payloads writing every word of every row of ``rows``, in random order."""
    words = config.row_words
    order = [(t, a) for t in range(3) for a in range(len(rows[t]) * words)]
    rng.shuffle(order)
    return [{"tensor": t, "row": a // words, "word": a % words,
             "data": word_at(config, rows, t, a)} for t, a in order]


def read_cycles(config, rng: random.Random, count: int) -> list[dict]:
    """Inputs of ``count`` cycles: ``int_phase`` and each port's ``(en, addr)``, a word
    address."""
    depth = config.seq_max * config.row_words
    return [{"int_phase": int(rng.random() < 0.5),
             **{p: (int(rng.random() < 0.6), rng.randrange(depth)) for p in PORTS}}
            for _ in range(count)]


def read_results(cycles) -> list[dict]:
    """The ``(tensor, addr)`` each port's ``data`` shows in the cycle after each of
    ``cycles`` (``None`` before any read): the word the tensor's owner addressed in its
    last cycle with ``en``; the integer pass owns Q and K while ``int_phase``. A read by
    the other client reads the owner's address (the sequencer never lets it happen)."""
    latest = {t: None for t in "qkv"}
    results = []
    for c in cycles:
        for t in "qk":
            ours, theirs = (c[f"{t}_int"], c[f"{t}_mac"])[::1 if c["int_phase"] else -1]
            if ours[0] or theirs[0]:
                latest[t] = ours[1]
        if c["v_mac"][0]:
            latest["v"] = c["v_mac"][1]
        results.append({p: None if latest[p[0]] is None else ("qkv".index(p[0]), latest[p[0]])
                        for p in PORTS})
    return results
