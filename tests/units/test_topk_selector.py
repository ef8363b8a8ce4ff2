"""Top-k selector (selector ``"topk"``) against golden.SELECTORS["topk"] with random stalls
on both streams, in amaranth.sim and as generated Verilog (Icarus and Verilator); its
cycles a block row against the formula."""
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import SELECTOR_NAMES, HDPConfig, Registers
from hdp_rtl.rtl.selectors import SELECTOR_UNITS, build_selector, selector_signature
from hdp_rtl.rtl.topk import select_plan, topk_select_cycles
from hdp_rtl.rtl.topk_selector import TopKSelector
from sim.runner import SIMULATORS, design_key, run_cocotb
from selector_bench import STALLS, check_masks, configs_for, golden_mask, random_rows
from selector_bench import run_heads as run_selector
from unit_sim import run_sim

#: (with topk: n_max 8, 8 compared a cycle: one word a row; bcc6's engine row is wider
#: than the mask; bcc1's n_max is 1)
CONFIGS = configs_for("topk")
REGISTERS = ("block_prune_enable", "block_k")


def random_heads(rng: random.Random, config: HDPConfig, count: int):
    """Heads, each (registers, block rows) (:func:`selector_bench.random_rows`);
    block_k 0, 1, 2, nb, nb + 1, block_col_count and the field's largest value; every
    fifth head with pruning off and a small block_k (which it must not read)."""
    bcc = config.block_col_count
    heads = []
    for h in range(count):
        bis = random_rows(rng, config, causal_like=bool(h % 2))
        nb = len(bis[-1])
        prune = h % 5 != 4
        k = rng.choice([0, 1, 2, nb, nb + 1, bcc, (1 << config.block_k_bits) - 1,
                        rng.randint(0, bcc)] if prune else [0, 1, rng.randint(0, bcc)])
        k = min(k, (1 << config.block_k_bits) - 1)
        regs = Registers(seq_len=1, block_k=k, block_prune_enable=prune)
        heads.append((regs, bis))
    return heads


def run_heads(dut, heads, *, seed: int, idle: float, backpressure: float):
    # (block_k is sampled by the engine a cycle after it is set: 2 cycles of settling)
    return run_selector(dut, heads, registers=REGISTERS, seed=seed, idle=idle,
                        backpressure=backpressure, settle=2)


@pytest.mark.parametrize("stalls", STALLS, ids=list(STALLS))
@pytest.mark.parametrize("name", CONFIGS)
def test_masks_match_golden(name, stalls):
    config = CONFIGS[name]
    rng = random.Random(f"{name}-{stalls}")
    heads = random_heads(rng, config, 30)
    dut = TopKSelector.from_config(config)
    idle, backpressure = STALLS[stalls]
    got = run_heads(dut, heads, seed=len(name), idle=idle, backpressure=backpressure)
    check_masks(got, heads, config, describe=lambda regs: f"block_k={regs.block_k}")


def test_every_block_k_of_tied_rows():
    """Every block_k (0 .. the field's largest) on rows of two or three distinct
    values: the tie rule (lower column first) everywhere."""
    config = CONFIGS["bcc8"]
    rng = random.Random(3)
    heads = []
    for _ in range(6):
        rows = [[rng.choice([-1, 0, 3]) for _ in range(rng.randint(1, 8))] for _ in range(3)]
        heads += [(Registers(seq_len=1, block_k=k), rows)
                  for k in range(1 << config.block_k_bits)]
    got = run_heads(TopKSelector.from_config(config), heads, seed=1, idle=0.1,
                    backpressure=0.2)
    want = [golden_mask(bi, regs, config) for regs, rows in heads for bi in rows]
    assert [g.mask for g in got] == want


@pytest.mark.parametrize("name", CONFIGS)
def test_every_selector_has_the_seams_streams(name):
    """Each selector name builds a unit whose streams are the seam's, with a golden
    policy; topk is the TopKSelector, and its run struct carries block_k."""
    from hdp_rtl.regmap import registers_by_name
    from hdp_rtl.rtl.regfile import run_layout
    config = CONFIGS[name]

    def built(unit):
        unit._MustUse__silence = True       # built only to be asked
        return unit

    assert SELECTOR_UNITS["topk"] is TopKSelector and "topk" in golden.SELECTORS
    seam = selector_signature(config).members
    for selector in SELECTOR_NAMES:
        unit = built(build_selector(config.replace(selector=selector)))
        for stream in ("i_block", "o_mask"):
            assert unit.signature.members[stream] == seam[stream], (selector, stream)
    unit = built(build_selector(config))
    assert isinstance(unit, TopKSelector)
    assert run_layout(registers_by_name(config))["block_k"].width == len(unit.block_k)


