"""MAC array: scores (approximation on and off) and P x V rows bit-exact to the golden
model with both streams interleaved and stalled, in amaranth.sim and as generated Verilog;
the rotating accumulators through a reset; and the pipelining. Each with the
accumulators in flip-flops and in block RAM (``pv_acc_ram``, the ``-accram`` configs)."""
import random

import numpy as np
import pytest
from amaranth.hdl import ResetInserter, Signal

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.generate import build_unit
from hdp_rtl.rtl.mac_array import ROW_LATENCY, MacArray, score_latency
from cases import EDGE_AND_DEFAULT, run_unit_verilog
from sim.runner import SIMULATORS, design_key, run_cocotb
from rowbuf import WithRowBuffers
from unit_sim import recv_rows, recv_stream, run_sim, send_stream

CONFIGS = {
    "edge": HDPConfig.preset("edge"),
    "default": HDPConfig.preset("default"),
    "narrow-out": HDPConfig(seq_max=16, head_dim=8, int_lanes=8, mac_lanes=8, axis_elems=8,
                            out_bits=6, out_frac=4),
    "no-frac": HDPConfig(seq_max=16, head_dim=8, frac_bits=0, int_bits=6, int_lanes=2,
                         mac_lanes=2, axis_elems=2, out_frac=8),
    # two chunks: the ring's stage after the tail is its head
    "two-chunks": HDPConfig(seq_max=16, head_dim=8, int_lanes=4, mac_lanes=4, axis_elems=4),
    # rows of 2 row-buffer words of 2 chunks each: an operation reads its second words
    # halfway through
    "words2-chunks2": HDPConfig(seq_max=16, head_dim=8, int_lanes=4, mac_lanes=2,
                                axis_elems=2),
    # the accumulators in block RAM: edge (8 chunks), and 4 chunks, the fewest allowed
    # (a word is read again 4 cycles after its last read, a cycle after its write-back),
    # on rows of 2 row-buffer words
    # (and the approximation unit, which no preset builds: its Verilog on both simulators)
    "edge-accram": HDPConfig.preset("edge").replace(pv_acc_ram=True, approximation=True),
    "accram-chunks4": HDPConfig(seq_max=16, head_dim=16, int_lanes=8, mac_lanes=4,
                                axis_elems=4, pv_acc_ram=True),
    # one place for output rows downstream: a row's last probability waits for the row
    # before it to be freed
    "edge-1row": HDPConfig.preset("edge").replace(out_row_buffers=1),
    # more than 16 lanes: three registered sum stages (sum_levels), as the wide preset;
    # one chunk, and two (the running sum of a score's chunks after the third stage)
    "lanes64": HDPConfig(seq_max=16, head_dim=64, int_lanes=64, mac_lanes=64, axis_elems=8),
    "lanes32-chunks2": HDPConfig(seq_max=16, head_dim=64, int_lanes=32, mac_lanes=32,
                                 axis_elems=8),
}


def _set_approx(ctx, mac, approx: bool):
    """``approx_enable`` of a build with the approximation unit (the others have none
    and are exact)."""
    if mac.approximation:
        ctx.set(mac.approx_enable, int(approx))


