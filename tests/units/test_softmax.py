"""Softmax unit: probabilities, row sums and row maxima bit-exact to golden.softmax_rows,
rows back to back, with random idle and back-pressure, in amaranth.sim and as generated
Verilog."""
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.softmax import Softmax
from cases import EDGE_AND_DEFAULT, run_unit_verilog
from unit_sim import recv_stream, run_sim, send_stream

CONFIGS = {"edge": HDPConfig.preset("edge"), "default": HDPConfig.preset("default"),
           # seq_max not a power of two: each bank is still 2**seq_bits deep
           "seq5": HDPConfig(seq_max=5, head_dim=8, int_lanes=2, mac_lanes=2, axis_elems=8,
                             exp_bits=12, prob_bits=8, recip_guard_bits=8),
           # no guard bits: the row maximum is the reciprocal itself
           "guard0": HDPConfig(seq_max=5, head_dim=8, int_lanes=2, mac_lanes=2, axis_elems=8,
                               exp_bits=12, prob_bits=8, recip_guard_bits=0)}


def _rows(cfg, rng: random.Random, count: int):
    lo, hi = -(1 << (cfg.score_bits - 1)), (1 << (cfg.score_bits - 1)) - 1
    rows = []
    for i in range(count):
        k = min(cfg.seq_max, [1, 2, cfg.seq_max, rng.randint(1, 20)][i % 4])
        spread = [8, 300, 5000, hi][i % 4]
        base = rng.randint(lo + spread, hi - spread)
        if i % 5 == 4:
            rows.append([base] * k)                       # all equal
        else:
            rows.append([base + rng.randint(-spread, spread) for _ in range(k)])
    return rows


def _golden(cfg, rows, scale):
    probs, sums = [], []
    for r in rows:
        s = np.array([r], dtype=np.int64)
        p, _, total = golden.softmax_rows(s, np.ones_like(s, dtype=bool), cfg, scale)
        probs.append([int(x) for x in p[0]])
        sums.append(int(total[0]))
    return probs, sums


@pytest.mark.parametrize("preset", CONFIGS)
@pytest.mark.parametrize("scale", ["typical", "large", "one"])
def test_rows_match_golden(preset, scale):
    cfg = CONFIGS[preset]
    rng = random.Random(f"{preset}{scale}")
    value = {"typical": 23637, "large": (1 << cfg.score_scale_bits) - 1, "one": 1}[scale]
    rows = _rows(cfg, rng, 8)
    want_p, want_sums = _golden(cfg, rows, value)
    dut = Softmax.from_config(cfg)
    got, sums, maxima, first_out = [], [], [], []

    async def source(ctx):
        ctx.set(dut.score_scale, value)
        beats = [{"score": s, "col": c * 3 % cfg.seq_max, "last": int(c == len(r) - 1)}
                 for r in rows for c, s in enumerate(r)]
        await send_stream(ctx, dut.i_score, beats, rng=rng, idle=0.3)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, dut.o_prob, sum(map(len, rows)), rng=rng,
                                     backpressure=0.3))

    async def monitor(ctx):
        taken = 0
        async for _c, _r, valid, total, mvalid, mx, pv, pr, plast in ctx.tick().sample(
                dut.row_sum_valid, dut.row_sum, dut.row_max_valid, dut.row_max,
                dut.o_prob.valid, dut.o_prob.ready, dut.o_prob.payload.last):
            if valid:
                sums.append(total)
            if mvalid:       # (with how many rows had left: the maximum comes first)
                maxima.append(mx)
                first_out.append(taken)
            taken += pv and pr and plast

    run_sim(dut, source, sink, extra=[monitor], deadline_cycles=40_000)
    flat = [(p, c * 3 % cfg.seq_max, int(c == len(r) - 1))
            for r, ps in zip(rows, want_p) for c, p in enumerate(ps)]
    assert [(g.prob, g.col, g.last) for g in got] == flat
    assert sums == want_sums
    # the row's largest probability, as the softmax produces it, before the row leaves
    assert maxima == [max(ps) for ps in want_p]
    assert all(left <= i for i, left in enumerate(first_out))


@pytest.mark.parametrize("preset,simulator", EDGE_AND_DEFAULT)
def test_verilog(preset, simulator):
    run_unit_verilog("softmax", preset, simulator)


