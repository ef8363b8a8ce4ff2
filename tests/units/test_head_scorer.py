"""Head scorer: every S_int, block importance and the head importance against the golden
model, with back-pressure on the block stream, in amaranth.sim and as generated Verilog."""
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.head_scorer import HeadScorer
from cases import EDGE_AND_DEFAULT, run_unit_verilog
from rowbuf import WithRowBuffers
from unit_sim import recv_stream, run_sim

CONFIGS = {
    "edge": HDPConfig.preset("edge"),
    "br2-bc4": HDPConfig(seq_max=16, head_dim=8, block_rows=2, block_cols=4, int_lanes=2,
                         mac_lanes=2, axis_elems=2),
    "one-chunk": HDPConfig(seq_max=12, head_dim=4, block_rows=1, block_cols=2, int_lanes=4,
                           mac_lanes=4, axis_elems=4),
}
CASES = [("edge", 9, False), ("edge", 64, True), ("edge", 1, False), ("br2-bc4", 11, True),
         ("br2-bc4", 13, False), ("one-chunk", 7, True), ("one-chunk", 12, False)]


@pytest.mark.parametrize("name,n,causal", CASES, ids=[f"{c}-n{n}-{'causal' if k else 'full'}"
                                                       for c, n, k in CASES])
def test_scores_blocks_and_head_importance(name, n, causal):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(n)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    q, k = rng.integers(lo, hi, (2, n, cfg.head_dim))
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    valid = golden.valid_mask(n, causal)
    s_int = np.where(valid, golden.integer_scores(qi, ki), 0)
    bi, bvalid = golden.block_importance(s_int, valid, cfg)
    want_blocks = [(int(bi[R, C]), C, int(C == np.flatnonzero(bvalid[R]).max()),
                    int(R == bvalid.shape[0] - 1))
                   for R in range(bvalid.shape[0]) for C in np.flatnonzero(bvalid[R])]

    scorer = HeadScorer.from_config(cfg)
    dut = WithRowBuffers(scorer, cfg, {"q": q, "k": k})
    scores, blocks, result = {}, [], {}
    prng = random.Random(n)

    async def control(ctx):
        ctx.set(scorer.seq_len, n)
        ctx.set(scorer.causal, int(causal))
        ctx.set(scorer.start, 1)
        await ctx.tick()
        ctx.set(scorer.start, 0)
        await ctx.tick().until(scorer.hi_valid)
        result["hi"] = ctx.get(scorer.head_importance)

    async def monitor(ctx):
        async for _clk, _rst, valid, row, col, s in ctx.tick().sample(
                scorer.s_valid, scorer.s_row, scorer.s_col, scorer.s_int):
            if valid:
                assert (row, col) not in scores, "pair computed twice"
                scores[(row, col)] = s

    async def sink(ctx):
        got = await recv_stream(ctx, scorer.o_block, len(want_blocks), rng=prng, backpressure=0.5)
        blocks.extend((b.bi, b.col, b.last, b.last_row) for b in got)

    run_sim(dut, control, sink, extra=[monitor],
            deadline_cycles=n * n * cfg.head_dim // cfg.int_lanes * 2 + 2000)

    want_scores = {(r, c): int(s_int[r, c]) for r, c in zip(*np.nonzero(valid))}
    assert scores == want_scores
    assert blocks == want_blocks
    assert result.get("hi") == golden.head_importance(s_int, valid)


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("head_scorer", preset, simulator)
