"""Performance counters: every counter against the documented increments under random
events, clear (heads_pruned survives it), blocks_pruned, in amaranth.sim and as generated
Verilog."""
import random

import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.counters import PerfCounters
from tb.counters_model import NO_EVENTS, CountersModel, random_events
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim

CONFIGS = {"edge": HDPConfig.preset("edge"), "default": HDPConfig.preset("default")}


@pytest.mark.parametrize("name", CONFIGS)
def test_counters_follow_events(name):
    """Three heads of random events, each begun by a clear; every value checked every
    cycle."""
    config = CONFIGS[name]
    rng = random.Random(name)
    dut = PerfCounters.from_config(config)
    model = CountersModel(config.head_dim, latency=PerfCounters.LATENCY)

    async def bench(ctx):
        assert list(ctx.get(dut.values)) == model.values()     # 0 after reset
        for head in range(3):
            ctx.set(dut.events, NO_EVENTS)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            model.step(NO_EVENTS, clear=True)
            assert list(ctx.get(dut.values)) == model.values(), f"after clear {head}"
            for cycle in range(150):
                events = random_events(rng, config.block_col_count)
                ctx.set(dut.events, events)
                await ctx.tick()
                model.step(events)
                assert list(ctx.get(dut.values)) == model.values(), f"head {head} cycle {cycle}"
        assert model.count["heads_pruned"] > 3, "the test prunes heads across clears"

    run_sim(dut, bench, deadline_cycles=1_000)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("counters", preset, simulator)