@pytest.mark.parametrize("preset", ["edge", "default"])
def test_long_backpressure_short_rows(preset):
    """Rows of mostly 1 to 3 pairs back to back with no input gaps while o_prob.ready is held
    low for long random stretches: the credited normalise pipeline and its output FIFO
    drop, duplicate or reorder nothing, and valid/payload hold while stalled."""
    cfg = CONFIGS[preset]
    rng = random.Random(f"bp{preset}")
    value = 23637
    lo, hi = -(1 << (cfg.score_bits - 1)), (1 << (cfg.score_bits - 1)) - 1
    rows = []
    for i in range(40):
        k = [1, 1, 2, 1, 3, 1, 12][i % 7]
        base = rng.randint(lo + 5000, hi - 5000)
        rows.append([base + rng.randint(-5000, 5000) for _ in range(k)])
    want_p, want_sums = _golden(cfg, rows, value)
    dut = Softmax.from_config(cfg)
    got, sums = [], []
    total = sum(map(len, rows))

    async def source(ctx):
        ctx.set(dut.score_scale, value)
        beats = [{"score": s, "col": c, "last": int(c == len(r) - 1)}
                 for r in rows for c, s in enumerate(r)]
        await send_stream(ctx, dut.i_score, beats, rng=rng, idle=0.0)

    async def sink(ctx):
        held = None
        while len(got) < total:
            stall = rng.choice([0, 0, 1, 3, 10, 40, 250])  # a stretch of ready low
            for _ in range(stall):
                ctx.set(dut.o_prob.ready, 0)
                await ctx.delay(1e-9)
                if held is not None:
                    assert ctx.get(dut.o_prob.valid) and ctx.get(dut.o_prob.payload) == held
                if ctx.get(dut.o_prob.valid):
                    held = ctx.get(dut.o_prob.payload)
                await ctx.tick()
            for _ in range(rng.randint(1, 6)):             # then a burst of ready high
                ctx.set(dut.o_prob.ready, 1)
                await ctx.delay(1e-9)
                valid, payload = ctx.get(dut.o_prob.valid), ctx.get(dut.o_prob.payload)
                if held is not None:
                    assert valid and payload == held
                held = None
                await ctx.tick()
                if valid:
                    got.append(payload)
                if len(got) == total:
                    break
        ctx.set(dut.o_prob.ready, 0)

    async def monitor(ctx):
        async for _c, _r, valid, s in ctx.tick().sample(dut.row_sum_valid, dut.row_sum):
            if valid:
                sums.append(s)

    run_sim(dut, source, sink, extra=[monitor], deadline_cycles=40_000)
    flat = [(p, c, int(c == len(r) - 1)) for r, ps in zip(rows, want_p) for c, p in enumerate(ps)]
    assert [(g.prob, g.col, g.last) for g in got] == flat
    assert sums == want_sums


