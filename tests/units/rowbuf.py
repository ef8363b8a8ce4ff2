"""A test wrapper that gives a unit real row buffers (``lib.memory``) holding Q, K, V."""
import numpy as np
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import memory, wiring

from hdp_rtl.rtl.rowmem import buffer_words, row_layout

__all__ = ["WithRowBuffers"]


class WithRowBuffers(Elaboratable):
    """``unit`` with each of its ``<t>_rd`` ports connected to a memory holding ``rows[t]``
    (``config.row_words`` words a row, as in the row store)."""

    def __init__(self, unit, config, rows: dict):
        self.unit, self.config, self.rows = unit, config, rows

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        cfg = self.config
        for name, values in self.rows.items():
            full = np.zeros((cfg.seq_max, cfg.head_dim), dtype=np.int64)
            full[:len(values), :np.shape(values)[1]] = values
            mem = memory.Memory(
                shape=row_layout(head_dim=cfg.row_word_elems, data_bits=cfg.data_bits),
                depth=cfg.seq_max * cfg.row_words,
                init=[list(map(int, w)) for w in buffer_words(full, cfg.row_words)])
            m.submodules[f"{name}_buf"] = mem
            wiring.connect(m, getattr(self.unit, f"{name}_rd"), mem.read_port())
        return m
