"""cocotb side of tb/test_infra.py: every beat arrives once, in order, under stalls."""
import random

import cocotb

from infra_passthrough import LAYOUT
from streams import StreamSink, StreamSource, past_time_zero, start_clock_and_reset


@cocotb.test()
async def passthrough_in_order(dut):
    await past_time_zero()
    rng = random.Random(5)
    items = [{"a": rng.randrange(-16, 16), "b": [rng.randrange(8), rng.randrange(8)],
              "last": int(i % 7 == 6)} for i in range(200)]
    src = StreamSource(dut, "i_x", LAYOUT, idle=0.3, seed=2)
    sink = StreamSink(dut, "o_x", LAYOUT, backpressure=0.3, seed=3)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    src.send_all(items)
    got = [await sink.recv() for _ in items]
    assert got == items
