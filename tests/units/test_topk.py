"""Top-k engine against golden.spatten.topk_mask with random stalls, in amaranth.sim and
as generated Verilog (Icarus and Verilator); its cycles against SpAtten's quick-select
latency model."""
import random

import numpy as np
import pytest

from golden.spatten import quickselect_cycles, topk_mask
from hdp_rtl.rtl.topk import READ_STAGES, TopKEngine, radix_passes, topk_row_cycles
from sim.runner import SIMULATORS, run_cocotb
from unit_sim import recv_stream, run_sim, send_stream

#: (n_max, width, comparators) of the functional tests: 16 values of 8 bits, 4 a cycle
#: (4 words, partial last words), and one value a word, and one word a row
SMALL = [(16, 8, 4), (8, 6, 1), (8, 5, 8)]


def random_rows(rng: random.Random, count: int, n_max: int, width: int):
    """Rows (values, k) with ties, all-equal rows, the signed extremes, n from 1 to
    ``n_max`` and k from 0 to beyond n."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rows = []
    for i in range(count):
        n = rng.choice([1, n_max, rng.randint(1, n_max), rng.randint(1, n_max)])
        kind = i % 5
        if kind == 0:
            vals = [rng.randint(lo, hi) for _ in range(n)]
        elif kind == 1:
            vals = [rng.randint(-2, 2) for _ in range(n)]               # many ties
        elif kind == 2:
            vals = [rng.choice([lo, hi])] * n                           # all equal, extreme
        elif kind == 3:
            vals = [rng.choice([lo, lo + 1, hi - 1, hi, 0, -1]) for _ in range(n)]
        else:
            vals = [rng.randint(lo, lo + 3) for _ in range(n)]          # all very negative
        k = rng.choice([0, 1, n, n + 1, n_max, rng.randint(0, n), rng.randint(0, n_max)])
        rows.append((vals, min(k, n_max)))
    return rows


def golden_mask(vals, k) -> int:
    return sum(1 << i for i, keep in enumerate(topk_mask(vals, k)) if keep)


def beats(rows):
    return [{"value": v, "last": int(i == len(vals) - 1)}
            for vals, _ in rows for i, v in enumerate(vals)]


def run_rows(dut, rows, *, seed=0, idle=0.0, backpressure=0.0):
    """Send ``rows`` back to back (k set with each row's first value); the masks."""
    rng = random.Random(seed)
    got = []

    async def source(ctx):
        for vals, k in rows:
            for i, v in enumerate(vals):
                while idle and rng.random() < idle:
                    ctx.set(dut.i_value.valid, 0)
                    # k may change at any time but the row's first value
                    ctx.set(dut.k, rng.randint(0, dut.n_max))
                    await ctx.tick()
                ctx.set(dut.k, k if i == 0 else rng.randint(0, dut.n_max))
                ctx.set(dut.i_value.payload, {"value": v, "last": int(i == len(vals) - 1)})
                ctx.set(dut.i_value.valid, 1)
                await ctx.tick().until(dut.i_value.ready)
        ctx.set(dut.i_value.valid, 0)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, dut.o_mask, len(rows), rng=rng,
                                     backpressure=backpressure))

    run_sim(dut, source, sink, deadline_cycles=200_000)
    return got


@pytest.mark.parametrize("n_max,width,comparators", SMALL, ids=lambda v: str(v))
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.3, 0.4), (0.0, 0.8)],
                         ids=["no-stall", "idle-backpressure", "heavy-backpressure"])
def test_masks_match_golden(n_max, width, comparators, stalls):
    rng = random.Random(f"{n_max}-{comparators}-{stalls}")
    rows = random_rows(rng, 80, n_max, width)
    dut = TopKEngine(n_max=n_max, width=width, comparators=comparators)
    got = run_rows(dut, rows, seed=n_max + comparators, idle=stalls[0],
                   backpressure=stalls[1])
    for r, ((vals, k), g) in enumerate(zip(rows, got)):
        want = golden_mask(vals, k)
        assert g.mask == want, f"row {r} {vals} k={k}: {g.mask:#x}, expected {want:#x}"
        assert g.count == min(k, len(vals))


def test_every_k_of_tied_rows():
    """Every k of short rows of two or three distinct values (the tie rule everywhere)."""
    rng = random.Random(5)
    rows = []
    for _ in range(12):
        n = rng.randint(1, 16)
        vals = [rng.choice([-1, 0, 3]) for _ in range(n)]
        rows += [(vals, k) for k in range(n + 2)]
    dut = TopKEngine(n_max=16, width=4, comparators=4)
    got = run_rows(dut, rows, seed=1, idle=0.1, backpressure=0.2)
    assert [g.mask for g in got] == [golden_mask(v, k) for v, k in rows]


# ---- cycles ----------------------------------------------------------------------------


