"""Sequencer Verilog: the stages, pulses and status bits of kept and pruned heads, and
the abort and input timeout (tb/sequencer_script.py)."""
import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from hdp_rtl.rtl.sequencer import stage_layout
from sim.packing import unpack
from streams import past_time_zero, start_clock_and_reset
from tb.sequencer_script import (ABORT_OUTPUTS, OUTPUTS, abort_script, check, check_abort,
                                 script)


@cocotb.test()
async def stage_order(dut):
    await past_time_zero()
    steps = script()
    for name in steps[0][1]:
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut)
    cycles = []
    for head, inputs in steps:
        for name, value in inputs.items():
            getattr(dut, name).value = value
        await ReadOnly()
        outputs = {name: int(getattr(dut, name).value) for name in OUTPUTS}
        stage = unpack(stage_layout, dut.stage.value.to_unsigned())
        cycles.append((head, inputs | outputs | stage))
        await RisingEdge(dut.clk)
    check(cycles)


@cocotb.test()
async def abort_and_input_timeout(dut):
    await past_time_zero()
    steps, expect = abort_script()
    for name in steps[0][1]:
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut)
    cycles = []
    for case, inputs in steps:
        for name, value in inputs.items():
            getattr(dut, name).value = value
        await ReadOnly()
        cycles.append((case, inputs | {name: int(getattr(dut, name).value)
                                       for name in ABORT_OUTPUTS}))
        await RisingEdge(dut.clk)
    check_abort(cycles, expect)
