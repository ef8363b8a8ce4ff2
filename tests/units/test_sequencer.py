"""Sequencer: the stages of kept and pruned heads, the pulses that send the units off and
the status bits, and the abort and input timeout (tb/sequencer_script.py), in
amaranth.sim and as generated Verilog."""
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import ErrorCode
from hdp_rtl.rtl.sequencer import Sequencer
from tb.sequencer_script import (ABORT_OUTPUTS, OUTPUTS, STAGE_NAMES, abort_script, check,
                                 check_abort, script)
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


def _record_abort_script(dut):
    steps, expect = abort_script()
    cycles = []

    async def bench(ctx):
        for case, inputs in steps:
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            cycles.append((case, inputs | {name: ctx.get(getattr(dut, name))
                                           for name in ABORT_OUTPUTS}))
            await ctx.tick()

    run_sim(dut, bench, deadline_cycles=1_000)
    return cycles, expect


def test_abort_and_input_timeout():
    dut = Sequencer.from_config(HDPConfig.preset("edge"))
    cycles, expect = _record_abort_script(dut)
    check_abort(cycles, expect)
    aborted = {case: cause for case, (at, cause) in expect.items() if at is not None}
    assert aborted["timeout"] == ErrorCode.INPUT_TIMEOUT          # the script covers both
    assert aborted["abort-and-timeout"] == ErrorCode.ABORTED      # causes, and the tie


def test_abort_check_fails_on_a_late_flush():
    """check_abort is no test that cannot fail: the same recording, with the flush (and
    busy falling) a cycle late, is refused."""
    dut = Sequencer.from_config(HDPConfig.preset("edge"))
    cycles, expect = _record_abort_script(dut)
    late = []
    for i, (case, v) in enumerate(cycles):
        v = dict(v)
        if case == "load":
            prev = cycles[i - 1][1] if cycles[i - 1][0] == case else v
            v.update(flush=prev["flush"], busy=prev["busy"] | v["busy"])
        late.append((case, v))
    with pytest.raises(AssertionError):
        check_abort(late, expect)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("sequencer", preset, simulator)
