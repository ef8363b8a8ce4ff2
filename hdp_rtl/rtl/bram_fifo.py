"""A FIFO in block RAM whose output comes from the RAM's own read register."""
from amaranth.hdl import Elaboratable, Module, Mux, Signal

from .bram import bram, registered_read_port

__all__ = ["BramFIFO"]


class BramFIFO(Elaboratable):
    """``depth`` words of ``width`` bits in a block RAM, with the members of
    ``amaranth.lib.fifo.SyncFIFOBuffered`` that the units use (``w_data``, ``w_en``,
    ``w_rdy``, ``r_data``, ``r_rdy``, ``r_en``, ``level``).

    ``SyncFIFOBuffered`` reads its memory asynchronously, which an iCE40 block RAM
    cannot: yosys builds it from flip-flops (an 8 x 18-bit FIFO: 154 flip-flops and 115
    LUTs, about 250 iCE40 logic cells). Here the head word is read ahead into the block
    RAM's read register, which drives ``r_data``: a word written in cycle ``t`` can be
    read (``r_rdy``) from cycle ``t + 2`` (one more than ``SyncFIFOBuffered`` when
    empty), and then one word a cycle. A word is read only after the cycle it was
    written in (the count that allows the read is updated by the write), so the read
    port needs no collision logic.

    Parameters
    ----------
    width : int
    depth : int
        Words, a power of two (the block RAM's depth is free: 256 on iCE40).
    """

    def __init__(self, *, width: int, depth: int):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, not {depth}")
        self.width, self.depth = width, depth
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()
        self.level = Signal(range(depth + 2))

    def elaborate(self, platform):
        m = Module()
        mem = bram(m, "storage", shape=self.width, depth=self.depth)
        wr = mem.write_port()
        rd = registered_read_port(m, mem, name="rd")
        w_ptr = Signal(range(self.depth))
        r_ptr = Signal(range(self.depth))
        stored = Signal(range(self.depth + 1))   # in the RAM, not yet read ahead
        write = self.w_en & self.w_rdy
        pop = self.r_en & self.r_rdy
        fetch = Signal()                          # read the next word into the register
        m.d.comb += [
            self.w_rdy.eq(stored != self.depth),
            wr.en.eq(write), wr.addr.eq(w_ptr), wr.data.eq(self.w_data),
            fetch.eq((stored != 0) & (~self.r_rdy | pop)),
            rd.en.eq(fetch), rd.addr.eq(r_ptr),
            self.r_data.eq(rd.data),
        ]
        m.d.sync += [stored.eq(stored + write - fetch),
                     self.level.eq(self.level + write - pop)]
        with m.If(write):
            m.d.sync += w_ptr.eq(w_ptr + 1)
        with m.If(fetch):
            m.d.sync += [r_ptr.eq(r_ptr + 1), self.r_rdy.eq(1)]
        with m.Elif(pop):
            m.d.sync += self.r_rdy.eq(0)
        return m