def _case(cfg, n, seed):
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    q, k, v = rng.integers(lo, hi, (3, n, cfg.head_dim))
    keep = rng.random((n, n)) < 0.5
    keep[np.arange(n), rng.integers(0, n, n)] = True        # every row keeps a pair
    # probabilities: random rows summing to about 2**prob_bits, some saturating
    p = np.where(keep, rng.integers(0, 1 << cfg.prob_bits, (n, n)), 0)
    p = (p * (1 << cfg.prob_bits) // np.maximum(p.sum(axis=1, keepdims=True), 1))
    p[0] = np.where(keep[0], 1 << cfg.prob_bits, 0)         # extreme: sums far above one
    return q, k, v, keep, p


@pytest.mark.parametrize("approx", [True, False], ids=["approx", "exact"])
@pytest.mark.parametrize("name", CONFIGS)
def test_scores_and_pv_match_golden(name, approx):
    """``approx``: the build with the approximation unit, switched on; ``exact``: the
    build without it (the presets')."""
    cfg = CONFIGS[name].replace(approximation=approx)
    n = min(cfg.seq_max, 7)
    q, k, v, keep, p = _case(cfg, n, seed=len(name) + approx)
    want_s = golden.full_scores(q, k, cfg, approx)
    want_out = golden.pv_output(p, v, cfg)
    mac = MacArray.from_config(cfg)
    dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
    rng = random.Random(name)
    pairs = [{"row": r, "col": c, "last": int(c == np.flatnonzero(keep[r])[-1])}
             for r in range(n) for c in np.flatnonzero(keep[r])]
    probs = [{"prob": int(p[r, c]), "col": c, "last": int(c == np.flatnonzero(keep[r])[-1])}
             for r in range(n) for c in np.flatnonzero(keep[r])]
    got_s, got_out = [], []

    async def set_regs(ctx):
        _set_approx(ctx, mac, approx)
        await send_stream(ctx, mac.i_pair, pairs, rng=rng, idle=0.3)

    async def pv(ctx):
        await send_stream(ctx, mac.i_prob, probs, rng=random.Random(1), idle=0.3)

    async def scores(ctx):
        got_s.extend(await recv_stream(ctx, mac.o_score, len(pairs), rng=random.Random(2),
                                       backpressure=0.3))

    async def outs(ctx):
        got_out.extend(await recv_rows(ctx, mac, n, rng=random.Random(3), hold=0.5))

    run_sim(dut, set_regs, pv, scores, outs,
            deadline_cycles=len(pairs) * 4 * cfg.head_dim // cfg.mac_lanes + 2000)
    assert [(g.score, g.col, g.last) for g in got_s] == \
        [(int(want_s[x["row"], x["col"]]), x["col"], x["last"]) for x in pairs]
    assert got_out == want_out.tolist()


@pytest.mark.parametrize("name", ["edge", "lanes64"])
def test_pairs_back_to_back_take_one_chunk_per_cycle(name):
    """Without stalls, N pairs take N * head_dim / mac_lanes cycles (plus the fill): the
    score credits cover the deeper sum pipeline of 64 lanes too (a pair a cycle)."""
    cfg = CONFIGS[name]
    n = 16
    q, k, v, _, _ = _case(cfg, n, seed=5)
    mac = MacArray.from_config(cfg)
    dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
    pairs = [{"row": r, "col": c, "last": int(c == n - 1)} for r in range(4) for c in range(n)]
    result = {}

    async def bench(ctx):
        ctx.set(mac.o_score.ready, 1)
        ctx.set(mac.i_pair.valid, 1)
        busy = 0
        received = 0
        for cycle in range(10 * len(pairs) * cfg.head_dim // cfg.mac_lanes):
            index = min(received, len(pairs) - 1)
            ctx.set(mac.i_pair.payload, pairs[index])
            ctx.set(mac.i_pair.valid, int(received < len(pairs)))
            _, _, ready, valid, working = await ctx.tick().sample(
                mac.i_pair.ready, mac.i_pair.valid, mac.busy_mac)
            busy += working
            received += ready and valid
            if received == len(pairs) and not working and cycle > 2:
                break
        result["busy"], result["cycles"] = busy, cycle

    run_sim(dut, bench)
    ideal = len(pairs) * cfg.head_dim // cfg.mac_lanes
    assert result["busy"] == ideal
    assert result["cycles"] <= ideal + 3


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("mac_array", preset, simulator)


@pytest.mark.parametrize("name,simulator", [
    pytest.param(name, s, id=f"{name}-{s}", marks=pytest.mark.sim)
    for name, sims in (("edge-accram", SIMULATORS), ("accram-chunks4", ["icarus"]),
                       ("lanes64", ["verilator"]))
    for s in sims])
def test_verilog_configs(name, simulator):
    """The generated Verilog of configs that are no preset (``run_unit_verilog`` takes a
    preset's name): the accumulators in block RAM; 64 lanes (three sum stages)."""
    cfg = CONFIGS[name]
    run_cocotb(component=lambda: build_unit("mac_array", cfg), toplevel="hdp_mac_array",
               test_module="cocotb_mac_array", simulator=simulator, name=f"mac_array-{name}",
               env={"HDP_CONFIG": cfg.to_dict()}, quick_build=True,
               key=design_key("mac_array", cfg))


def _golden_bench(cfg, n, seed, approx=True):
    """The DUT on row buffers, its pairs and probabilities, and the golden results."""
    q, k, v, keep, p = _case(cfg, n, seed=seed)
    mac = MacArray.from_config(cfg)
    dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
    cols = [np.flatnonzero(keep[r]) for r in range(n)]
    pairs = [{"row": r, "col": int(c), "last": int(c == cols[r][-1])}
             for r in range(n) for c in cols[r]]
    probs = [{"prob": int(p[r, c]), "col": int(c), "last": int(c == cols[r][-1])}
             for r in range(n) for c in cols[r]]
    approx = approx and mac.approximation
    want_s = [(int(golden.full_scores(q, k, cfg, approx)[x["row"], x["col"]]), x["col"],
               x["last"]) for x in pairs]
    return mac, dut, pairs, probs, want_s, golden.pv_output(p, v, cfg).tolist()


@pytest.mark.parametrize("name", ["edge", "narrow-out", "edge-1row"])
def test_full_outputs_stop_the_issue_not_the_pipeline(name):
    """With both outputs held full, the array takes exactly ``score_depth`` pairs and
    ``out_row_buffers`` rows' last probabilities (other probabilities go on), then
    everything comes out bit-exact once the outputs drain."""
    cfg = CONFIGS[name]
    n = 6
    mac, dut, pairs, probs, want_s, want_out = _golden_bench(cfg, n, seed=11)
    hold = 40 * cfg.head_dim // cfg.mac_lanes
    got_s, got_out, seen = [], [], {}

    async def feed(ctx):
        _set_approx(ctx, mac, True)
        await send_stream(ctx, mac.i_pair, pairs, rng=random.Random(0))

    async def pv(ctx):
        await send_stream(ctx, mac.i_prob, probs, rng=random.Random(0))

    async def monitor(ctx):
        n_pairs = n_rows = n_probs = 0
        for _ in range(hold):
            _, _, pr, pv_, br, bv, last = await ctx.tick().sample(
                mac.i_pair.ready, mac.i_pair.valid, mac.i_prob.ready, mac.i_prob.valid,
                mac.i_prob.payload.last)
            n_pairs += pr and pv_
            n_probs += br and bv
            n_rows += br and bv and last
        seen.update(pairs=n_pairs, rows=n_rows, probs=n_probs)

    async def scores(ctx):
        await ctx.tick().repeat(hold)
        got_s.extend(await recv_stream(ctx, mac.o_score, len(pairs), rng=random.Random(2),
                                       backpressure=0.3))

    async def outs(ctx):
        got_out.extend(await recv_rows(ctx, mac, n, rng=random.Random(3), hold=0.5,
                                       hold_first=hold))

    run_sim(dut, feed, pv, monitor, scores, outs, deadline_cycles=50 * hold)
    assert seen["pairs"] == mac.score_depth
    places = cfg.out_row_buffers
    assert seen["rows"] == places
    row_ends = [i for i, x in enumerate(probs) if x["last"]]
    assert seen["probs"] == row_ends[places]     # the next row's all but its last
    assert [(g.score, g.col, g.last) for g in got_s] == want_s
    assert got_out == want_out


@pytest.mark.parametrize("rows_of", ["one", "enough"])
@pytest.mark.parametrize("name", ["edge", "edge-1row", "edge-accram", "accram-chunks4"])
def test_rows_back_to_back(name, rows_of):
    """P x V alone, each row freed the cycle after its last chunk: rows of enough kept
    pairs keep the lanes busy (at least head_dim / mac_lanes + ROW_LATENCY + 1 cycles of
    operations: edge 2 of 8 chunks, chunks4 3 of 4); a row's last probability waits
    for a place, which comes back head_dim / mac_lanes + ROW_LATENCY + 1 cycles after
    the one taken out_row_buffers rows before: with one place, rows of one pair are that
    far apart. The rows bit-exact (with the accumulators in block RAM: each word read
    again as soon as back-to-back operations allow, and every operation or every few
    starts a row)."""
    cfg = CONFIGS[name]
    n = 8
    q, k, v, _, _ = _case(cfg, n, seed=5)
    mac = MacArray.from_config(cfg)
    dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
    chunks = cfg.head_dim // cfg.mac_lanes
    per_row = 1 if rows_of == "one" else -(-(chunks + ROW_LATENCY + 1) // chunks)
    p = np.zeros((n, n), dtype=np.int64)
    p[:, :per_row] = np.random.default_rng(per_row).integers(
        0, 1 << cfg.prob_bits, (n, per_row))
    p[0, :per_row] = 1 << cfg.prob_bits          # the largest sums
    probs = [{"prob": int(p[r, c]), "col": c, "last": int(c == per_row - 1)}
             for r in range(n) for c in range(per_row)]
    result = {}

    async def bench(ctx):
        busy = taken = 0
        starts, got, row = [], [], []
        free = False
        for cycle in range(20 * len(probs) * chunks):
            ctx.set(mac.i_prob.payload, probs[min(taken, len(probs) - 1)])
            ctx.set(mac.i_prob.valid, int(taken < len(probs)))
            ctx.set(mac.i_row_free, int(free))
            _, _, ready, valid, working, out, chunk = await ctx.tick().sample(
                mac.i_prob.ready, mac.i_prob.valid, mac.busy_mac, mac.o_chunk.valid,
                mac.o_chunk.payload)
            busy += working
            if ready and valid:
                taken += 1
                starts.append(cycle)
            free = bool(out and chunk.last)
            if out:
                row.extend(int(x) for x in chunk.out)
            if free:
                got.append(row)
                row = []
            if len(got) == n:
                break
        result.update(busy=busy, starts=starts, got=got)

    run_sim(dut, bench)
    assert result["got"] == golden.pv_output(p, v, cfg).tolist()
    assert result["busy"] == len(probs) * chunks
    starts, places = result["starts"], cfg.out_row_buffers
    gaps = set(b - a for a, b in zip(starts, starts[1:]))
    round_trip = chunks + ROW_LATENCY + 1     # a place taken to the place usable again
    if rows_of == "one" and places == 1:
        assert gaps == {round_trip}
    elif rows_of == "one":
        assert min(gaps) == chunks
        spans = [b - a for a, b in zip(starts, starts[places:])]
        assert min(spans) >= round_trip, "a row's last probability taken without a place"
        assert max(spans) == max(round_trip, places * chunks)
    else:
        assert gaps == {chunks}


@pytest.mark.parametrize("name", ["edge", "two-chunks", "narrow-out", "edge-accram",
                                  "accram-chunks4"])
def test_reset_mid_row_restarts_the_accumulators(name):
    """A reset while a row's sums are in the rotating accumulators (part of its
    probabilities taken, an operation in flight): the rows after it come out bit-exact,
    starting from half an output step as after power-up (edge: 8 chunks; two: the stage
    after the ring's tail is its head; narrow-out: 1 chunk, the tail is the head;
    accram: in block RAM, which the reset leaves as it was)."""
    cfg = CONFIGS[name]
    n = 5
    q, k, v, keep, p = _case(cfg, n, seed=13)
    keep[0] = True          # row 0: every column, the largest probabilities
    p[0] = (1 << cfg.prob_bits) - 1
    rst = Signal()
    mac = MacArray.from_config(cfg)
    dut = ResetInserter({"sync": rst})(WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v}))
    cols = [np.flatnonzero(keep[r]) for r in range(n)]
    probs = [{"prob": int(p[r, c]), "col": int(c), "last": int(c == cols[r][-1])}
             for r in range(n) for c in cols[r]]
    first, rest = probs[:n - 2], probs[len(cols[0]):]     # row 0 cut short, rows 1 ..
    want = golden.pv_output(p, v, cfg).tolist()[1:]
    got = []

    async def bench(ctx):
        await send_stream(ctx, mac.i_prob, first, rng=random.Random(0))
        await ctx.tick()                # the last operation taken is in the pipeline
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        await send_stream(ctx, mac.i_prob, rest, rng=random.Random(1), idle=0.2)

    async def outs(ctx):
        got.extend(await recv_rows(ctx, mac, n - 1, rng=random.Random(2), hold=0.3))

    run_sim(dut, bench, outs, deadline_cycles=len(probs) * 8 * cfg.head_dim // cfg.mac_lanes
            + 2000)
    assert got == want



# ---- the channel mask: scores on the first chunks only (HDPConfig.channel_pruning) ------
SKIP_CONFIGS = {
    "default": HDPConfig.preset("default"),                           # 4 chunks, 1 word
    "words2-chunks2": CONFIGS["words2-chunks2"],                      # 4 chunks, 2 words
    "edge-channels": HDPConfig.preset("edge").replace(channel_pruning=True),  # 16, 16
}


def _skip_cases():
    for name, cfg in SKIP_CONFIGS.items():
        chunks = cfg.head_dim // cfg.mac_lanes
        for active in sorted({1, 2, chunks // 2 + 1, chunks}):
            yield name, active


@pytest.mark.parametrize("name,active", list(_skip_cases()))
def test_channel_skip_scores_take_active_chunks(name, active):
    """With ``score_last_chunk = a - 1`` a score runs a chunks: pairs back to back give
    a score every a cycles exactly (one a cycle for a = 1: ``score_depth`` covers it),
    the lanes busy a cycles a pair, and the scores are those of Q and K cut to the
    first a * mac_lanes channels, bit for bit."""
    cfg = SKIP_CONFIGS[name]
    assert cfg.channel_pruning
    n = 12
    q, k, v, _, _ = _case(cfg, n, seed=active)
    mac = MacArray.from_config(cfg)
    latency = score_latency(cfg.mac_lanes)
    assert mac.channel_skip and mac.score_depth == 2 + latency + 1
    dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
    pairs = [{"row": r, "col": c, "last": int(c == n - 1)} for r in range(3) for c in range(n)]
    got = []
    result = {}

    async def bench(ctx):
        _set_approx(ctx, mac, True)
        ctx.set(mac.score_last_chunk, active - 1)
        ctx.set(mac.o_score.ready, 1)
        busy = received = 0
        for cycle in range(4 * len(pairs) * cfg.head_dim // cfg.mac_lanes + 50):
            ctx.set(mac.i_pair.payload, pairs[min(received, len(pairs) - 1)])
            ctx.set(mac.i_pair.valid, int(received < len(pairs)))
            _, _, ready, valid, working, s_valid, score = await ctx.tick().sample(
                mac.i_pair.ready, mac.i_pair.valid, mac.busy_mac, mac.o_score.valid,
                mac.o_score.payload.score)
            busy += working
            received += ready and valid
            if s_valid:
                got.append((cycle, score))
            if len(got) == len(pairs):
                break
        result["busy"] = busy

    run_sim(dut, bench)
    kept = active * cfg.mac_lanes
    want = golden.full_scores(q[:, :kept], k[:, :kept], cfg, mac.approximation)
    assert [s for _, s in got] == [int(want[p["row"], p["col"]]) for p in pairs]
    assert result["busy"] == len(pairs) * active
    gaps = {b - a for (a, _), (b, _) in zip(got, got[1:])}
    assert gaps == {active}, gaps
    # the first score: issued at once, score_latency cycles after its last chunk
    assert got[0][0] <= active + latency + 2


@pytest.mark.parametrize("approx", [True, False], ids=["approx", "exact"])
@pytest.mark.parametrize("name", ["words2-chunks2", "edge-channels"])
def test_channel_skip_with_pv_and_stalls(name, approx):
    """Scores on 1 and 3 chunks interleaved with P x V (every chunk) under random stalls
    on every stream: scores of the cut channels, outputs of all of V, bit for bit;
    with the approximation unit built, switched on and off."""
    cfg = SKIP_CONFIGS[name].replace(approximation=True)
    for active in (1, 3):
        n = 7
        q, k, v, keep, p = _case(cfg, n, seed=active + 10 * approx)
        kept = active * cfg.mac_lanes
        want_s = golden.full_scores(q[:, :kept], k[:, :kept], cfg, approx)
        want_out = golden.pv_output(p, v, cfg)
        mac = MacArray.from_config(cfg)
        dut = WithRowBuffers(mac, cfg, {"q": q, "k": k, "v": v})
        rng = random.Random(active)
        rows = [np.flatnonzero(keep[r]) for r in range(n)]
        pairs = [{"row": r, "col": c, "last": int(c == rows[r][-1])}
                 for r in range(n) for c in rows[r]]
        probs = [{"prob": int(p[r, c]), "col": c, "last": int(c == rows[r][-1])}
                 for r in range(n) for c in rows[r]]
        got_s, got_out = [], []

        async def feed(ctx):
            _set_approx(ctx, mac, approx)
            ctx.set(mac.score_last_chunk, active - 1)
            await send_stream(ctx, mac.i_pair, pairs, rng=rng, idle=0.3)

        async def pv(ctx):
            await send_stream(ctx, mac.i_prob, probs, rng=random.Random(1), idle=0.3)

        async def scores(ctx):
            got_s.extend(await recv_stream(ctx, mac.o_score, len(pairs),
                                           rng=random.Random(2), backpressure=0.3))

        async def outs(ctx):
            got_out.extend(await recv_rows(ctx, mac, n, rng=random.Random(3), hold=0.5))

        run_sim(dut, feed, pv, scores, outs, deadline_cycles=len(pairs) * 4 * cfg.head_dim
                // cfg.mac_lanes + 2000)
        assert [g.score for g in got_s] == [int(want_s[x["row"], x["col"]]) for x in pairs]
        assert got_out == want_out.tolist()
