"""Pair generator: the kept pairs and zero rows of golden heads, in order, under random
back-pressure and slow row credits, in amaranth.sim and as generated Verilog."""
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.pair_generator import PairGenerator
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim

def _small(**fields) -> HDPConfig:
    """A 4-wide config: only seq_max and the block shape matter to the pair generator."""
    return HDPConfig(head_dim=4, int_lanes=4, mac_lanes=4, axis_elems=4, **fields)


CONFIGS = {
    "1x1": _small(seq_max=12),
    "1x4": _small(seq_max=16, block_cols=4),
    "2x2": _small(seq_max=11, block_rows=2, block_cols=2),
    "4x8": _small(seq_max=20, block_rows=4, block_cols=8),
}
# (config, seq_len, causal, delta, head pruned): delta 0 keeps only each row's best
CASES = [("1x1", 12, False, 0, False), ("1x1", 7, True, 2, False), ("1x1", 1, False, 0, False),
         ("1x4", 16, False, 1, False), ("1x4", 13, True, 0, False), ("2x2", 11, True, 0, False),
         ("2x2", 9, False, 3, False), ("4x8", 19, True, 1, False), ("4x8", 20, True, 0, False),
         ("1x4", 10, False, 0, True), ("2x2", 5, True, 0, True)]


def _golden(cfg, n, causal, delta, pruned, seed):
    rng = np.random.default_rng(seed)
    q, k, v = rng.integers(cfg.data_min, cfg.data_max + 1, (3, n, cfg.head_dim))
    regs = Registers(seq_len=n, causal=causal, delta=delta, score_scale=1 << 18)
    res = golden.attention_head(q, k, v, cfg, regs)
    keep = np.zeros_like(res.keep) if pruned else res.keep
    block_keep = res.block_keep
    return block_keep, keep


@pytest.mark.parametrize("name,n,causal,delta,pruned", CASES,
                         ids=[f"{c[0]}-n{c[1]}-{'causal' if c[2] else 'full'}-d{c[3]}"
                              f"{'-pruned' if c[4] else ''}" for c in CASES])
def test_kept_pairs_match_golden(name, n, causal, delta, pruned):
    cfg = CONFIGS[name]
    block_keep, keep = _golden(cfg, n, causal, delta, pruned, seed=n * 7 + delta)
    _check(cfg, n, causal, pruned, block_keep, keep, random.Random(name + str(n)))


def _check(cfg, n, causal, pruned, block_keep, keep, rng, ready=0.7):
    """Run one head of block masks ``block_keep`` through a generator and compare its
    pairs and zero rows with the pair mask ``keep`` (zeros for a pruned head)."""
    rows_of_blocks = block_keep.shape[0]
    want_pairs = [(r, c, int(c == np.flatnonzero(keep[r]).max()))
                  for r in range(n) for c in np.flatnonzero(keep[r])]
    want_zero = [r for r in range(n) if not keep[r].any()]
    dut = PairGenerator(seq_max=cfg.seq_max, block_rows=cfg.block_rows,
                        block_cols=cfg.block_cols)
    got_pairs, got_zero = [], []

    async def host(ctx):
        ctx.set(dut.seq_len, n)
        ctx.set(dut.causal, int(causal))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for R in range(rows_of_blocks):        # masks come in, with gaps
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i_mask.payload, {"mask": sum(int(b) << c for c, b in
                                                    enumerate(block_keep[R])),
                                         "last_row": int(R == rows_of_blocks - 1)})
            ctx.set(dut.i_mask.valid, 1)
            await ctx.tick()
            ctx.set(dut.i_mask.valid, 0)
        assert ctx.get(dut.masks_done)
        ctx.set(dut.go, 1)
        ctx.set(dut.prune_head, int(pruned))
        await ctx.tick()
        ctx.set(dut.go, 0)
        # collect pairs and zero rows; each finished row's credit comes back a few
        # cycles later, as the output serializer's would
        credits = []                          # cycles until each finished row returns
        started, returned = set(), 0
        while len(got_pairs) < len(want_pairs) or len(got_zero) < len(want_zero):
            ctx.set(dut.o_pair.ready, int(rng.random() < ready))
            ctx.set(dut.o_zero_row.ready, int(rng.random() < ready))
            ctx.set(dut.row_done, int(bool(credits) and credits[0] == 0))
            returned += int(bool(credits) and credits[0] == 0)
            credits = [t - 1 for t in credits if t > 0]
            if ctx.get(dut.o_pair.valid) and ctx.get(dut.o_pair.ready):
                pair = ctx.get(dut.o_pair.payload)
                got_pairs.append((pair.row, pair.col, pair.last))
                started.add(pair.row)
                if pair.last:
                    credits.append(rng.randint(0, 6))
            if ctx.get(dut.o_zero_row.valid) and ctx.get(dut.o_zero_row.ready):
                got_zero.append(ctx.get(dut.o_zero_row.payload).row)
                started.add(got_zero[-1])
                credits.append(rng.randint(0, 6))
            assert len(started) - returned <= dut.rows_in_flight, "too many rows in flight"
            await ctx.tick()
        # nothing more comes
        for _ in range(20):
            assert not ctx.get(dut.o_pair.valid) and not ctx.get(dut.o_zero_row.valid)
            await ctx.tick()

    run_sim(dut, host, deadline_cycles=20_000)
    assert got_pairs == want_pairs
    assert got_zero == want_zero


# more than one 16-block search segment (the 256-block default has 16)
WIDE = {
    "1x1": _small(seq_max=40),
    "1x2": _small(seq_max=70, block_cols=2),
    "2x4": _small(seq_max=72, block_rows=2, block_cols=4),
}


def _edge_masks(count: int, width: int, rng: random.Random):
    """Block masks that stress the segmented search: kept blocks on both sides of each
    16-block segment boundary, one kept block a row, lone blocks in consecutive
    segments, full and empty rows, the last block, and random sparse rows."""
    fixed = [{15, 16}, {0}, {16}, {15}, {31, 32}, set(range(0, width, 16)), set(range(width)),
             set(), {width - 1}, {17}, set(range(15, width, 16)), {0, width - 1}, {32}, {1}]
    out = []
    for r in range(count):
        bits = fixed[r % len(fixed)] if r < 2 * len(fixed) else \
            {c for c in range(width) if rng.random() < 0.1}
        out.append([c in bits for c in range(width)])
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("name,causal,pruned,ready", [
    ("1x1", False, False, 0.7), ("1x1", True, False, 0.7), ("1x1", False, False, 1.0),
    ("1x1", False, False, 0.05), ("1x2", True, False, 0.7), ("1x2", False, False, 1.0),
    ("2x4", True, False, 0.7), ("2x4", False, False, 0.3), ("1x1", True, True, 0.7)])
def test_segment_edges(name, causal, pruned, ready):
    """Hand-made masks around the search segments' edges; ``ready`` 1.0 runs back to
    back (one pair a cycle, rows with one kept pair in a row), 0.05 holds the outputs
    for long stretches."""
    cfg = WIDE[name]
    rng = random.Random(name)
    n = cfg.seq_max - int(causal)          # one row short: the last block row is partial
    block_keep = _edge_masks(-(-n // cfg.block_rows), cfg.block_col_count, rng)
    keep = golden.expand_blocks(block_keep, n, cfg) & golden.valid_mask(n, causal)
    if pruned:
        keep = np.zeros_like(keep)
    _check(cfg, n, causal, pruned, block_keep, keep, rng, ready=ready)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("pair_generator", preset, simulator)
