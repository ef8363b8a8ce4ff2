"""Sequencer: the stages of kept and pruned heads, the pulses that send the units off and
the status bits (tb/sequencer_script.py), in amaranth.sim and as generated Verilog."""
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.sequencer import Sequencer
from tb.sequencer_script import OUTPUTS, STAGE_NAMES, check, script
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim


def test_stage_order():
    dut = Sequencer.from_config(HDPConfig.preset("edge"))
    cycles = []

    async def bench(ctx):
        for head, inputs in script():
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            outputs = {name: ctx.get(getattr(dut, name)) for name in OUTPUTS}
            stage = {name: ctx.get(getattr(dut.stage, name)) for name in STAGE_NAMES}
            cycles.append((head, inputs | outputs | stage))
            await ctx.tick()

    run_sim(dut, bench, deadline_cycles=1_000)
    check(cycles)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("sequencer", preset, simulator)
