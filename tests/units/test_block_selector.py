"""Block selector against golden.select_blocks with random stalls, in amaranth.sim and as
generated Verilog; both implementations (products, and the serial threshold of the edge
preset)."""
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.block_selector import BlockSelector
from cases import EDGE_AND_DEFAULT, run_unit_verilog
from unit_sim import recv_stream, run_sim, send_stream

CFG = HDPConfig(seq_max=32, head_dim=8, block_rows=1, block_cols=4,   # 8 blocks a row
                int_lanes=4, mac_lanes=4, axis_elems=4)
IMPLS = pytest.mark.parametrize("serial", [False, True], ids=["products", "serial"])


def _rows(rng: random.Random, count: int):
    """Random block rows: (bi values, number of valid blocks), ties and negatives included."""
    lo, hi = -(1 << (CFG.sint_bits - 1)), (1 << (CFG.sint_bits - 1)) - 1
    rows = []
    for i in range(count):
        nb = rng.randint(1, CFG.block_col_count)
        kind = i % 4
        if kind == 0:
            bi = [rng.randint(lo, hi) for _ in range(nb)]
        elif kind == 1:
            bi = [rng.randint(-5, 5) for _ in range(nb)]            # many ties
        elif kind == 2:
            bi = [rng.randint(-3, 3)] * nb                          # all equal
        else:
            bi = [rng.randint(lo, lo + 20) for _ in range(nb)]      # all very negative
        rows.append(bi)
    return rows


def _golden_masks(rows, regs):
    out = []
    for bi in rows:
        full = np.zeros((1, CFG.block_col_count), dtype=np.int64)
        valid = np.zeros((1, CFG.block_col_count), dtype=bool)
        full[0, :len(bi)] = bi
        valid[0, :len(bi)] = True
        keep = golden.select_blocks(full, valid, regs)[0]
        out.append(sum(int(k) << c for c, k in enumerate(keep)))
    return out


def _program(ctx, dut, regs, rows) -> list:
    """Set the selector's run-time registers from ``regs``; the i_block beats of ``rows``."""
    ctx.set(dut.block_prune_enable, int(regs.block_prune_enable))
    ctx.set(dut.block_rule, regs.block_rule)
    ctx.set(dut.rho, regs.rho)
    ctx.set(dut.delta, regs.delta)
    return [{"bi": b, "col": c, "last": int(c == len(bi) - 1),
             "last_row": int(r == len(rows) - 1)}
            for r, bi in enumerate(rows) for c, b in enumerate(bi)]


@pytest.mark.parametrize("fields", [
    dict(block_rule=0, rho=-256), dict(block_rule=0, rho=0), dict(block_rule=0, rho=128),
    dict(block_rule=0, rho=256), dict(block_rule=1, delta=0), dict(block_rule=1, delta=3),
    dict(block_rule=1, delta=(1 << CFG.delta_bits) - 1), dict(block_prune_enable=False),
    dict(block_rule=0, rho=-255), dict(block_rule=0, rho=37), dict(block_rule=0, rho=255),
], ids=lambda f: "-".join(f"{k}{v}" for k, v in f.items()))
@IMPLS
def test_masks_match_golden(fields, serial):
    regs = Registers(seq_len=1, **fields)
    rng = random.Random(str(fields))
    rows = _rows(rng, 24)
    want = _golden_masks(rows, regs)
    dut = BlockSelector.from_config(CFG, serial=serial)
    got = []

    async def source(ctx):
        beats = _program(ctx, dut, regs, rows)
        await send_stream(ctx, dut.i_block, beats, rng=rng, idle=0.3)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, dut.o_mask, len(rows), rng=rng, backpressure=0.4))

    run_sim(dut, source, sink, deadline_cycles=5_000)
    assert [g.mask for g in got] == want
    assert [g.last_row for g in got] == [0] * (len(rows) - 1) + [1]


def _run_rows(rows, regs, *, sink_ready, idle=0.0, seed=0, serial=False):
    """Send ``rows`` back to back, take masks when ``sink_ready(cycle)``; returns the masks
    and the cycle each one was taken."""
    dut = BlockSelector.from_config(CFG, serial=serial)
    rng = random.Random(seed)
    got, when = [], []

    async def source(ctx):
        beats = _program(ctx, dut, regs, rows)
        await send_stream(ctx, dut.i_block, beats, rng=rng, idle=idle)

    async def sink(ctx):
        cycle = 0
        while len(got) < len(rows):
            ctx.set(dut.o_mask.ready, int(sink_ready(cycle)))
            await ctx.delay(1e-9)
            valid, ready = ctx.get(dut.o_mask.valid), ctx.get(dut.o_mask.ready)
            payload = ctx.get(dut.o_mask.payload)
            await ctx.tick()
            if valid and ready:
                got.append(payload)
                when.append(cycle)
            cycle += 1

    run_sim(dut, source, sink, deadline_cycles=20_000)
    return got, when, dut


