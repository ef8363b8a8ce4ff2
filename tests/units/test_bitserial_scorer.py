"""LeOPArd's bit-serial early termination (issue 13 item 1): the golden model's bound is
sound and tight (hypothesis, extremes included), and the BitSerialScorer unit matches it
pair for pair in amaranth.sim (random data, extremes, thresholds at the field's ends,
idle and back-pressure; its pace: a plane a cycle) and as generated Verilog on Icarus
and Verilator (tb/cocotb_bitserial_scorer.py)."""
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import golden
from golden.leopard import bitserial_head, bitserial_scores, max_score, plane_bounds, savings
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.bitserial_scorer import BitSerialScorer
from sim.runner import SIMULATORS, design_key, run_cocotb
from unit_sim import run_sim

# ---- the golden model: the bound ----------------------------------------------------------


@st.composite
def parts(draw):
    """(qi, ki, int_bits): integer parts of a few rows, drawn towards the extremes."""
    I = draw(st.sampled_from([2, 3, 4, 5, 8]))
    d = draw(st.sampled_from([1, 2, 3, 8, 16]))
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lo, hi = -(1 << (I - 1)), (1 << (I - 1)) - 1
    elem = st.one_of(st.sampled_from([lo, hi, 0, -1, 1]), st.integers(lo, hi))
    qi = np.array(draw(st.lists(st.lists(elem, min_size=d, max_size=d), min_size=rows,
                                max_size=rows)), dtype=np.int64).reshape(rows, d)
    ki = np.array(draw(st.lists(st.lists(elem, min_size=d, max_size=d), min_size=cols,
                                max_size=cols)), dtype=np.int64).reshape(cols, d)
    return qi, ki, I


def _sint_range(I, d):
    sb = 2 * I + max(0, (d - 1).bit_length())
    return -(1 << (sb - 1)), (1 << (sb - 1)) - 1


@settings(max_examples=150, deadline=None)
@given(parts(), st.data())
def test_termination_is_sound_and_the_rest_exact(p, data):
    """A terminated pair's S_int is below the threshold; a pair that ran every plane
    gives integer_scores exactly; keep is the threshold rule on S_int either way."""
    qi, ki, I = p
    lo, hi = _sint_range(I, qi.shape[1])
    s = golden.integer_scores(qi, ki)
    thr = data.draw(st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi),
                              st.sampled_from(sorted(set(s.ravel().tolist())))))
    r = bitserial_scores(qi, ki, thr, int_bits=I)
    assert (s[r.terminated] < thr).all()
    assert (r.s_int[~r.terminated] == s[~r.terminated]).all()
    assert (r.keep == (s >= thr)).all()
    assert ((r.planes >= 1) & (r.planes <= I)).all()
    assert ((r.planes < I) == r.terminated).all()


@settings(max_examples=120, deadline=None)
@given(parts())
def test_the_bound_is_exact(p):
    """B_j >= S_int, never increases, B_I = S_int, B_0 is the largest score over all K;
    and it is tight: the K row with the processed planes of ki and the remaining bits 1
    exactly where qi > 0 scores B_j."""
    qi, ki, I = p
    s = golden.integer_scores(qi, ki)
    b = plane_bounds(qi, ki, I)
    assert (b >= s).all() and (np.diff(b, axis=0) <= 0).all() and (b[I] == s).all()
    lo, hi = -(1 << (I - 1)), (1 << (I - 1)) - 1
    assert (b[0] == max_score(qi, I)[:, None]).all()
    every_k = np.arange(lo, hi + 1)
    assert (b[0][:, 0] == (qi[:, :, None] * every_k).max(axis=-1).sum(axis=1)).all()
    for j in range(1, I + 1):
        low = (1 << (I - j)) - 1                     # the bits not yet processed
        # witness[r, c]: K row c with its low bits set where Q row r is positive
        witness = (ki[None] & ~low) | np.where(qi[:, None] > 0, low, 0)
        assert (witness >= lo).all() and (witness <= hi).all()
        assert ((witness * qi[:, None]).sum(axis=-1) == b[j]).all()


