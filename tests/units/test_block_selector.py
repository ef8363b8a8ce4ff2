"""Block selector against golden.select_blocks with random stalls, in amaranth.sim and as
generated Verilog."""
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


@pytest.mark.parametrize("fields", [
    dict(block_rule=0, rho=-256), dict(block_rule=0, rho=0), dict(block_rule=0, rho=128),
    dict(block_rule=0, rho=256), dict(block_rule=1, delta=0), dict(block_rule=1, delta=3),
    dict(block_rule=1, delta=(1 << CFG.delta_bits) - 1), dict(block_prune_enable=False),
], ids=lambda f: "-".join(f"{k}{v}" for k, v in f.items()))
def test_masks_match_golden(fields):
    regs = Registers(seq_len=1, **fields)
    rng = random.Random(str(fields))
    rows = _rows(rng, 24)
    want = _golden_masks(rows, regs)
    dut = BlockSelector.from_config(CFG)
    got = []

    async def source(ctx):
        ctx.set(dut.block_prune_enable, int(regs.block_prune_enable))
        ctx.set(dut.block_rule, regs.block_rule)
        ctx.set(dut.rho, regs.rho)
        ctx.set(dut.delta, regs.delta)
        beats = [{"bi": b, "col": c, "last": int(c == len(bi) - 1),
                  "last_row": int(r == len(rows) - 1)}
                 for r, bi in enumerate(rows) for c, b in enumerate(bi)]
        await send_stream(ctx, dut.i_block, beats, rng=rng, idle=0.3)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, dut.o_mask, len(rows), rng=rng, backpressure=0.4))

    run_sim(dut, source, sink, deadline_cycles=5_000)
    assert [g.mask for g in got] == want
    assert [g.last_row for g in got] == [0] * (len(rows) - 1) + [1]


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("block_selector", preset, simulator)
