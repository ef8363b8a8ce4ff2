"""Top-k engine Verilog against golden.spatten.topk_mask under random idle/back-pressure.

The engine's parameters come from ``TOPK_PARAMS`` (tests/units/test_topk.py).
"""
import random

import cocotb
from cocotb.triggers import RisingEdge

from golden.spatten import topk_mask
from hdp_rtl.rtl.topk import topk_mask_layout, topk_value_layout
from sim.packing import pack
from streams import StreamSink, env_json, past_time_zero, start_clock_and_reset

PARAMS = env_json("TOPK_PARAMS", {"n_max": 16, "width": 8, "comparators": 4})
N_MAX, WIDTH = PARAMS["n_max"], PARAMS["width"]


class TopKTB:
    """Drives rows (values, k) in with random idle cycles, takes masks with random
    back-pressure and checks each one, in order, against the golden model."""

    def __init__(self, dut, seed: int, *, idle: float = 0.3, backpressure: float = 0.4):
        self.dut = dut
        self.rng = random.Random(seed)
        self.idle = idle
        self.layout = topk_value_layout(width=WIDTH)
        self.sink = StreamSink(dut, "o_mask", topk_mask_layout(n_max=N_MAX),
                               backpressure=backpressure, seed=seed + 1)
        self.expected = []
        dut.i_value__valid.value = 0
        dut.k.value = 0

    def random_row(self):
        lo, hi = -(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1
        n = self.rng.choice([1, N_MAX, self.rng.randint(1, N_MAX)])
        spread = self.rng.choice([1, 3, hi])
        vals = [max(lo, min(hi, self.rng.randint(-spread - 1, spread))) for _ in range(n)]
        if self.rng.random() < 0.2:
            vals = [self.rng.choice([lo, hi])] * n
        k = self.rng.choice([0, 1, n, N_MAX, self.rng.randint(0, n)])
        return vals, k

    async def drive(self, rows):
        """The driver: a value a cycle unless idle; ``k`` held with each row's first
        value (random on the others: the engine must ignore it)."""
        dut = self.dut
        for vals, k in rows:
            for i, v in enumerate(vals):
                while self.rng.random() < self.idle:
                    dut.i_value__valid.value = 0
                    dut.k.value = self.rng.randint(0, N_MAX)
                    await RisingEdge(dut.clk)
                dut.k.value = k if i == 0 else self.rng.randint(0, N_MAX)
                dut.i_value__payload.value = pack(self.layout, {"value": v,
                                                                "last": int(i == len(vals) - 1)})
                dut.i_value__valid.value = 1
                await RisingEdge(dut.clk)
                while not int(dut.i_value__ready.value):
                    await RisingEdge(dut.clk)
        dut.i_value__valid.value = 0

    async def check(self, rows):
        """The in-order checker: every mask and count against the golden model."""
        for r, (vals, k) in enumerate(rows):
            want = sum(1 << i for i, keep in enumerate(topk_mask(vals, k)) if keep)
            got = await self.sink.recv()
            assert got["mask"] == want, (f"row {r} {vals} k={k}: mask {got['mask']:#x}, "
                                         f"expected {want:#x}")
            assert got["count"] == min(k, len(vals)), f"row {r}: count {got['count']}"


@cocotb.test()
async def masks_match_golden(dut):
    await past_time_zero()
    tb = TopKTB(dut, seed=12)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    rows = [tb.random_row() for _ in range(50)]
    driver = cocotb.start_soon(tb.drive(rows))
    await tb.check(rows)
    await driver