def test_thresholds_at_the_ends():
    """The field's lowest threshold stops nothing; its highest stops every pair after
    its first plane (B_1 <= B_0 <= d 2^(2I-2) is below it)."""
    rng = np.random.default_rng(1)
    for I, d in ((4, 64), (2, 8), (8, 16)):
        lo, hi = _sint_range(I, d)
        qi = rng.integers(-(1 << (I - 1)), 1 << (I - 1), (20, d))
        ki = rng.integers(-(1 << (I - 1)), 1 << (I - 1), (20, d))
        none = bitserial_scores(qi, ki, lo, int_bits=I)
        assert not none.terminated.any() and (none.planes == I).all() and none.keep.all()
        every = bitserial_scores(qi, ki, hi, int_bits=I)
        assert every.terminated.all() and (every.planes == 1).all() and not every.keep.any()


def test_invalid_pairs_and_the_head_helper():
    cfg = HDPConfig.preset("edge")
    rng = np.random.default_rng(2)
    q, k = rng.integers(cfg.data_min, cfg.data_max + 1, (2, 10, cfg.head_dim))
    r = bitserial_head(q, k, 5, cfg, n=10, causal=True)
    upper = ~golden.valid_mask(10, True)
    assert (r.planes[upper] == 0).all() and not (r.terminated | r.keep)[upper].any()
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    s = golden.integer_scores(qi, ki)
    assert (r.keep == (golden.valid_mask(10, True) & (s >= 5))).all()
    assert savings(r, cfg.head_dim)["pairs"] == 55


# ---- the unit in amaranth.sim -------------------------------------------------------------

CONFIGS = {
    # one group of 8: a ring of 3
    "d8": HDPConfig(seq_max=16, head_dim=8, int_lanes=8, mac_lanes=4, axis_elems=4),
    # two levels (16 -> 2 -> 1): a ring of 4, as at the default's 64
    "d16-i3": HDPConfig(seq_max=8, head_dim=16, int_bits=3, frac_bits=2, int_lanes=16,
                        mac_lanes=4, axis_elems=4),
    # one element, no tree: a ring of 2; two planes
    "d1-i2": HDPConfig(seq_max=8, head_dim=1, int_bits=2, frac_bits=3, int_lanes=1,
                       mac_lanes=1, axis_elems=1),
    # eight planes, no fraction bits
    "d4-i8": HDPConfig(seq_max=8, head_dim=4, int_bits=8, frac_bits=0, int_lanes=4,
                       mac_lanes=4, axis_elems=4, out_frac=0),
}


def random_head(rng: np.random.Generator, cfg: HDPConfig, n: int):
    """Q and K of ``n`` rows: uniform elements, or drawn from the extremes (the integer
    parts' ends, 0, -1), row by row."""
    lo, hi = cfg.data_min, cfg.data_max
    step = 1 << cfg.frac_bits
    ends = np.array([lo, hi, 0, -step, hi - step + 1, lo + step - 1])
    rows = []
    for _ in range(2 * n):
        kind = rng.integers(3)
        if kind == 0:
            rows.append(rng.integers(lo, hi + 1, cfg.head_dim))
        elif kind == 1:
            rows.append(rng.choice(ends, cfg.head_dim))
        else:
            rows.append(np.full(cfg.head_dim, rng.choice([lo, hi])))
    rows = np.array(rows, dtype=np.int64)
    return rows[:n], rows[n:]


def thresholds_for(rng: np.random.Generator, cfg: HDPConfig, s) -> list[int]:
    """The field's ends, scores of the head (the boundary: a pair at the threshold is
    kept), the middle of the head's scores, and random values."""
    lo, hi = -(1 << (cfg.sint_bits - 1)), (1 << (cfg.sint_bits - 1)) - 1
    return [lo, hi, int(rng.choice(s.ravel())), int(np.median(s)), int(rng.integers(lo, hi + 1)),
            int(rng.integers(-8, 9))]


