"""Head scorer: every pair score (S_int, or S_sel with unbiased_selection), block importance
and the head importance against the golden model, with back-pressure on the block stream,
in amaranth.sim and as generated Verilog."""
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.head_scorer import HeadScorer
from cases import EDGE, EDGE_AND_DEFAULT, run_unit_verilog
from rowbuf import WithRowBuffers
from unit_sim import recv_stream, run_sim

CONFIGS = {
    "edge": HDPConfig.preset("edge"),
    "br2-bc4": HDPConfig(seq_max=16, head_dim=8, block_rows=2, block_cols=4, int_lanes=2,
                         mac_lanes=2, axis_elems=2),
    "one-chunk": HDPConfig(seq_max=12, head_dim=4, block_rows=1, block_cols=2, int_lanes=4,
                           mac_lanes=4, axis_elems=4),
    # one chunk, two registered sum levels; blocks taller than wide (a causal block's
    # first pair is then often on the diagonal, not in the block row's first row)
    "br4-bc2": HDPConfig(seq_max=16, head_dim=16, block_rows=4, block_cols=2, int_lanes=16,
                         mac_lanes=4, axis_elems=4),
    # one pair a block and a pair a cycle: a block's next row reads its earlier rows'
    # max the cycle after (or the same cycle as) it was written (forwarded)
    "br2-bc1": HDPConfig(seq_max=8, head_dim=4, block_rows=2, block_cols=1, int_lanes=4,
                         mac_lanes=4, axis_elems=4),
    # rows of 2 row-buffer words of 2 chunks each: a pair reads its second words halfway
    "words2-chunks2": HDPConfig(seq_max=12, head_dim=8, block_cols=2, int_lanes=2,
                                mac_lanes=4, axis_elems=2),
    # S_int (unbiased_selection off; the configs above score S_sel), and S_sel at I = 2,
    # its narrowest: 2qi+1 in -3..3
    "edge-biased": HDPConfig.preset("edge").replace(unbiased_selection=False),
    "br2-bc4-biased": HDPConfig(seq_max=16, head_dim=8, block_rows=2, block_cols=4, int_lanes=2,
                                mac_lanes=2, axis_elems=2, unbiased_selection=False),
    "one-chunk-i2": HDPConfig(seq_max=12, head_dim=4, block_rows=1, block_cols=2, int_lanes=4,
                              mac_lanes=4, axis_elems=4, int_bits=2),
}
# (config, n, causal, back-pressure on o_block)
CASES = [("edge", 9, False, 0.5), ("edge", 64, True, 0.5), ("edge", 1, False, 0.5),
         ("br2-bc4", 11, True, 0.5), ("br2-bc4", 13, False, 0.5), ("one-chunk", 7, True, 0.5),
         ("one-chunk", 12, False, 0.5), ("one-chunk", 12, True, 0.0),
         ("one-chunk", 12, True, 0.9), ("br4-bc2", 13, True, 0.5), ("br4-bc2", 16, False, 0.9),
         ("br4-bc2", 16, True, 0.0), ("br2-bc1", 8, True, 0.0), ("br2-bc1", 7, False, 0.5),
         ("br2-bc1", 3, True, 0.0),   # (seed 3: the forwarding of the same cycle matters)
         ("words2-chunks2", 11, True, 0.5), ("words2-chunks2", 12, False, 0.9),
         ("edge-biased", 23, True, 0.5), ("br2-bc4-biased", 13, False, 0.5),
         ("one-chunk-i2", 12, False, 0.5)]


@pytest.mark.parametrize("name,n,causal,bp", CASES,
                         ids=[f"{c}-n{n}-{'causal' if k else 'full'}-bp{bp}"
                              for c, n, k, bp in CASES])
def test_scores_blocks_and_head_importance(name, n, causal, bp):
    check_heads(CONFIGS[name], [(n, causal)], bp=bp, seed=n)