@pytest.mark.parametrize("preset", ["edge", "default"])
@pytest.mark.parametrize("k", [1, 2, 5, 12, 20, 40])
def test_steady_state_throughput(preset, k):
    """Rows of ``k`` pairs back to back, no idle, no back-pressure: in steady state a row
    leaves every ``max(k + 1, divider cycles)`` cycles or better (the divider: one
    radix-2 step and ``ceil((recip_bits - 1) / 2)`` radix-4 steps; 12 at the default
    preset), not ``2k + 20`` as when one row's exponential pass, divider and normalise
    pass ran one after another; the first row's last probability leaves ``3k + divider +
    16`` cycles after its first score (``3k + 28`` at the default preset: one more than
    before the output FIFO was buffered, its registered output for the MAC array, and
    one more since the exponential product is registered twice)."""
    cfg = CONFIGS[preset]
    dut = Softmax.from_config(cfg)
    rows = 16
    ends = []          # the cycle of each row's last probability

    async def source(ctx):
        ctx.set(dut.score_scale, 23637)
        for r in range(rows):
            for c in range(k):
                ctx.set(dut.i_score.payload, {"score": (r * 37 + c * 11) % 500 - 250,
                                              "col": c, "last": int(c == k - 1)})
                ctx.set(dut.i_score.valid, 1)
                await ctx.tick().until(dut.i_score.ready)
        ctx.set(dut.i_score.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o_prob.ready, 1)
        cycle = seen = 0
        while seen < rows * k:
            await ctx.delay(1e-9)
            valid, last = ctx.get(dut.o_prob.valid), ctx.get(dut.o_prob.payload.last)
            await ctx.tick()
            cycle += 1
            if valid:
                seen += 1
                if last:
                    ends.append(cycle)

    run_sim(dut, source, sink, deadline_cycles=20_000)
    divider = -(-(dut.recip_bits - 1) // 2) + 1
    assert divider == {"edge": 10, "default": 12}[preset]
    assert ends[0] == 3 * k + divider + 16
    steady = ends[-1] - ends[3]                  # rows 4 .. 15
    per_row = max(k + 1, divider)
    assert steady <= (rows - 4) * per_row, (steady / (rows - 4), per_row)
    assert max(b - a for a, b in zip(ends[3:], ends[4:])) <= per_row


class _Products(Elaboratable):
    """The softmax's two products alone: ``z * score_scale`` (exact below the point where
    ``e`` is 0, flagged past it) and ``e * recip``, on free inputs."""

    def __init__(self, cfg):
        E, L = cfg.exp_bits, cfg.exp_lut_bits
        sh = cfg.score_scale_frac - L
        self.zero_at = (((((E + 1) << L) << 1) - 1) << (sh - 1)) if sh > 0 else \
            -(-((E + 1) << L) >> -sh)
        self.z = Signal(cfg.score_bits + 1)
        self.scale = Signal(cfg.score_scale_bits)
        self.e = Signal(E + 1)
        self.recip = Signal(cfg.recip_bits)

    def elaborate(self, platform):
        m = Module()
        self.prod, self.past = Softmax._exp_product(m, self.z, self.scale, self.zero_at)
        self.psum = Softmax._norm_product(m, self.e, self.recip)
        return m


@pytest.mark.parametrize("preset", ["edge", "default", "seq5"])
def test_products(preset):
    """``z * score_scale``: below the zero point exact, at or past it flagged, for every
    kind of operand (``score_scale`` below, at and above ``2**w``, ``z`` likewise, and
    products close to the zero point); ``e * recip`` exact. The exp product's 4 stages
    follow a ``score_scale`` that changed 2 cycles before (it is registered inside)."""
    cfg = CONFIGS[preset]
    dut = _Products(cfg)
    rng = random.Random(preset)
    zmax, smax = (1 << (cfg.score_bits + 1)) - 1, (1 << cfg.score_scale_bits) - 1
    w = ((dut.zero_at - 1).bit_length() + 1) // 2
    edges = [0, 1, 2, (1 << w) - 1, 1 << w, (1 << w) + 1]
    cases = []
    for _ in range(1500):
        scale = rng.choice([rng.randint(0, smax), rng.choice(edges), smax,
                            rng.randint(1, 1 << w), rng.randint(1 << w, smax)])
        scale = min(scale, smax)
        if scale and rng.random() < 0.5:          # z * scale near the zero point
            z = dut.zero_at // scale + rng.randint(-2, 2)
        else:
            z = rng.choice([rng.randint(0, zmax), rng.choice(edges), zmax,
                            rng.randint(0, 1 << w)])
        cases.append((min(max(z, 0), zmax), scale))
    emax, rmax = 1 << cfg.exp_bits, 1 << (cfg.recip_bits - 1)
    norms = [(rng.choice([rng.randint(0, emax), emax, 0, 1]),
              rng.choice([rng.randint(0, rmax), rmax, rmax - 1, 1 << 16, (1 << 16) - 1]))
             for _ in range(len(cases))]
    norms = [(e, min(r, rmax)) for e, r in norms]

    async def bench(ctx):
        for (z, scale), (e, r) in zip(cases, norms):
            ctx.set(dut.scale, scale)
            await ctx.tick().repeat(2)              # the registered score_scale side
            ctx.set(dut.z, z)
            ctx.set(dut.e, e)
            ctx.set(dut.recip, r)
            await ctx.tick().repeat(4)
            want = z * scale
            past = ctx.get(dut.past)
            if want >= dut.zero_at:
                assert past or ctx.get(dut.prod) == want, (z, scale)
            else:
                assert not past and ctx.get(dut.prod) == want, (z, scale)
            assert ctx.get(dut.psum) == e * r, (e, r)

    run_sim(dut, bench, deadline_cycles=10 * len(cases) + 100)