def measure_cycles(dut, vals, k):
    """Cycles from the row's last value taken to its mask taken (no stall)."""
    marks = {}

    async def bench(ctx):
        ctx.set(dut.o_mask.ready, 1)
        ctx.set(dut.k, k)
        cycle = 0
        for i, v in enumerate(vals):
            ctx.set(dut.i_value.payload, {"value": v, "last": int(i == len(vals) - 1)})
            ctx.set(dut.i_value.valid, 1)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.i_value.valid, 0)
        marks["in"] = cycle
        while True:
            await ctx.delay(1e-9)
            valid = ctx.get(dut.o_mask.valid)
            mask = ctx.get(dut.o_mask.payload.mask)
            await ctx.tick()
            cycle += 1
            if valid:
                marks["out"], marks["mask"] = cycle, mask
                return

    run_sim(dut, bench, deadline_cycles=20_000)
    return marks["out"] - marks["in"], marks["mask"]


WIDTH, P = 16, 8


@pytest.mark.parametrize("case", ["shared-high-bits", "all-equal", "all-distinct",
                                  "one-low-bit", "negative-one-low-bit"])
@pytest.mark.parametrize("k", [1, 7, 32, 63])
def test_skipped_bits(case, k):
    """Bits on which every value agrees take no pass: measured cycles equal
    :func:`topk_row_cycles` with the passes on differing bits only, at most one a
    differing bit, and the mask stays golden's (64 values of 16 bits, 8 a cycle)."""
    n, rng = 64, random.Random(f"{case}-{k}")
    if case == "shared-high-bits":        # keys differ in their 6 low bits only
        vals, differing = rng.sample(range(1024, 1024 + 64), n), 6
    elif case == "all-equal":
        vals, differing = [-1234] * n, 0
    elif case == "all-distinct":          # every bit differs (the sign bit too)
        vals, differing = rng.sample(range(-(1 << 15), 1 << 15), n - 1) + [-1], WIDTH
    elif case == "one-low-bit":           # two values, ties on both
        vals, differing = [rng.choice([5, 4]) for _ in range(n)], 1
    else:
        vals, differing = [rng.choice([-3, -4]) for _ in range(n)], 1
    passes = radix_passes(vals, k, WIDTH)
    assert passes <= differing
    if case == "all-equal":
        assert passes == 0
    cycles, mask = measure_cycles(TopKEngine(n_max=n, width=WIDTH, comparators=P), vals, k)
    assert mask == golden_mask(vals, k)
    assert cycles == topk_row_cycles(n, passes, P), (cycles, passes)
    assert cycles <= topk_row_cycles(n, differing, P)


CYCLE_CASES = [(n, k) for n in (64, 128, 256) for k in (n // 8, n // 4, n // 2)]


def test_cycles_vs_spatten(capsys):
    """Cycles of rows of random 16-bit values (n_max = n, 8 comparators): measured,
    bounded by :func:`topk_row_cycles` with the Python pass count and by the
    ``width``-pass worst case; printed beside SpAtten's quick-select model (mean of 20
    pivot seeds; the model counts no final pass)."""
    rng = np.random.default_rng(12)
    lines = ["| n | k | passes | counting cycles (passes x (W+5)) | row cycles (take to mask) "
             "| worst case (16 passes) | SpAtten quick-select, mean of 20 seeds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for n, k in CYCLE_CASES:
        vals = [int(x) for x in rng.integers(-(1 << 15), 1 << 15, n)]
        cycles, mask = measure_cycles(TopKEngine(n_max=n, width=WIDTH, comparators=P), vals, k)
        assert mask == golden_mask(vals, k)
        passes = radix_passes(vals, k, WIDTH)
        # the row is taken the cycle after its last value is written (c_full)
        want = topk_row_cycles(n, passes, P)
        assert cycles == want, (n, k, cycles, want)
        assert cycles <= topk_row_cycles(n, WIDTH, P)
        qs = np.mean([quickselect_cycles(vals, k, comparators=P, rng=s) for s in range(20)])
        words = n // P
        lines.append(f"| {n} | {k} | {passes} | {passes * (words + READ_STAGES + 1)} | {cycles} | "
                     f"{topk_row_cycles(n, WIDTH, P)} | {qs:.1f} |")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# ---- the generated Verilog ---------------------------------------------------------------

#: the cocotb run's engine: 16 values of 8 bits, 4 compared a cycle
VERILOG_PARAMS = dict(n_max=16, width=8, comparators=4)


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_verilog(simulator):
    params = VERILOG_PARAMS
    name = "topk-" + "-".join(f"{k}{v}" for k, v in params.items())
    run_cocotb(component=lambda: TopKEngine(**params), toplevel="hdp_topk",
               test_module="cocotb_topk", simulator=simulator, name=name,
               env={"TOPK_PARAMS": params}, quick_build=True, key=name)