def test_heads_one_after_another():
    """A head leaves its block importances behind: the next head's must not see them
    (a causal block whose first pair is on the diagonal, below its block row's first
    row, starts afresh too)."""
    check_heads(CONFIGS["br4-bc2"], [(16, False), (13, True), (16, True)], bp=0.3, seed=3)


@pytest.mark.parametrize("name,n,causal,q_gap", [
    ("one-chunk", 12, True, 3), ("one-chunk", 12, False, 20), ("br2-bc1", 8, True, 1),
    ("edge", 20, True, 25), ("words2-chunks2", 12, False, 9)])
def test_q_arrives_while_the_loop_runs(name, n, causal, q_gap):
    """The loop reads Q row r only once it is in (q_rows > r) and waits for it: Q's rows
    trickle in (causal rows near the top are shorter than the gap), results unchanged."""
    check_heads(CONFIGS[name], [(n, causal)], bp=0.3, seed=n + q_gap, q_gap=q_gap)


def expected(cfg, q, k, n, causal):
    """The golden model's scores, blocks and head importance of the first n rows."""
    qi, _ = golden.split(q[:n], cfg)
    ki, _ = golden.split(k[:n], cfg)
    valid = golden.valid_mask(n, causal)
    s_int = np.where(valid, golden.selection_scores(qi, ki, cfg), 0)
    bi, bvalid = golden.block_importance(s_int, valid, cfg)
    blocks = [(int(bi[R, C]), C, int(C == np.flatnonzero(bvalid[R]).max()),
               int(R == bvalid.shape[0] - 1))
              for R in range(bvalid.shape[0]) for C in np.flatnonzero(bvalid[R])]
    scores = {(r, c): int(s_int[r, c]) for r, c in zip(*np.nonzero(valid))}
    return scores, blocks, golden.head_importance(s_int, valid)


