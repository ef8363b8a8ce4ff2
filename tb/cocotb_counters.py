"""Performance counters Verilog: every counter against the documented increments under
random events, across clears (heads_pruned survives them)."""
import random

import cocotb
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import COUNTERS
from hdp_rtl.rtl.counters import PerfCounters, events_layout
from sim.packing import pack, unpack
from streams import env_json, past_time_zero, start_clock_and_reset
from tb.counters_model import NO_EVENTS, CountersModel, random_events

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
EVENTS = events_layout(kept_bits=CONFIG.block_col_count.bit_length())
VALUES = data.ArrayLayout(CONFIG.counter_bits, len(COUNTERS))


@cocotb.test()
async def counters_follow_events(dut):
    await past_time_zero()
    dut.events.value = pack(EVENTS, NO_EVENTS)
    dut.clear.value = 0
    await start_clock_and_reset(dut)
    rng = random.Random(3)
    model = CountersModel(CONFIG.head_dim, CONFIG.counter_bits, latency=PerfCounters.LATENCY)
    for head in range(2):
        for cycle in range(100):
            clear = cycle == 0
            events = NO_EVENTS if clear else random_events(rng, CONFIG.block_col_count)
            dut.clear.value = int(clear)
            dut.events.value = pack(EVENTS, events)
            await ReadOnly()
            assert unpack(VALUES, dut.values.value.to_unsigned()) == model.values(), \
                f"head {head} cycle {cycle}"
            model.step(events, clear)
            await RisingEdge(dut.clk)
