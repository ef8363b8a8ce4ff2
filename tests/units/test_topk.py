"""Top-k engine against golden.spatten.topk_mask with random stalls, in amaranth.sim and
as generated Verilog (Icarus and Verilator); its cycles against SpAtten's quick-select
latency model."""
import random

import numpy as np
import pytest

from golden.spatten import quickselect_cycles, topk_mask
from hdp_rtl.rtl.topk import TopKEngine, select_plan, topk_select_cycles
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


def measure_rows(dut, rows):
    """Each row's cycles from its last value taken to its mask taken, and the mask: the
    rows one after another on one simulator (no stall; a row starts once the last mask
    is taken), so that a row's cycles do not depend on the rows before it either."""
    marks = []

    async def bench(ctx):
        ctx.set(dut.o_mask.ready, 1)
        cycle = 0
        for vals, k in rows:
            ctx.set(dut.k, k)
            for i, v in enumerate(vals):
                ctx.set(dut.i_value.payload, {"value": v, "last": int(i == len(vals) - 1)})
                ctx.set(dut.i_value.valid, 1)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i_value.valid, 0)
            start = cycle
            while True:
                await ctx.delay(1e-9)
                valid = ctx.get(dut.o_mask.valid)
                mask = ctx.get(dut.o_mask.payload.mask)
                await ctx.tick()
                cycle += 1
                if valid:
                    marks.append((cycle - start, mask))
                    break

    run_sim(dut, bench, deadline_cycles=20_000 * len(rows))
    return marks


WIDTH, P = 16, 8


CASES = ["shared-high-bits", "all-equal", "all-distinct", "one-low-bit",
         "negative-one-low-bit", "both-signs"]


def plan_row(case, k, n=64):
    """A row of ``case`` (seeded by case and k) and the digits its span needs."""
    rng = random.Random(f"{case}-{k}")
    if case == "shared-high-bits":        # span below 64: two digits
        return rng.sample(range(1024, 1024 + 64), n), 2
    if case == "all-equal":
        return [-1234] * n, 0
    if case == "all-distinct":            # every bit differs (the sign bit too)
        return rng.sample(range(-(1 << 15), 1 << 15), n - 1) + [-1], 4
    if case == "one-low-bit":             # two values, ties on both
        return [rng.choice([5, 4]) for _ in range(n)], 1
    if case == "negative-one-low-bit":
        return [rng.choice([-3, -4]) for _ in range(n)], 1
    return [rng.randint(-100, 100) for _ in range(n)], 2    # around 0, span below 256


@pytest.mark.parametrize("case", CASES)
def test_cycles_equal_the_plan(case):
    """Measured cycles equal :func:`select_plan`'s, cycle for cycle, and the mask is
    golden's (64 values of 16 bits, 8 a cycle; k of 1, 7, 32 and 63): narrow rows need
    only the digits of their span (the keys are the values less the row's minimum),
    rows of both signs too; equal values need no counting pass."""
    ks = [1, 7, 32, 63]
    rows = [(plan_row(case, k)[0], k) for k in ks]
    measured = measure_rows(TopKEngine(n_max=64, width=WIDTH, comparators=P), rows)
    for k, (vals, _), (cycles, mask) in zip(ks, rows, measured, strict=True):
        plan = select_plan(vals, k, WIDTH, P)
        assert plan["passes"] <= plan_row(case, k)[1]
        assert mask == golden_mask(vals, k)
        assert cycles == plan["cycles"], (k, cycles, plan)


@pytest.mark.parametrize("n_max,width,comparators", SMALL, ids=lambda v: str(v))
def test_cycles_of_random_rows(n_max, width, comparators):
    """Random rows of every shape of the functional tests, n from 1 to n_max and k from
    0 to beyond n: measured cycles equal :func:`topk_select_cycles`."""
    rng = random.Random(n_max * width + comparators)
    rows = random_rows(rng, 25, n_max, width)
    dut = TopKEngine(n_max=n_max, width=width, comparators=comparators)
    for (vals, k), (cycles, mask) in zip(rows, measure_rows(dut, rows), strict=True):
        assert mask == golden_mask(vals, k)
        assert cycles == topk_select_cycles(vals, k, width, comparators), (vals, k)


# ---- against SpAtten's quick-select model ------------------------------------------------

CYCLE_CASES = [(n, k) for n in (64, 128, 256) for k in (n // 8, n // 4, n // 2)]


def test_cycles_vs_spatten(capsys):
    """The side-by-side table's rows (sim/topk_bench.py, one row a case and data:
    random full-range values of the default preset's 14-bit block importances, and
    MiniLM block rows, ``S_sel`` and ``S_int``; 8 comparators, ``n_max`` = n): measured
    cycles equal :func:`select_plan`'s, masks golden's; printed beside SpAtten's
    quick-select model (mean of 20 pivot seeds; it counts no final pass, the engine's
    cycles include it and the take and offer cycles)."""
    from sim.topk_bench import bench_rows, table
    rows = bench_rows(per_case=1, seeds=20)
    for n, width in sorted({(r["n"], r["width"]) for r in rows}):   # one simulator a shape
        shape = [r for r in rows if (r["n"], r["width"]) == (n, width)]
        dut = TopKEngine(n_max=n, width=width, comparators=P)
        measured = measure_rows(dut, [(r["values"], r["k"]) for r in shape])
        for r, (cycles, mask) in zip(shape, measured, strict=True):
            assert mask == golden_mask(r["values"], r["k"])
            assert cycles == r["engine"], (r["n"], r["k"], r["data"], cycles, r["engine"])
    with capsys.disabled():
        print("\n" + table(rows))


#: The table's cases where the engine is still above SpAtten's model (docs/units.md
#: "Top-k engine", Open): expected to fail, strictly, so a fix shows.
ABOVE_THE_MODEL = {(64, 8, "MiniLM"), (256, 64, "MiniLM"), (256, 128, "MiniLM"),
                   (64, 32, "MiniLM S_int"), (256, 32, "MiniLM S_int"),
                   (256, 64, "MiniLM S_int")}


@pytest.mark.parametrize("data", ["random", "MiniLM", "MiniLM S_int"])
@pytest.mark.parametrize("n,k", CYCLE_CASES, ids=lambda v: str(v))
def test_not_above_spatten(n, k, data, request):
    """The engine's cycles on the table's row (:func:`select_plan`, equal to the RTL's:
    above) are no more than SpAtten's quick-select model's mean."""
    if (n, k, data) in ABOVE_THE_MODEL:
        request.applymarker(pytest.mark.xfail(strict=True, reason="above SpAtten's model"))
    from sim.topk_bench import bench_rows
    r = next(r for r in bench_rows(per_case=1, seeds=20)
             if (r["n"], r["k"], r["data"]) == (n, k, data))
    assert r["engine"] <= r["spatten"], (r["engine"], r["spatten"], r["words"])


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
