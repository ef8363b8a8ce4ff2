"""A cocotb model of a row buffer behind a unit's ``<name>_rd`` read port."""
import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from hdp_rtl.rtl.rowmem import buffer_words, row_layout
from sim.packing import pack

__all__ = ["RowMemModel"]


class RowMemModel:
    """Answers ``<prefix>__addr``/``__en`` with the addressed word (``config.row_words``
    words a row, as in the row store) on ``__data`` one cycle
    later, like an ``amaranth.lib.memory`` synchronous read port (data holds while
    ``en`` is low)."""

    def __init__(self, dut, prefix: str, config, rows):
        self.clk = dut.clk
        self.addr = getattr(dut, f"{prefix}__addr")
        self.en = getattr(dut, f"{prefix}__en")
        self.data = getattr(dut, f"{prefix}__data")
        layout = row_layout(head_dim=config.row_word_elems, data_bits=config.data_bits)
        full = np.zeros((config.seq_max, config.head_dim), dtype=np.int64)
        full[:len(rows), :np.shape(rows)[1]] = rows
        self.words = [pack(layout, [int(x) for x in w])
                      for w in buffer_words(full, config.row_words)]
        self.data.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            if int(self.en.value):
                self.data.value = self.words[self.addr.value.to_unsigned() % len(self.words)]
