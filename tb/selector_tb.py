"""The selectors' cocotb testbench (selectors behind the seam, hdp_rtl/rtl/selectors.py):
heads of block rows driven in under random idle, every mask taken under random
back-pressure and checked in order against the golden policy of the config's selector.
A unit's own bench (tb/cocotb_<selector>_selector.py) says which registers it reads
and draws their values."""
import random

import numpy as np
from cocotb.triggers import RisingEdge

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.layouts import layouts_for
from streams import StreamSink, StreamSource

__all__ = ["SelectorTB"]


class SelectorTB:
    """Drives heads of block rows in, checks every mask in order against the golden
    model; the registers change between heads only, as a start latches them.

    Subclasses set ``REGISTERS`` (the unit's register inputs, named as the
    ``Registers`` fields they take), ``SETTLE`` (cycles from setting them to the first
    block) and :meth:`draw_registers`.
    """

    REGISTERS = ("block_prune_enable",)
    SETTLE = 0

    def __init__(self, dut, config: HDPConfig, seed: int):
        self.dut, self.config = dut, config
        self.rng = random.Random(seed)
        layouts = layouts_for(config)
        self.source = StreamSource(dut, "i_block", layouts["block"], idle=0.3, seed=seed)
        self.sink = StreamSink(dut, "o_mask", layouts["mask"], backpressure=0.4, seed=seed + 1)
        self.set_registers(Registers(seq_len=1))

    def set_registers(self, regs: Registers):
        for name in self.REGISTERS:
            getattr(self.dut, name).value = int(getattr(regs, name))

    def draw_registers(self, rows) -> Registers:
        raise NotImplementedError

    def random_head(self):
        """Causal-like (a block more each row) or full rows, ties and extremes, and the
        registers :meth:`draw_registers` picks for them."""
        c, rng = self.config, self.rng
        bcc = c.block_col_count
        lo, hi = -(1 << (c.sint_bits - 1)), (1 << (c.sint_bits - 1)) - 1
        first, rows = rng.randint(1, bcc), rng.randint(1, 4)
        causal = rng.random() < 0.5
        sizes = [min(first + r, bcc) if causal else first for r in range(rows)]
        spread = rng.choice([1, 3, hi])
        bis = [[max(lo, min(hi, rng.randint(-spread - 1, spread))) for _ in range(nb)]
               for nb in sizes]
        return self.draw_registers(bis), bis

    async def check(self, regs: Registers, rows):
        self.set_registers(regs)
        for _ in range(self.SETTLE):
            await RisingEdge(self.dut.clk)
        for r, bi in enumerate(rows):
            self.source.send_all({"bi": b, "col": c, "last": int(c == len(bi) - 1),
                                  "last_row": int(r == len(rows) - 1)} for c, b in enumerate(bi))
        bcc = self.config.block_col_count
        for r, bi in enumerate(rows):
            full = np.zeros((1, bcc), dtype=np.int64)
            valid = np.zeros_like(full, dtype=bool)
            full[0, :len(bi)], valid[0, :len(bi)] = bi, True
            keep = golden.SELECTORS[self.config.selector](full, valid, regs, self.config)[0]
            want = sum(int(k) << c for c, k in enumerate(keep))
            got = await self.sink.recv()
            fields = ", ".join(f"{n}={getattr(regs, n)}" for n in self.REGISTERS)
            assert got["mask"] == want, (f"row {r} {bi} {fields}: mask {got['mask']:#x}, "
                                         f"expected {want:#x}")
            assert got["last_row"] == int(r == len(rows) - 1), f"row {r}: last_row"
