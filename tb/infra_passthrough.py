"""A tiny stream component used only to test the simulation infrastructure itself."""
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

LAYOUT = data.StructLayout({"a": signed(5), "b": data.ArrayLayout(3, 2), "last": 1})


class Passthrough(wiring.Component):
    """Four-deep FIFO between two streams of :data:`LAYOUT` payloads."""

    i_x: In(stream.Signature(LAYOUT))
    o_x: Out(stream.Signature(LAYOUT))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=LAYOUT.size, depth=4)
        m.d.comb += [
            fifo.w_data.eq(self.i_x.payload), fifo.w_en.eq(self.i_x.valid),
            self.i_x.ready.eq(fifo.w_rdy),
            self.o_x.payload.eq(fifo.r_data), self.o_x.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o_x.ready),
        ]
        return m
