"""Formal harness of the AXI4-Lite slave (:class:`~hdp_rtl.rtl.axil.AxiLiteSlave`) and the
AXI4-Lite rules shared with the top-level harness.
"""
from amaranth.hdl import Cat, Elaboratable, Signal

from ..rtl.axil import AxiLiteSlave
from .common import Assert, Cover, UpDown, drive_any, harness_module, stream_rules

__all__ = ["AxiLiteHarness", "axil_rules"]


def axil_rules(m, p, *, prefix: str = "s_axil", read_wait: int = 1):
    """The AXI4-Lite rules on slave port ``p`` (members ``<prefix>_<signal>``).

    Assumed of the master: AW, W and AR hold valid and payload until taken.
    Asserted of the slave: B and R hold valid and payload until taken; at most one write
    and one read outstanding; a B (R) handshake only answers a taken AW and W (AR), so
    every response answers exactly one request; a write outstanding for a second cycle,
    and a read outstanding for ``read_wait + 1`` cycles (the register side's read latency
    plus one), have their responses offered. Returns a dict of the handshake signals and the counters.
    """
    g = lambda s: getattr(p, f"{prefix}_{s}")   # noqa: E731
    aw = stream_rules(m, g("awvalid"), g("awready"), g("awaddr"), output=False, name="aw")
    w = stream_rules(m, g("wvalid"), g("wready"), Cat(g("wdata"), g("wstrb")), output=False,
                     name="w")
    ar = stream_rules(m, g("arvalid"), g("arready"), g("araddr"), output=False, name="ar")
    b = stream_rules(m, g("bvalid"), g("bready"), g("bresp"), output=True, name="b")
    r = stream_rules(m, g("rvalid"), g("rready"), g("rdata"), output=True, name="r")
    stream_rules(m, g("rvalid"), g("rready"), g("rresp"), output=True, name="r_resp")

    # requests taken minus responses given, per channel
    aw_out = UpDown(m, up=aw, down=b, max=1, name="aw_outstanding")
    w_out = UpDown(m, up=w, down=b, max=1, name="w_outstanding")
    ar_out = UpDown(m, up=ar, down=r, max=1, name="ar_outstanding")
    w_waited = Signal(name="write_was_outstanding")
    r_history = Signal(read_wait, name="read_was_outstanding")
    m.d.sync += [w_waited.eq((aw_out.value == 1) & (w_out.value == 1)),
                 r_history.eq(Cat(ar_out.value == 1, r_history[:-1]))]
    r_waited = r_history.all()
    m.d.comb += [
        Assert(aw_out.value <= 1, "at most one write outstanding (AW)"),
        Assert(w_out.value <= 1, "at most one write outstanding (W)"),
        Assert(ar_out.value <= 1, "at most one read outstanding"),
        # no response without a request: B needs an outstanding AW *and* W
        Assert(~g("bvalid") | ((aw_out.value == 1) & (w_out.value == 1)),
               "bvalid only answers a taken write"),
        Assert(~g("rvalid") | (ar_out.value == 1), "rvalid only answers a taken read"),
        # the response of an outstanding request is offered from its second cycle on (the
        # slave registers the request for a cycle first): it is never lost
        Assert(~(w_waited & (aw_out.value == 1) & (w_out.value == 1)) | g("bvalid"),
               "an outstanding write is answered on B"),
        Assert(~(r_waited & (ar_out.value == 1)) | g("rvalid"),
               "an outstanding read is answered on R"),
        # this slave takes AW and W together
        Assert(aw_out.value == w_out.value, "AW and W taken together"),
    ]
    return {"aw": aw, "w": w, "ar": ar, "b": b, "r": r,
            "aw_out": aw_out, "w_out": w_out, "ar_out": ar_out}


class AxiLiteHarness(Elaboratable):
    def __init__(self, addr_width: int = 8):
        self.addr_width = addr_width

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.dut = dut = AxiLiteSlave(addr_width=self.addr_width)
        drive_any(m, dut.s_axil_awaddr, dut.s_axil_awvalid, dut.s_axil_wdata, dut.s_axil_wstrb,
                  dut.s_axil_wvalid, dut.s_axil_bready, dut.s_axil_araddr, dut.s_axil_arvalid,
                  dut.s_axil_rready, dut.bus.wr_error, dut.bus.rd_data, dut.bus.rd_error)
        hs = axil_rules(m, dut)
        # register strobes: exactly one per taken request, the cycle after, carrying it
        prev_w, prev_r = Signal(name="prev_w_taken"), Signal(name="prev_r_taken")
        prev_req = Signal(2 * self.addr_width + 32 + 4, name="prev_request")
        m.d.sync += [prev_w.eq(hs["aw"] & hs["w"]), prev_r.eq(hs["ar"]),
                     prev_req.eq(Cat(dut.s_axil_awaddr, dut.s_axil_wdata, dut.s_axil_wstrb,
                                     dut.s_axil_araddr))]
        w_addr, w_data, w_strb, r_addr = (
            prev_req[:self.addr_width], prev_req[self.addr_width:self.addr_width + 32],
            prev_req[self.addr_width + 32:self.addr_width + 36], prev_req[self.addr_width + 36:])
        m.d.comb += [
            Assert(dut.bus.wr_en == prev_w, "one wr_en per taken write, the cycle after"),
            Assert(~dut.bus.wr_en | ((dut.bus.wr_addr == w_addr) & (dut.bus.wr_data == w_data)
                                     & (dut.bus.wr_strb == w_strb)), "wr_* carry the request"),
            Assert(dut.bus.rd_en == prev_r, "one rd_en per taken read, the cycle after"),
            Assert(~dut.bus.rd_en | (dut.bus.rd_addr == r_addr), "rd_addr carries the request"),
            Cover(hs["b"], "a write answered"),
            Cover(hs["r"], "a read answered"),
            Cover(hs["b"] & hs["r"], "a write and a read answered in the same cycle"),
        ]
        return m