def run_pairs(cfg, jobs, *, idle: float, backpressure: float, seed: int):
    """Score ``jobs`` (each ``(threshold, q, k, pairs)``, pairs a list of (row, col)) one
    after another on a BitSerialScorer; the threshold changes only while the unit is
    idle. Returns, per job, {(row, col): (terminated, planes, s_int, keep)} (each pair
    once) and the cycles of every pair taken and every result taken."""
    dut = BitSerialScorer.from_config(cfg)
    rng = random.Random(seed)
    got = [{} for _ in jobs]
    events = {"take": [], "result": []}
    job = [0]
    done = [0]

    async def source(ctx):
        sent = 0
        for j, (thr, q, k, pairs) in enumerate(jobs):
            while done[0] < sent or ctx.get(dut.busy):     # the job before is all out
                await ctx.tick()
            job[0] = j
            ctx.set(dut.threshold, thr)
            for r, c in pairs:
                while idle and rng.random() < idle:
                    ctx.set(dut.i_pair.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_pair.payload, {"q": [int(x) for x in q[r]],
                                             "k": [int(x) for x in k[c]], "row": r, "col": c})
                ctx.set(dut.i_pair.valid, 1)
                await ctx.tick().until(dut.i_pair.ready)
            ctx.set(dut.i_pair.valid, 0)
            sent += len(pairs)

    async def sink(ctx):
        total = sum(len(p) for *_, p in jobs)
        held = None
        while done[0] < total:
            ready = not (backpressure and rng.random() < backpressure)
            ctx.set(dut.o_result.ready, int(ready))
            await ctx.delay(1e-9)
            valid, payload = ctx.get(dut.o_result.valid), ctx.get(dut.o_result.payload)
            if held is not None:
                assert valid and payload == held, "o_result changed while stalled"
            held = payload if valid and not ready else None
            await ctx.tick()
            if valid and ready:
                key = (payload.row, payload.col)
                assert key not in got[job[0]], f"pair {key} scored twice"
                got[job[0]][key] = (int(payload.terminated), int(payload.planes),
                                    int(payload.s_int), int(payload.keep))
                done[0] += 1

    async def monitor(ctx):
        cycle = 0
        async for _clk, _rst, iv, ir, ov, orr in ctx.tick().sample(
                dut.i_pair.valid, dut.i_pair.ready, dut.o_result.valid, dut.o_result.ready):
            if iv and ir:
                events["take"].append(cycle)
            if ov and orr:
                events["result"].append(cycle)
            cycle += 1

    planes = sum(len(p) for *_, p in jobs) * cfg.int_bits
    run_sim(dut, source, sink, extra=[monitor],
            deadline_cycles=int(planes * dut.stages * (1 + idle) / max(0.05, 1 - backpressure))
            + 500 * len(jobs))
    return got, events, dut


def expected(cfg, thr, q, k, pairs):
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    r = bitserial_scores(qi, ki, thr, int_bits=cfg.int_bits)
    return {(a, b): (int(r.terminated[a, b]), int(r.planes[a, b]), int(r.s_int[a, b]),
                     int(r.keep[a, b])) for a, b in pairs}


def random_jobs(cfg, seed: int, n: int = 6, pairs_per_job: int | None = None):
    rng = np.random.default_rng(seed)
    q, k = random_head(rng, cfg, n)
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    s = golden.integer_scores(qi, ki)
    every = [(r, c) for r in range(n) for c in range(n)]
    jobs = []
    for thr in thresholds_for(rng, cfg, s):
        order = list(every)
        random.Random(thr).shuffle(order)
        order.sort(key=lambda p: s[p] != thr)          # the pairs at the threshold first
        jobs.append((thr, q, k, order[:pairs_per_job] if pairs_per_job else order))
    return jobs


#: (idle on i_pair, back-pressure on o_result); test_a_plane_a_cycle runs without either
STALLS = {"idle-bp": (0.3, 0.5), "heavy-bp": (0.1, 0.9)}