@IMPLS
@pytest.mark.parametrize("rule", [0, 1])
def test_short_rows_long_backpressure(rule, serial):
    """One- and two-block rows back to back (rows overlap in the compare pipeline and
    both mask slots fill) while the sink stalls for long stretches."""
    regs = Registers(seq_len=1, block_rule=rule, rho=128, delta=2)
    rng = random.Random(rule)
    rows = [[rng.randint(-6, 6) for _ in range(rng.choice([1, 1, 2, CFG.block_col_count]))]
            for _ in range(40)]
    got, _, _ = _run_rows(rows, regs, sink_ready=lambda c: (c // 37) % 2 == 1 or c % 5 == 0,
                          serial=serial)
    assert [g.mask for g in got] == _golden_masks(rows, regs)
    assert [g.last_row for g in got] == [0] * (len(rows) - 1) + [1]


@IMPLS
@pytest.mark.parametrize("rule", [0, 1])
@pytest.mark.parametrize("nb", [1, 2, 3, CFG.block_col_count])
def test_row_rate(nb, rule, serial):
    """With no stall a block row of ``nb`` blocks is taken every ``nb + 1`` cycles (the
    two mask slots limit rows of fewer than 4 blocks to two every ``nb + 6`` cycles); the
    serial implementation's mean rule adds ``threshold_cycles(nb)`` to rows of two
    blocks or more (its D pass and the threshold's steps)."""
    regs = Registers(seq_len=1, block_rule=rule, rho=64, delta=50)
    rng = random.Random(nb)
    rows = [[rng.randint(-99, 99) for _ in range(nb)] for _ in range(30)]
    got, when, dut = _run_rows(rows, regs, sink_ready=lambda c: True, serial=serial)
    assert [g.mask for g in got] == _golden_masks(rows, regs)
    period = (when[-1] - when[0]) / (len(rows) - 1)
    extra = 0
    if serial and rule == 0 and nb > 1:
        extra = dut.threshold_cycles(nb)
        assert extra == 2 * nb + 25 - nb - 1           # sint_bits 11: 2 nb + 25 a row
    assert period <= max(nb + 1 + extra, (nb + 6) / 2), period


def test_serial_choice():
    """``from_config`` picks the serial implementation where the head scorer leaves it
    the time (``edge``: 8 cycles a pair, 4-pair blocks), the products elsewhere."""
    assert BlockSelector.serial_fits(HDPConfig.preset("edge"))
    for name in ("default", "server"):
        assert not BlockSelector.serial_fits(HDPConfig.preset(name))
    assert not BlockSelector.serial_fits(CFG)          # 2 cycles a pair: too fast
    sel = BlockSelector.from_config(HDPConfig.preset("edge"))
    assert sel.serial
    sel._MustUse__silence = True       # built only to be asked


@pytest.mark.parametrize("k", ["causal", 5, 6, 9, 64])
def test_serial_keeps_scorer_pace(k):
    """The ``edge`` preset's serial selector never holds the head scorer up: blocks sent
    at the scorer's fastest pace (the last row of a block row: ``head_dim / int_lanes``
    = 8 cycles a pair, ``block_cols`` = 4 pairs a block, the row's last block possibly
    of one pair) under the mean rule, block rows that grow (causal) or stay equal
    (``k`` pairs a row), are each taken the cycle they are offered, and the masks match
    the golden model."""
    cfg = HDPConfig.preset("edge")
    pair = cfg.head_dim // cfg.int_lanes
    regs = Registers(seq_len=1, block_rule=0, rho=96)
    rng = random.Random(k)
    if k == "causal":                          # row r: r + 1 pairs, 4-pair blocks
        pairs = list(range(1, cfg.seq_max + 1))
    else:                                      # seq_len k: 5 is the closest (2 blocks)
        pairs = [k] * 40
    rows, gaps = [], []                         # gaps: cycles before each block
    for k in pairs:
        nb = -(-k // cfg.block_cols)
        rows.append([rng.randint(-4000, 4000) for _ in range(nb)])
        gaps += [pair * min(cfg.block_cols, k - cfg.block_cols * j) for j in range(nb)]
    dut = BlockSelector.from_config(cfg)
    assert dut.serial
    got, waits = [], []

    async def source(ctx):
        ctx.set(dut.block_prune_enable, 1)
        ctx.set(dut.block_rule, regs.block_rule)
        ctx.set(dut.rho, regs.rho)
        beats = [{"bi": b, "col": c, "last": int(c == len(bi) - 1),
                  "last_row": int(r == len(rows) - 1)}
                 for r, bi in enumerate(rows) for c, b in enumerate(bi)]
        for beat, gap in zip(beats, gaps):
            ctx.set(dut.i_block.valid, 0)
            await ctx.tick().repeat(gap - 1)
            ctx.set(dut.i_block.payload, beat)
            ctx.set(dut.i_block.valid, 1)
            await ctx.delay(1e-9)
            waits.append(0 if ctx.get(dut.i_block.ready) else 1)
            await ctx.tick().until(dut.i_block.ready)
        ctx.set(dut.i_block.valid, 0)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, dut.o_mask, len(rows), rng=rng, backpressure=0.0))

    run_sim(dut, source, sink, deadline_cycles=100_000)
    want = []
    for bi in rows:
        full = np.zeros((1, cfg.block_col_count), dtype=np.int64)
        valid = np.zeros((1, cfg.block_col_count), dtype=bool)
        full[0, :len(bi)], valid[0, :len(bi)] = bi, True
        keep = golden.select_blocks(full, valid, regs)[0]
        want.append(sum(int(k) << c for c, k in enumerate(keep)))
    assert [g.mask for g in got] == want
    assert sum(waits) == 0, f"{sum(waits)} blocks waited"


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("block_selector", preset, simulator)
