"""Performance counters: every counter against the documented increments under random
events, clear (heads_pruned survives it), blocks_pruned, the wrap at 2**counter_bits, in
amaranth.sim and as generated Verilog."""
import random

import pytest
from amaranth.hdl import Module, Signal

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import COUNTERS
from hdp_rtl.rtl.counters import PerfCounters
from tb.counters_model import NO_EVENTS, CountersModel, random_events
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim

# (edge builds no counters, perf_counters=False: its widths with them built)
CONFIGS = {"edge": HDPConfig.preset("edge").replace(perf_counters=True),
           "default": HDPConfig.preset("default")}
COUNTERS_INDEX = {name: i for i, name in enumerate(COUNTERS)}


@pytest.mark.parametrize("name", CONFIGS)
def test_counters_follow_events(name):
    """Three heads of random events, each begun by a clear; every value checked every
    cycle."""
    config = CONFIGS[name]
    rng = random.Random(name)
    dut = PerfCounters.from_config(config)
    model = CountersModel(config.head_dim, config.counter_bits, latency=PerfCounters.LATENCY)

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


def test_counters_wrap_at_counter_bits():
    """8-bit counters count modulo 2**8 and are 8 bits wide: nine pairs of 32 elements
    read 288 - 256 = 32 int_macs; then random events wrap the busiest counters (and
    blocks_pruned, valid less kept, below zero), every value checked every cycle."""
    config = HDPConfig.preset("edge").replace(counter_bits=8, perf_counters=True)
    dut = PerfCounters.from_config(config)
    assert len(dut.values[0]) == 8
    model = CountersModel(config.head_dim, config.counter_bits, latency=PerfCounters.LATENCY)
    rng = random.Random("wrap")
    wrapped = set()
    pair = {**NO_EVENTS, "int_pair": 1}

    async def bench(ctx):
        ctx.set(dut.events, pair)
        for _ in range(9 + PerfCounters.LATENCY):
            await ctx.tick()
        ctx.set(dut.events, NO_EVENTS)
        assert ctx.get(dut.values[COUNTERS_INDEX["int_macs"]]) == 9 * config.head_dim - 256
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.tick()
        model.step(NO_EVENTS, clear=True)
        assert list(ctx.get(dut.values)) == model.values() == [0] * len(COUNTERS), "cleared"
        for cycle in range(700):
            events = random_events(rng, config.block_col_count)
            ctx.set(dut.events, events)
            await ctx.tick()
            model.step(events)
            assert list(ctx.get(dut.values)) == model.values(), f"cycle {cycle}"
            wrapped.update(name for name, c in model.count.items() if c >= 1 << 8)
        assert {"cycles_total", "int_macs", "score_macs", "pv_macs"} <= wrapped

    run_sim(dut, bench, deadline_cycles=1_000)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("counters", preset, simulator, perf_counters=True)


def test_not_built_reads_zero():
    """perf_counters=False: no counter, every value 0 whatever the events."""
    config = HDPConfig.preset("edge").replace(perf_counters=False)
    dut = PerfCounters.from_config(config)
    rng = random.Random(3)

    async def bench(ctx):
        for _ in range(50):
            ctx.set(dut.events, random_events(rng, config.block_col_count))
            ctx.set(dut.clear, rng.random() < 0.1)
            await ctx.tick()
            assert list(ctx.get(dut.values)) == [0] * len(COUNTERS)

    # (the unit has no clocked logic left: a sync domain for the run)
    top = Module()
    top.submodules.dut = dut
    tick = Signal()
    top.d.sync += tick.eq(~tick)
    run_sim(top, bench)
