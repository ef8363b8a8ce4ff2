"""Threshold selector (selector ``"threshold"``) against golden.SELECTORS["threshold"]
with random stalls on both streams, in amaranth.sim and as generated Verilog (Icarus and
Verilator); its pace (a block a cycle) and latency."""
import random

import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.regmap import registers_by_name
from hdp_rtl.rtl.regfile import run_layout
from hdp_rtl.rtl.selectors import SELECTOR_UNITS, build_selector
from hdp_rtl.rtl.threshold_selector import ThresholdSelector
from sim.runner import SIMULATORS, design_key, run_cocotb
from selector_bench import STALLS, check_masks as check_selector_masks, configs_for, golden_mask
from selector_bench import random_rows, run_heads as run_selector
from unit_sim import run_sim

CONFIGS = configs_for("threshold")
REGISTERS = ("block_prune_enable", "score_threshold")


def random_heads(rng: random.Random, config: HDPConfig, count: int):
    """Heads, each (registers, block rows) (:func:`selector_bench.random_rows`);
    thresholds at the field's ends, one past the rows' values, a value of a row and
    random; every fifth head with pruning off."""
    lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
    heads = []
    for h in range(count):
        bis = random_rows(rng, config, causal_like=bool(h % 2))
        values = [b for bi in bis for b in bi]
        threshold = rng.choice([lo, lo + 1, hi, min(hi, max(values) + 1), rng.choice(values),
                                rng.randint(-3, 3), rng.randint(lo, hi)])
        regs = Registers(seq_len=1, score_threshold=threshold, block_prune_enable=h % 5 != 4)
        heads.append((regs, bis))
    return heads


def run_heads(dut, heads, *, seed: int, idle: float, backpressure: float):
    return run_selector(dut, heads, registers=REGISTERS, seed=seed, idle=idle,
                        backpressure=backpressure, deadline_cycles=100_000)


def check_masks(got, heads, config):
    check_selector_masks(got, heads, config,
                         describe=lambda regs: f"threshold={regs.score_threshold}")


@pytest.mark.parametrize("stalls", STALLS, ids=list(STALLS))
@pytest.mark.parametrize("name", CONFIGS)
def test_masks_match_golden(name, stalls):
    config = CONFIGS[name]
    heads = random_heads(random.Random(f"{name}-{stalls}"), config, 30)
    idle, backpressure = STALLS[stalls]
    got = run_heads(ThresholdSelector.from_config(config), heads, seed=len(name), idle=idle,
                    backpressure=backpressure)
    check_masks(got, heads, config)


def test_ties_keep_the_lowest_column_of_the_maximum():
    """Rows of two or three distinct values under every threshold from below the lowest
    to above the highest: a tied maximum below the threshold keeps its lowest column
    only (one such row is spelled out), at or above it every tied block."""
    config = CONFIGS["bcc8"]
    rng = random.Random(4)
    rows = [[rng.choice([-5, 0, 3]) for _ in range(rng.randint(1, 8))] for _ in range(6)]
    rows.append([-1, 2, 0, 2, 2])
    heads = [(Registers(seq_len=1, score_threshold=t), rows) for t in range(-7, 6)]
    got = run_heads(ThresholdSelector.from_config(config), heads, seed=2, idle=0.1,
                    backpressure=0.2)
    check_masks(got, heads, config)
    assert golden_mask([-1, 2, 0, 2, 2], Registers(seq_len=1, score_threshold=3),
                       config) == 0b10
    assert golden_mask([-1, 2, 0, 2, 2], Registers(seq_len=1, score_threshold=2),
                       config) == 0b11010


@pytest.mark.parametrize("name", CONFIGS)
def test_the_seam_builds_it_with_its_register(name):
    """Selector threshold builds a ThresholdSelector with the seam's streams (the other
    selectors' are checked in test_topk_selector.py), with a golden policy; its run
    struct carries score_threshold, signed and as wide as the unit's input."""
    config = CONFIGS[name]
    unit = build_selector(config)
    unit._MustUse__silence = True       # built only to be asked
    assert SELECTOR_UNITS["threshold"] is ThresholdSelector and "threshold" in golden.SELECTORS
    assert isinstance(unit, ThresholdSelector)
    shape = run_layout(registers_by_name(config))["score_threshold"].shape
    assert shape.signed and shape.width == len(unit.score_threshold) == config.sint_bits


def test_a_block_a_cycle():
    """Rows sent back to back, masks taken at once (the default preset's 256 blocks a
    row and 14-bit BI): blocks are taken a cycle each, but a row of one block waits a
    cycle (rows take max(nb, 2) cycles), and each row's mask comes two cycles after its
    last block."""
    config = HDPConfig.preset("default").replace(selector="threshold")
    dut = ThresholdSelector.from_config(config)
    rng = random.Random(7)
    lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
    sizes = (1, 5, 256, 2, 1, 1, 64, 3)
    rows = [[rng.randint(lo, hi) for _ in range(nb)] for nb in sizes]
    regs = Registers(seq_len=1, score_threshold=hi // 2)
    taken, outs, masks = [], [], []          # cycles of each block taken, of each mask

    async def bench(ctx):
        ctx.set(dut.block_prune_enable, 1)
        ctx.set(dut.score_threshold, regs.score_threshold)
        ctx.set(dut.o_mask.ready, 1)
        beats = [(r, c, b) for r, bi in enumerate(rows) for c, b in enumerate(bi)]
        cycle = 0
        while len(outs) < len(rows):
            if beats:
                r, c, b = beats[0]
                ctx.set(dut.i_block.payload, {"bi": b, "col": c, "last": int(c == len(rows[r]) - 1),
                                              "last_row": int(r == len(rows) - 1)})
            ctx.set(dut.i_block.valid, int(bool(beats)))
            await ctx.delay(1e-9)
            if beats and ctx.get(dut.i_block.ready):
                taken.append(cycle)
                beats.pop(0)
            if ctx.get(dut.o_mask.valid):
                outs.append(cycle)
                masks.append(ctx.get(dut.o_mask.payload.mask))
            await ctx.tick()
            cycle += 1

    run_sim(dut, bench, deadline_cycles=2_000)
    firsts = [sum(sizes[:r]) for r in range(len(sizes))]
    lasts = [f + nb - 1 for f, nb in zip(firsts, sizes)]
    # a row's first block waits a cycle only when the row before was one block
    waits = [int(r > 0 and sizes[r] == 1 and taken[firsts[r]] - taken[lasts[r - 1]] > 1)
             for r in range(len(sizes))]
    assert [taken[i + 1] - taken[i] for i in range(len(taken) - 1)] == [
        1 + (i + 1 in firsts and sizes[firsts.index(i + 1)] == 1) for i in range(len(taken) - 1)]
    assert sum(waits) == sum(nb == 1 for nb in sizes[1:])
    assert outs == [taken[i] + 2 for i in lasts]
    assert masks == [golden_mask(bi, regs, config) for bi in rows]


# ---- the generated Verilog ---------------------------------------------------------------

#: the cocotb run's config: the edge preset's block rows on the threshold selector
VERILOG_CONFIG = HDPConfig.preset("edge").replace(selector="threshold")


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_verilog(simulator):
    config = VERILOG_CONFIG
    run_cocotb(component=lambda: ThresholdSelector.from_config(config),
               toplevel="hdp_threshold_selector", test_module="cocotb_threshold_selector",
               simulator=simulator, name="threshold_selector-edge",
               env={"HDP_CONFIG": config.to_dict()}, quick_build=True,
               key=design_key("threshold_selector", config))