def check_heads(cfg, heads, *, bp, seed, q_gap=0, active=None):
    """Run ``heads`` ((n, causal) each, on the first n rows of the same Q and K) one
    after another, with back-pressure ``bp`` on ``o_block``; check every S_int, block
    and head importance, and the throughput. With ``q_gap``, Q's rows come in one every
    ``q_gap`` cycles after the start (row 0 is in at start), and no row of Q may be read
    before it is in. With ``active`` (configs with ``channel_pruning``), a pair runs
    that many chunks (``last_chunk_at``): the results are those of Q and K cut to the
    first ``active * int_lanes`` channels, one pair every ``active`` cycles."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    rows = max(n for n, _ in heads)
    q, k = rng.integers(lo, hi, (2, rows, cfg.head_dim))
    kept = cfg.head_dim if active is None else active * cfg.int_lanes
    want = [expected(cfg, q[:, :kept], k[:, :kept], n, causal) for n, causal in heads]

    scorer = HeadScorer.from_config(cfg)
    assert active is None or scorer.channel_skip
    dut = WithRowBuffers(scorer, cfg, {"q": q, "k": k})
    got = [({}, [], {}, []) for _ in heads]    # scores, blocks, result, pulses
    head = [0]
    prng = random.Random(seed)

    async def control(ctx):
        for h, (n, causal) in enumerate(heads):
            head[0] = h
            ctx.set(scorer.seq_len, n)
            ctx.set(scorer.causal, int(causal))
            ctx.set(scorer.q_rows, 1 if q_gap else cfg.seq_max)
            if active is not None:
                ctx.set(scorer.last_chunk_at, active - 1)
            ctx.set(scorer.start, 1)
            await ctx.tick()
            ctx.set(scorer.start, 0)
            for r in range(2, n + 1 if q_gap else 0):     # Q row r - 1 comes in
                await ctx.tick().repeat(q_gap)
                ctx.set(scorer.q_rows, r)
            await ctx.tick().until(scorer.hi_valid)
            got[h][2]["hi"] = ctx.get(scorer.head_importance)

    async def q_reads(ctx):
        async for _clk, _rst, en, addr, avail in ctx.tick().sample(
                scorer.q_rd.en, scorer.q_rd.addr, scorer.q_rows):
            row = addr // cfg.row_words               # (a word address)
            assert not en or row < avail, f"Q row {row} read with {avail} rows in"

    async def monitor(ctx):
        cycle = 0
        async for _clk, _rst, valid, row, col, s in ctx.tick().sample(
                scorer.s_valid, scorer.s_row, scorer.s_col, scorer.s_int):
            cycle += 1
            if valid:
                scores, pulses = got[head[0]][0], got[head[0]][3]
                assert (row, col) not in scores, "pair computed twice"
                scores[(row, col)] = s
                pulses.append((cycle, row, col))

    async def sink(ctx):
        for h, (_, blocks, _) in enumerate(want):
            payloads = await recv_stream(ctx, scorer.o_block, len(blocks), rng=prng,
                                         backpressure=bp)
            got[h][1].extend((b.bi, b.col, b.last, b.last_row) for b in payloads)

    run_sim(dut, control, sink, extra=[monitor, q_reads],
            deadline_cycles=sum(n * n for n, _ in heads) * cfg.head_dim // cfg.int_lanes * 2
            + 2000 * len(heads))

    chunks = cfg.head_dim // cfg.int_lanes if active is None else active
    for (n, causal), (scores, blocks, hi_want), (g_scores, g_blocks, result, pulses) in zip(
            heads, want, got):
        assert g_scores == scores
        assert g_blocks == blocks
        assert result.get("hi") == hi_want
        if q_gap:
            continue              # rows wait for Q: the throughput is Q's
        # throughput: one pair every head_dim / int_lanes cycles; only a pair that
        # completes a block to be sent (in its block row's last row) may wait, for a
        # place in the output queue, and only while o_block is stalled
        bc, br = cfg.block_cols, cfg.block_rows
        for (t0, _, _), (t1, r, c) in zip(pulses, pulses[1:]):
            sends = (c % bc == bc - 1 or c == (r if causal else n - 1)) and (
                r == n - 1 or r % br == br - 1)
            assert t1 - t0 == chunks or (bp > 0 and sends and t1 - t0 > chunks), (
                r, c, t1 - t0)


#: (config, n, causal, back-pressure, active chunks): the channel mask's skipping
SKIP_CASES = [("edge", 20, True, 0.0, 1), ("edge", 13, False, 0.5, 5),
              ("br2-bc4", 13, True, 0.5, 1), ("br2-bc4", 11, False, 0.0, 3),
              ("words2-chunks2", 11, False, 0.5, 3), ("edge-biased", 13, False, 0.5, 5)]


@pytest.mark.parametrize("name,n,causal,bp,active", SKIP_CASES,
                         ids=[f"{c}-n{n}-{'causal' if k else 'full'}-bp{bp}-a{a}"
                              for c, n, k, bp, a in SKIP_CASES])
def test_channel_skip_runs_active_chunks(name, n, causal, bp, active):
    """With ``channel_pruning``, ``last_chunk_at = a - 1``: one pair every a cycles (not
    head_dim / int_lanes), no bubble without back-pressure (``queue_depth`` covers pairs
    of one chunk), every S_int, block and the head importance those of the first a
    chunks' channels; two heads in a row, the second on all chunks again."""
    cfg = CONFIGS[name].replace(channel_pruning=True)
    check_heads(cfg, [(n, causal)], bp=bp, seed=n + active, active=active)
    chunks = cfg.head_dim // cfg.int_lanes
    check_heads(cfg, [(n, causal), (n, not causal)], bp=bp, seed=n, active=chunks)


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("head_scorer", preset, simulator)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog_biased(preset, simulator):
    """The presets score S_sel (``unbiased_selection``); ``edge``'s head scorer with
    S_int instead, on both simulators."""
    run_unit_verilog("head_scorer", preset, simulator, unbiased_selection=False)