@pytest.mark.parametrize("stalls", STALLS, ids=list(STALLS))
@pytest.mark.parametrize("name", CONFIGS)
def test_results_match_golden(name, stalls):
    cfg = CONFIGS[name]
    jobs = random_jobs(cfg, seed=len(name) + 7 * list(STALLS).index(stalls), pairs_per_job=16)
    idle, bp = STALLS[stalls]
    got, _, _ = run_pairs(cfg, jobs, idle=idle, backpressure=bp, seed=3)
    for (thr, q, k, pairs), g in zip(jobs, got):
        assert g == expected(cfg, thr, q, k, pairs), f"threshold {thr}"
    # (coverage: pairs stopped after the first plane and after the last but one (with
    # I <= 4 after each), pairs that ran all planes, pairs at the threshold kept)
    outcomes = {(t, p) for g in got for t, p, _, _ in g.values()}
    I = cfg.int_bits
    want = {(1, p) for p in range(1, I)} if I <= 4 else {(1, 1), (1, I - 1)}
    assert want | {(0, I)} <= outcomes
    assert any(g[p][2] == thr and g[p][3] for (thr, *_), g in zip(jobs, got) for p in g)


def test_default_preset():
    """The default preset's unit (d = 64, I = 4, a ring of 4) on a random head and its
    extremes, at the field's ends and around the median score, under back-pressure."""
    cfg = HDPConfig.preset("default")
    jobs = random_jobs(cfg, seed=5, n=8, pairs_per_job=12)
    got, _, dut = run_pairs(cfg, jobs, idle=0.2, backpressure=0.4, seed=4)
    assert dut.stages == 4 and dut.sint_bits == 14
    for (thr, q, k, pairs), g in zip(jobs, got):
        assert g == expected(cfg, thr, q, k, pairs), f"threshold {thr}"


def ring_model(planes: list[int], stages: int):
    """The cycles (from the first pair taken) at which each pair is taken and its result
    handed on, with i_pair always valid and o_result always ready: every cycle the slot
    at the ring's entry goes round again with the next plane of its pair or takes the
    next pair, so a pair of ``p`` planes holds its slot ``stages * p`` cycles and its
    result is out one cycle after its last decision."""
    free = [0] * stages
    takes, results, c = [], [], 0
    for p in planes:
        while free[c % stages] > c:
            c += 1
        takes.append(c)
        results.append(c + stages * p + 1)
        free[c % stages] = c + stages * p
        c += 1
    return takes, results


@pytest.mark.parametrize("name", ["d8", "d16-i3"])
def test_a_plane_a_cycle(name):
    """Without stalls the ring never idles: pairs are taken and results handed on in
    exactly the cycles of ring_model (no wait for a result's place), so n pairs cost
    sum(planes) cycles plus the drain; the results' order is the order pairs finish."""
    cfg = CONFIGS[name]
    jobs = random_jobs(cfg, seed=11, n=7)
    for job in jobs[2:4]:                    # a score of the head, and the median
        got, ev, dut = run_pairs(cfg, [job], idle=0.0, backpressure=0.0, seed=1)
        thr, q, k, pairs = job
        want = expected(cfg, thr, q, k, pairs)
        assert got[0] == want
        planes = [want[p][1] for p in pairs]
        takes, results = ring_model(planes, dut.stages)
        t0 = ev["take"][0]
        assert [t - t0 for t in ev["take"]] == takes, f"threshold {thr}"
        assert [t - t0 for t in ev["result"]] == sorted(results), f"threshold {thr}"
        # the ring was busy every cycle until the last pair was taken
        assert takes[-1] + 1 <= sum(planes)


# ---- savings, measured --------------------------------------------------------------------

