"""AXI4-Lite slave front end: turns the bus into one-cycle register write and read strobes.

The port names are flat (``s_axil_awaddr`` ...) so that the generated Verilog has the
standard AXI names without Amaranth's ``__`` separators.
"""
from amaranth.hdl import Cat, Module, Mux, Signal
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
    ``rd_data``/``rd_error`` the register side's read latency later (``rd_addr`` holds
    until the next read).
    """
    return wiring.Signature({
        "wr_en": Out(1), "wr_addr": Out(addr_width), "wr_data": Out(32), "wr_strb": Out(4),
        "wr_error": In(1),
        "rd_en": Out(1), "rd_addr": Out(addr_width), "rd_data": In(32), "rd_error": In(1),
    })


class AxiLiteSlave(wiring.Component):
    """AXI4-Lite slave with one outstanding write and one outstanding read.

    A write is taken when address and data are both valid (``awready``/``wready`` rise
    together). Its address, data and strobes are registered, and the next cycle raises
    ``wr_en`` for one cycle with them; ``wr_error``'s verdict of that cycle goes out on B
    (SLVERR when set) from the cycle after. A read takes the address, registers it,
    presents it on ``rd_addr`` with ``rd_en`` the next cycle, and returns ``rd_data``
    (sampled ``rd_latency`` cycles after ``rd_en``) on R with SLVERR when ``rd_error``.

    The request registers keep the bus's address decode, the register file's start checks
    and the start's fan-out to every unit off the paths that begin at the AXI ports: the
    slave costs one cycle more per access, which only the host's register traffic sees.

    Parameters
    ----------
    addr_width : int
        Byte-address width of the bus.
    rd_latency : int
        Cycles from ``rd_en`` to the register side's ``rd_data`` (0: the same cycle).

    Members
    -------
    s_axil_* : AXI4-Lite slave port
    bus : Out(RegBusSignature)
        The register strobes (``wr_error``, ``rd_data``, ``rd_error`` come back in).
    """

    def __init__(self, *, addr_width: int, rd_latency: int = 0):
        self.addr_width, self.rd_latency = addr_width, rd_latency
        members = axil_members("s_axil", addr_width=addr_width)
        members["bus"] = Out(RegBusSignature(addr_width=addr_width))
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        from ..regmap import AXIL_ADDR_BITS
        from .regfile import RegisterFile
        return cls(addr_width=AXIL_ADDR_BITS, rd_latency=RegisterFile.RD_LATENCY)

    def elaborate(self, platform):
        m = Module()
        p, bus = self, self.bus
        # write channel: take AW and W together into the request register, strobe the
        # register file from it the next cycle, then hold B until taken
        w_req = Signal()            # a taken write waits in the request register
        b_pending = Signal()
        take_w = p.s_axil_awvalid & p.s_axil_wvalid & ~w_req & ~b_pending
        m.d.comb += [p.s_axil_awready.eq(take_w), p.s_axil_wready.eq(take_w),
                     bus.wr_en.eq(w_req), p.s_axil_bvalid.eq(b_pending)]
        with m.If(take_w):
            m.d.sync += [w_req.eq(1), bus.wr_addr.eq(p.s_axil_awaddr),
                         bus.wr_data.eq(p.s_axil_wdata), bus.wr_strb.eq(p.s_axil_wstrb)]
        with m.If(w_req):
            m.d.sync += [w_req.eq(0), b_pending.eq(1),
                         p.s_axil_bresp.eq(Mux(bus.wr_error, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(b_pending & p.s_axil_bready):
            m.d.sync += b_pending.eq(0)
        # read channel: take AR into the request register, read the register file the
        # next cycle, take its answer rd_latency cycles on, hold R until taken
        # stages[i]: the read was strobed i cycles ago (stages[0] is rd_en)
        stages = [Signal(name=f"r_stage{i}") for i in range(self.rd_latency + 1)]
        r_pending = Signal()
        take_r = p.s_axil_arvalid & ~Cat(*stages).any() & ~r_pending
        m.d.comb += [p.s_axil_arready.eq(take_r), bus.rd_en.eq(stages[0]),
                     p.s_axil_rvalid.eq(r_pending)]
        m.d.sync += [stages[0].eq(take_r), *(b.eq(a) for a, b in zip(stages, stages[1:]))]
        with m.If(take_r):
            m.d.sync += bus.rd_addr.eq(p.s_axil_araddr)
        with m.If(stages[-1]):
            m.d.sync += [r_pending.eq(1), p.s_axil_rdata.eq(bus.rd_data),
                         p.s_axil_rresp.eq(Mux(bus.rd_error, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(r_pending & p.s_axil_rready):
            m.d.sync += r_pending.eq(0)
        return m
