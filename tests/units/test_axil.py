"""AXI4-Lite slave front end, in amaranth.sim: one strobe per transfer, responses held
under back-pressure, SLVERR on rejected accesses. Its generated Verilog runs inside the
top level on both simulators (tb/test_top.py), where every register access goes
through it."""
import random

import pytest

from hdp_rtl.rtl.axil import RESP_OKAY, RESP_SLVERR, AxiLiteSlave
from unit_sim import run_sim


def _run(bench, rd_latency=0):
    dut = AxiLiteSlave(addr_width=8, rd_latency=rd_latency)

    async def testbench(ctx):
        await bench(ctx, dut)

    run_sim(dut, testbench, deadline_cycles=2_000)


@pytest.mark.parametrize("rd_latency", [0, 1, 2])
def test_writes_and_reads_under_stalls(rd_latency):
    """Writes and reads back, with AW before W, B and R held under back-pressure, and the
    register side answering reads ``rd_latency`` cycles after the strobe (the register
    file's is ``RegisterFile.RD_LATENCY``)."""
    rng = random.Random(3)
    store = {}

    async def bench(ctx, dut):
        for i in range(40):
            addr, value = rng.randrange(0, 64, 4), rng.randrange(1 << 32)
            bad = addr == 60
            # write: address and data may arrive in different cycles
            ctx.set(dut.s_axil_awaddr, addr)
            ctx.set(dut.s_axil_awvalid, 1)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
                assert not ctx.get(dut.s_axil_awready)
            ctx.set(dut.s_axil_wdata, value)
            ctx.set(dut.s_axil_wstrb, 0xF)
            ctx.set(dut.s_axil_wvalid, 1)
            assert ctx.get(dut.s_axil_awready) and ctx.get(dut.s_axil_wready)
            assert not ctx.get(dut.bus.wr_en)         # the request is registered first
            await ctx.tick()
            ctx.set(dut.s_axil_awvalid, 0)
            ctx.set(dut.s_axil_wvalid, 0)
            assert not ctx.get(dut.s_axil_awready) and not ctx.get(dut.s_axil_bvalid)
            # the strobe, the cycle after the handshake, carries the request
            assert ctx.get(dut.bus.wr_en)
            assert ctx.get(dut.bus.wr_addr) == addr and ctx.get(dut.bus.wr_data) == value
            assert ctx.get(dut.bus.wr_strb) == 0xF
            ctx.set(dut.bus.wr_error, int(bad))
            if not bad:
                store[addr] = value
            await ctx.tick()
            ctx.set(dut.bus.wr_error, 0)
            assert not ctx.get(dut.bus.wr_en)
            for _ in range(rng.randrange(3)):        # B held while bready is low
                assert ctx.get(dut.s_axil_bvalid)
                assert not ctx.get(dut.s_axil_awready)   # one write outstanding
                await ctx.tick()
            assert ctx.get(dut.s_axil_bvalid)
            assert ctx.get(dut.s_axil_bresp) == (RESP_SLVERR if bad else RESP_OKAY)
            ctx.set(dut.s_axil_bready, 1)
            await ctx.tick()
            ctx.set(dut.s_axil_bready, 0)
            assert not ctx.get(dut.s_axil_bvalid)
            # read back
            ctx.set(dut.s_axil_araddr, addr)
            ctx.set(dut.s_axil_arvalid, 1)
            assert ctx.get(dut.s_axil_arready) and not ctx.get(dut.bus.rd_en)
            await ctx.tick()
            ctx.set(dut.s_axil_arvalid, 0)
            assert not ctx.get(dut.s_axil_arready)   # one read outstanding
            assert ctx.get(dut.bus.rd_en) and ctx.get(dut.bus.rd_addr) == addr
            for _ in range(rd_latency):              # the answer is not there yet
                ctx.set(dut.bus.rd_data, 0xDEAD_BEEF)
                ctx.set(dut.bus.rd_error, 1)
                await ctx.tick()
                assert not ctx.get(dut.bus.rd_en) and not ctx.get(dut.s_axil_rvalid)
                assert not ctx.get(dut.s_axil_arready)
                assert ctx.get(dut.bus.rd_addr) == addr  # held for the register side
            ctx.set(dut.bus.rd_data, store.get(addr, 0))
            ctx.set(dut.bus.rd_error, int(addr not in store))
            await ctx.tick()
            assert not ctx.get(dut.bus.rd_en)
            for _ in range(rng.randrange(3)):
                assert ctx.get(dut.s_axil_rvalid)
                await ctx.tick()
            assert ctx.get(dut.s_axil_rdata) == store.get(addr, 0)
            assert ctx.get(dut.s_axil_rresp) == (RESP_OKAY if addr in store else RESP_SLVERR)
            ctx.set(dut.s_axil_rready, 1)
            await ctx.tick()
            ctx.set(dut.s_axil_rready, 0)
            assert not ctx.get(dut.s_axil_rvalid)

    _run(bench, rd_latency)