# ---- cycles ----------------------------------------------------------------------------

def measure(dut, rows, k):
    """Rows sent back to back at full rate, masks taken at once: the cycle of each
    row's first block and of each mask."""
    firsts, outs = [], []

    async def bench(ctx):
        ctx.set(dut.block_prune_enable, 1)
        ctx.set(dut.block_k, k)
        ctx.set(dut.o_mask.ready, 1)
        await ctx.tick().repeat(2)
        cycle, beats = 0, [(r, c, b) for r, bi in enumerate(rows) for c, b in enumerate(bi)]
        while len(outs) < len(rows):
            if beats:
                r, c, b = beats[0]
                ctx.set(dut.i_block.payload, {"bi": b, "col": c, "last": int(c == len(rows[r]) - 1),
                                              "last_row": int(r == len(rows) - 1)})
            ctx.set(dut.i_block.valid, int(bool(beats)))
            await ctx.delay(1e-9)
            if beats and ctx.get(dut.i_block.ready):
                if c == 0:
                    firsts.append(cycle)
                beats.pop(0)
            if ctx.get(dut.o_mask.valid):
                outs.append(cycle)
            await ctx.tick()
            cycle += 1

    run_sim(dut, bench, deadline_cycles=50_000)
    return firsts, outs


@pytest.mark.parametrize("nb", [1, 8, 16, 32, 64])
def test_cycles_a_block_row(nb, capsys):
    """Rows of ``nb`` random blocks (the default preset's 14-bit importances, 8 compared
    a cycle): a row's mask comes ``nb + topk_select_cycles(row, k, 14, 8) - 1`` cycles
    after its first block, and rows follow each other every ``max(nb + 1, row cycles)``
    cycles or sooner (the next row streams in while one is selected)."""
    config = HDPConfig.preset("default").replace(selector="topk")
    rng = random.Random(nb)
    lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
    rows = [[rng.randint(lo, hi) for _ in range(nb)] for _ in range(6)]
    k = max(1, nb // 4)
    dut = TopKSelector(block_col_count=64, sint_bits=config.sint_bits)
    firsts, outs = measure(dut, rows, k)
    plans = [select_plan(bi, k, config.sint_bits, 8) for bi in rows]
    passes = [p["passes"] for p in plans]
    latency = outs[0] - firsts[0]
    assert latency == nb + plans[0]["cycles"] - 1, (latency, plans[0])
    period = (outs[-1] - outs[0]) / (len(rows) - 1)
    # rows are taken every max(nb + 1, select side) cycles or sooner; a mask comes its
    # own row's select cycles after the take, which differ row to row
    takes = (outs[-1] - plans[-1]["cycles"] - outs[0] + plans[0]["cycles"]) / (len(rows) - 1)
    bound = max(max(nb + 1, p["cycles"]) for p in plans)
    assert takes <= bound, (takes, bound)
    with capsys.disabled():
        print(f"\nnb {nb}, k {k}: passes {passes}, first block to mask {latency} cycles "
              f"(BlockSelector 2 nb + 5 = {2 * nb + 5}), a row every {period:.1f} cycles "
              f"(BlockSelector nb + 1 = {nb + 1}); select side "
              f"{[p['cycles'] for p in plans]}")


# ---- the generated Verilog ---------------------------------------------------------------

#: the cocotb run's config: the edge preset's block rows (16 blocks of 10-bit BI) on the
#: topk selector
VERILOG_CONFIG = HDPConfig.preset("edge").replace(selector="topk")


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_verilog(simulator):
    config = VERILOG_CONFIG
    run_cocotb(component=lambda: TopKSelector.from_config(config), toplevel="hdp_topk_selector",
               test_module="cocotb_topk_selector", simulator=simulator,
               name="topk_selector-edge", env={"HDP_CONFIG": config.to_dict()},
               quick_build=True, key=design_key("topk_selector", config))