def test_savings_on_a_random_head():
    """Planes (cycles) and K bits saved per pair on a random default-preset head (128
    tokens, uniform 8-bit Q and K), at thresholds pruning 20 to 90 % of the pairs, and
    on integer parts of 8 bits; printed for docs/units.md. Few are saved at I = 4:
    after one plane the bound still holds 7 Pos of slack."""
    cfg = HDPConfig.preset("default")
    rng = np.random.default_rng(0)
    q, k = rng.integers(cfg.data_min, cfg.data_max + 1, (2, 128, cfg.head_dim))
    qi, _ = golden.split(q, cfg)
    ki, _ = golden.split(k, cfg)
    s = golden.integer_scores(qi, ki)
    lines = ["| pruned | threshold | terminated early | planes a pair | planes saved a pair "
             "| K bits saved a pair |"]
    prev = None
    for frac in (0.2, 0.5, 0.7, 0.9):
        thr = int(np.quantile(s, frac))
        sv = savings(bitserial_scores(qi, ki, thr, int_bits=cfg.int_bits), cfg.head_dim)
        assert prev is None or sv["planes_saved_per_pair"] >= prev
        prev = sv["planes_saved_per_pair"]
        lines.append(f"| {1 - sv['kept']:.1%} | {thr} | {sv['terminated']:.1%} | "
                     f"{sv['planes_per_pair']:.3f} | {sv['planes_saved_per_pair']:.3f} | "
                     f"{sv['k_bits_saved_per_pair']:.1f} |")
    # the same head shape with 8-bit integer parts (int_bits 8): more planes to skip
    qi, ki = rng.integers(-128, 128, (2, 128, cfg.head_dim))
    s = golden.integer_scores(qi, ki)
    lines.append("| I = 8: |")
    for frac in (0.5, 0.9):
        thr = int(np.quantile(s, frac))
        sv = savings(bitserial_scores(qi, ki, thr, int_bits=8), cfg.head_dim)
        lines.append(f"| {1 - sv['kept']:.1%} | {thr} | {sv['terminated']:.1%} | "
                     f"{sv['planes_per_pair']:.3f} | {sv['planes_saved_per_pair']:.3f} | "
                     f"{sv['k_bits_saved_per_pair']:.1f} |")
    print("\n" + "\n".join(lines))


def test_savings_on_minilm_heads():
    """The same on the stored all-MiniLM-L6-v2 heads (tests/data/minilm_heads.npz: 7
    heads, 12 or 64 tokens, d = 32, I = 4, their valid pairs), each head's threshold
    at the quantile of its own S_int (a per-head calibration); printed for
    docs/units.md."""
    from golden.vectors import load_minilm_heads
    heads = load_minilm_heads()
    lines = ["| quantile | pairs | pruned | terminated early | planes a pair | planes saved "
             "a pair | K bits saved a pair |"]
    for frac in (0.5, 0.7, 0.9):
        pairs = planes = term = kept = 0
        for h in heads:
            cfg, n = h.config, h.regs.seq_len
            qi, _ = golden.split(h.q[:n], cfg)
            ki, _ = golden.split(h.k[:n], cfg)
            valid = golden.valid_mask(n, h.regs.causal)
            s = golden.integer_scores(qi, ki)
            r = bitserial_scores(qi, ki, int(np.quantile(s[valid], frac)), valid,
                                 int_bits=cfg.int_bits)
            assert (s[r.terminated] < r.threshold).all()
            pairs += int(valid.sum())
            planes += int(r.planes[valid].sum())
            term += int(r.terminated.sum())
            kept += int(r.keep.sum())
        I, d = heads[0].config.int_bits, heads[0].config.head_dim
        lines.append(f"| {frac:.0%} | {pairs} | {1 - kept / pairs:.1%} | {term / pairs:.1%} | "
                     f"{planes / pairs:.3f} | {I - planes / pairs:.3f} | "
                     f"{(I - planes / pairs) * d:.1f} |")
    print("\n" + "\n".join(lines))


# ---- the generated Verilog ----------------------------------------------------------------

#: the cocotb run's config: 16 elements (a ring of 4, as at the default's 64), I = 4
VERILOG_CONFIG = HDPConfig(seq_max=16, head_dim=16, int_lanes=16, mac_lanes=4, axis_elems=4)


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_verilog(simulator):
    config = VERILOG_CONFIG
    run_cocotb(component=lambda: BitSerialScorer.from_config(config),
               toplevel="hdp_bitserial_scorer", test_module="cocotb_bitserial_scorer",
               simulator=simulator, name="bitserial_scorer-d16",
               env={"HDP_CONFIG": config.to_dict()}, quick_build=True,
               key=design_key("bitserial_scorer", config))


@pytest.mark.sim
def test_lint_clean():
    """Verilator -Wall finds nothing in the unit's Verilog (as tb/test_lint.py checks the
    core's units; this one is not in hdp_rtl.generate.UNITS)."""
    from sim.runner import lint
    config = VERILOG_CONFIG
    warnings = lint(lambda: BitSerialScorer.from_config(config), "hdp_bitserial_scorer",
                    "bitserial_scorer-d16", key=design_key("bitserial_scorer", config))
    assert not warnings, "\n".join(warnings[:20])
