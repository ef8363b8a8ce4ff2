"""AXI4-Lite slave front end: turns the bus into one-cycle register write and read strobes.

The port names are flat (``s_axil_awaddr`` ...) so that the generated Verilog has the
standard AXI names without Amaranth's ``__`` separators.
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["axil_members", "RegBusSignature", "AxiLiteSlave"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


def axil_members(prefix: str, *, addr_width: int, data_width: int = 32) -> dict:
    """The members of an AXI4-Lite slave port, named ``<prefix>_<signal>``."""
    return {
        f"{prefix}_awaddr": In(addr_width), f"{prefix}_awvalid": In(1), f"{prefix}_awready": Out(1),
        f"{prefix}_wdata": In(data_width), f"{prefix}_wstrb": In(data_width // 8),
        f"{prefix}_wvalid": In(1), f"{prefix}_wready": Out(1),
        f"{prefix}_bresp": Out(2), f"{prefix}_bvalid": Out(1), f"{prefix}_bready": In(1),
        f"{prefix}_araddr": In(addr_width), f"{prefix}_arvalid": In(1), f"{prefix}_arready": Out(1),
        f"{prefix}_rdata": Out(data_width), f"{prefix}_rresp": Out(2), f"{prefix}_rvalid": Out(1),
        f"{prefix}_rready": In(1),
    }


def RegBusSignature(*, addr_width: int) -> wiring.Signature:
    """One-cycle register strobes, as the bus front end drives them.

    ``wr_en`` with ``wr_addr``/``wr_data``/``wr_strb`` writes, and the register side
    answers ``wr_error`` in the same cycle; ``rd_en`` with ``rd_addr`` reads, answered by
    ``rd_data``/``rd_error`` in the same cycle.
    """
    return wiring.Signature({
        "wr_en": Out(1), "wr_addr": Out(addr_width), "wr_data": Out(32), "wr_strb": Out(4),
        "wr_error": In(1),
        "rd_en": Out(1), "rd_addr": Out(addr_width), "rd_data": In(32), "rd_error": In(1),
    })


class AxiLiteSlave(wiring.Component):
    """AXI4-Lite slave with one outstanding write and one outstanding read.

    A write is taken when address and data are both valid (``awready``/``wready`` rise
    together), raises ``wr_en`` for one cycle with ``wr_addr``/``wr_data``/``wr_strb``,
    and answers on B with ``wr_resp``'s verdict (SLVERR when ``wr_error``). A read takes
    the address, presents it on ``rd_addr`` for one cycle with ``rd_en``, and returns
    ``rd_data`` (sampled in that same cycle) on R with SLVERR when ``rd_error``.

    Parameters
    ----------
    addr_width : int
        Byte-address width of the bus.

    Members
    -------
    s_axil_* : AXI4-Lite slave port
    bus : Out(RegBusSignature)
        The register strobes (``wr_error``, ``rd_data``, ``rd_error`` come back in).
    """

    def __init__(self, *, addr_width: int):
        self.addr_width = addr_width
        members = axil_members("s_axil", addr_width=addr_width)
        members["bus"] = Out(RegBusSignature(addr_width=addr_width))
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        from ..regmap import AXIL_ADDR_BITS
        return cls(addr_width=AXIL_ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        p, bus = self, self.bus
        # write channel: accept AW and W together, then hold B until taken
        b_pending = Signal()
        take_w = p.s_axil_awvalid & p.s_axil_wvalid & ~b_pending
        m.d.comb += [
            p.s_axil_awready.eq(take_w), p.s_axil_wready.eq(take_w),
            bus.wr_en.eq(take_w), bus.wr_addr.eq(p.s_axil_awaddr),
            bus.wr_data.eq(p.s_axil_wdata), bus.wr_strb.eq(p.s_axil_wstrb),
            p.s_axil_bvalid.eq(b_pending),
        ]
        with m.If(take_w):
            m.d.sync += [b_pending.eq(1),
                         p.s_axil_bresp.eq(Mux(bus.wr_error, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(b_pending & p.s_axil_bready):
            m.d.sync += b_pending.eq(0)
        # read channel: accept AR, read the register in that cycle, hold R until taken
        r_pending = Signal()
        take_r = p.s_axil_arvalid & ~r_pending
        m.d.comb += [
            p.s_axil_arready.eq(take_r), bus.rd_en.eq(take_r), bus.rd_addr.eq(p.s_axil_araddr),
            p.s_axil_rvalid.eq(r_pending),
        ]
        with m.If(take_r):
            m.d.sync += [r_pending.eq(1), p.s_axil_rdata.eq(bus.rd_data),
                         p.s_axil_rresp.eq(Mux(bus.rd_error, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(r_pending & p.s_axil_rready):
            m.d.sync += r_pending.eq(0)
        return m
