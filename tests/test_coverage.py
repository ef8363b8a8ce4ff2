"""Functional coverage of the random-config regression (sim/coverage.py) and the steered
draws (sim/random_configs.py): bins, merging, JSON, the report and its holes, and
steering filling holes that plain draws leave empty. Pure Python: the heads' outcomes
come from the golden model, nothing is simulated."""
import dataclasses
import json
import random

import numpy as np
import pytest

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.regmap import ErrorCode, registers_by_name
from sim.coverage import (DRAWN, GROUPS, PROVOKED, STEERS, Coverage, Outcome, bin_id,
                          config_bins)
from sim.random_configs import (ERROR_CASE_P, error_codes, random_config, random_error_case,
                                random_head, random_stall)
from sim.regress import coverage_of, fill_seeds, main
from sim.regress_log import Batch, record, reproduce_command

#: A config on which every steerable bin can be hit: blocks of 2 x 4 on 10 tokens
#: (ragged), 6-bit elements in 8-bit lanes (error 8 possible).
REACH_ALL = HDPConfig(seq_max=10, head_dim=8, int_bits=3, frac_bits=3, block_rows=2,
                      block_cols=4, int_lanes=4, mac_lanes=2, axis_elems=4, exp_bits=10,
                      prob_bits=10, out_bits=16, out_frac=8, approximation=True)
#: ... and on the topk selector, for the bins of the topk selector (block_k, error 12);
#: blocks of 1 x 2 so that a row of 10 tokens has 5 (block_k between 1 and nb)
REACH_TOPK = REACH_ALL.replace(block_cols=2, selector="topk")
TOPK_BINS = {"block_k:1", "block_k:between 1 and nb", "block_k:>= nb (rows kept whole)",
             "error case:BLOCK_K_ZERO"}
#: ... and on the threshold selector, for its score_threshold bins
REACH_THRESHOLD = REACH_ALL.replace(selector="threshold")
THRESHOLD_BINS = {f"score_threshold:{b}" for b in ("lowest", "between", "highest")}


def _heads(config: HDPConfig, seed: int, count: int, want=(), cov=None) -> Coverage:
    """``count`` heads drawn as tb/cocotb_regress.py draws them, sampled with their golden
    outcome (what the simulation must match) into ``cov``."""
    cov = Coverage() if cov is None else cov
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    stall = random_stall(rng, want)
    for i in range(count):
        head = random_head(rng, nrng, config, want)
        n, d = head.q.shape
        case = random_error_case(random.Random(f"{seed} {i}"), config, n, d, want)
        res = golden.attention_head(head.q, head.k, head.v, config, head.regs)
        cov.sample_head(config, head.regs, head.kind, n, d, Outcome(
            res.head_importance, res.head_pruned, res.blocks_pruned,
            case.code if case else ErrorCode.NONE), stall)
    return cov


# ---- bins ------------------------------------------------------------------------------

def test_config_bins_of_a_known_config():
    hits = config_bins(REACH_ALL)
    for want in ("block shape:NxN", "block grid:ragged last block column",
                 "seq_max:not a power of two", "head_dim:8", "int lanes:several chunks",
                 "mac lanes:several chunks", "int vs mac lanes:int > mac", "axis_elems:= lanes",
                 "beats per row:several", "row buffer words:several a row",
                 "input lanes:8 bits, B < 8", "output lanes:16 bits, out_bits = 16"):
        assert want in hits, want
    assert not hits & {"block grid:one block row", "block grid:ragged last block row"}
    assert not any(b.startswith("undrawn fields:") for b in hits)
    edge = config_bins(HDPConfig.preset("edge"))
    assert {"block shape:1xN", "undrawn fields:pv_acc_ram not False",
            "undrawn fields:counter_bits not 32"} <= edge


def test_head_bins_follow_registers_and_outcome():
    c = REACH_ALL
    cov = Coverage()
    regs = Registers(seq_len=c.seq_max, block_rule=0, rho=-256, causal=True,
                     head_prune_enable=True, head_threshold=11, approx_enable=True)
    cov.sample_head(c, regs, "peaked", c.seq_max, 3, Outcome(10, True, 0), 0.2)
    regs = Registers(seq_len=1, block_rule=1, delta=(1 << c.delta_bits) - 1,
                     head_prune_enable=True, head_threshold=7, approx_enable=False)
    cov.sample_head(c, regs, "zeros", 1, c.head_dim, Outcome(7, False, 0, ErrorCode.RHO_RANGE))
    for b in ("kind:peaked", "seq_len:seq_max", "kind x seq_len:peaked, n seq_max",
              "width d:d < head_dim", "block rule:mean, rho -256", "causal:on",
              "corner cases:causal, blocks larger than 1x1", "corner cases:ragged last block row",
              "head pruning:pruned, threshold = HI + 1", "bus stall:0.2",
              "kind x seq_len:zeros, n 1", "block rule:delta, max", "approximation:off",
              "head pruning:kept, threshold = HI", "block outcome:none pruned",
              "corner cases:n < block_cols", "error case:RHO_RANGE"):
        assert cov.count(b) == 1, b
    assert cov.count("block outcome:some pruned") == 0     # a pruned head has no block outcome
    assert dict(cov.samples) == {"heads": 2, "error cases": 1}


def test_topk_bins_follow_block_k_and_the_widest_row():
    """Selector topk: block_k against the widest block row's valid blocks (10 tokens in
    blocks of 2: 5); no block rule bin (the rules are the hdp selector's); nothing with
    pruning off or the head pruned."""
    c, cov = REACH_TOPK, Coverage()
    cov.sample_config(c)
    for block_k, outcome in ((1, Outcome(9, False, 3)), (3, Outcome(9, False, 2)),
                             (5, Outcome(9, False, 0)), (7, Outcome(9, False, 0)),
                             (2, Outcome(9, True, 0))):
        cov.sample_head(c, Registers(seq_len=10, block_k=block_k), "normal", 10, 8, outcome)
    cov.sample_head(c, Registers(seq_len=10, block_k=0, block_prune_enable=False), "normal",
                    10, 8, Outcome(9, False, 0))
    assert cov.count("selector:topk") == 1 and cov.count("selector:hdp") == 0
    assert [cov.count(f"block_k:{b}") for b in
            ("1", "between 1 and nb", ">= nb (rows kept whole)")] == [1, 1, 2]
    assert not any(cov.count(f"block rule:{b}") for b in next(
        g for g in GROUPS if g.name == "block rule").bins)
    one_block = Coverage()        # 2 tokens: one block a row, block_k 1 is both
    one_block.sample_head(c, Registers(seq_len=2, block_k=1), "normal", 2, 8, Outcome(1, False, 0))
    assert one_block.count("block_k:1") == one_block.count("block_k:>= nb (rows kept whole)") == 1


def test_selector_drawn_from_its_own_stream():
    """About one seed in four has the topk selector; seeds 1-3 (tb/test_regress.py) and
    176 keep hdp, 100 and 104 have topk (the steering rounds below see both)."""
    sel = {s: random_config(s).selector for s in range(300)}
    assert 0.15 < sum(v == "topk" for v in sel.values()) / len(sel) < 0.35
    assert [s for s in (1, 2, 3, 100, 101, 102, 103, 104, 105, 176) if sel[s] == "topk"] == \
        [100, 104]


def test_drawn_fields_are_those_random_config_varies():
    """Every field in DRAWN varies over seeds and every other stays at its default: the
    excluded bins of "undrawn fields" say what random_config really does."""
    configs = [random_config(s) for s in range(300)]
    for f in dataclasses.fields(HDPConfig):
        values = {getattr(c, f.name) for c in configs}
        assert (len(values) > 1) == (f.name in DRAWN), (f.name, values)


def test_every_error_code_is_provoked_or_excluded():
    group = next(g for g in GROUPS if g.name == "error case")
    for code in ErrorCode:
        if code != ErrorCode.NONE:
            assert (code in PROVOKED) != (code.name in group.excluded), code
    assert ErrorCode.INPUT_LANE not in error_codes(random_config(1))   # B = 8: lanes full
    assert ErrorCode.INPUT_LANE in error_codes(REACH_ALL)


@pytest.mark.parametrize("config", [REACH_ALL, REACH_TOPK, random_config(1),
                                    random_config(176)],
                         ids=["reach-all", "reach-topk", "seed1", "seed176"])
def test_error_cases_carry_exactly_their_error(config):
    """Each case's bad value is bad in just the way its code says; the other registers
    the driver programs stay valid, so the start checks stop at that code."""
    rmap = registers_by_name(config)
    want = [bin_id("error case", c.name) for c in PROVOKED]
    seen = set()
    for i in range(300):
        case = random_error_case(random.Random(i), config, 1 + i % config.seq_max, 1, want)
        if case is None:
            continue
        code = case.code
        seen.add(code)
        if case.register:
            reg = rmap[case.register]
            field = case.value & reg.mask
            outside = case.value & ~reg.mask & 0xFFFF_FFFF
        if code == ErrorCode.SEQ_LEN_ZERO:
            assert case.value == 0
        elif code == ErrorCode.SEQ_LEN_TOO_BIG:
            assert field and (field > config.seq_max or outside)
        elif code in (ErrorCode.FLAGS_RESERVED, ErrorCode.FIELD_OVERFLOW):
            assert outside and reg.overflow_error == code
        elif code == ErrorCode.RHO_RANGE:
            assert not -256 <= rmap["rho"].field("rho").get(case.value) <= 256
        elif code == ErrorCode.BAD_ADDRESS:
            assert all(r.offset != case.address or r.access == "ro" for r in rmap.values())
        elif code == ErrorCode.BLOCK_K_ZERO:       # block_k 0 after flags with pruning on
            (name, flags), = case.also
            assert case.value == 0 and name == "flags" and not flags & ~rmap[name].mask
            assert rmap[name].decode(flags)["block_prune_enable"]
        elif code == ErrorCode.INPUT_LANE:
            b = config.data_bits
            low = case.value & ((1 << b) - 1)
            signed = low - (1 << b) if low >> (b - 1) else low
            assert signed & ((1 << config.in_lane_bits) - 1) != case.value
    assert seen == set(error_codes(config))


# ---- counts ----------------------------------------------------------------------------

def test_merge_json_round_trip_and_report():
    a = _heads(REACH_ALL, 1, 6)
    a.sample_config(REACH_ALL)
    b = _heads(random_config(3), 2, 4)
    total = Coverage().merge(a).merge(Coverage.from_json(b.to_json()))
    assert total.samples["heads"] == 10 and total.samples["configs"] == 1
    for group in total.counts:
        for name in set(a.counts[group]) | set(b.counts[group]):
            assert total.counts[group][name] == a.counts[group][name] + b.counts[group][name]
    assert Coverage.from_json(total.to_json()).to_dict() == total.to_dict()
    json.loads(total.to_json())                        # one line of a JSON-lines log

    report = total.report()
    holes = total.holes()
    assert holes and set(holes) <= set(total.bins())
    listed = report.split("## Holes\n")[1].split("## Excluded")[0]
    assert [line[2:] for line in listed.splitlines() if line.startswith("- ")] == holes
    assert f"Configs: {len(total.holes('configs'))} (" in listed
    assert "| block shape | NxN | 1 |" in report
    assert "| undrawn fields | pv_acc_ram not False | excluded |" in report
    for b, why in total.excluded().items():
        assert f"- {b}: {why}" in report and b not in holes
    assert total.summary().startswith(f"coverage: {len(total.bins()) - len(holes)} of "
                                      f"{len(total.bins())} bins hit")


def test_log_lines_keep_each_batch_coverage():
    """What --resume reads back: configs once per seed, every done batch's heads."""
    cov = _heads(REACH_ALL, 1, 3)
    want = ["causal:on", "error case:INPUT_LANE"]
    result = {"passed": True, "failure": "", "coverage": cov.to_dict()}
    recs = [record(Batch(7, b, 3 * b, 3), "icarus", "x", REACH_ALL.to_dict(), result, want)
            for b in range(2)]
    recs.append(record(Batch(7, 2, 6, 3), "icarus", "x", REACH_ALL.to_dict(),
                       {"done": False, "passed": False, "failure": "lost"}))
    lines = [json.loads(json.dumps(r)) for r in recs]
    total = coverage_of(lines)
    assert total.samples == {"configs": 1, "heads": 6,
                             "error cases": 2 * cov.samples["error cases"]}
    assert total.count("block shape:NxN") == 1
    assert lines[0]["want"] == want
    assert "--want 'causal:on,error case:INPUT_LANE'" in lines[0]["command"]
    assert "--want" not in reproduce_command(Batch(7, 0, 0, 3), "icarus")


def test_want_must_name_steerable_bins():
    with pytest.raises(SystemExit):
        main(["--want", "block shape:NxN"])           # a config bin: seeds fill it, not heads


# ---- steering --------------------------------------------------------------------------

def test_plain_draws_are_unchanged():
    """With nothing wanted, seeds name the configs and heads they named before steering
    and error cases (values from the draws at commit 00d3120)."""
    drawn = ("seq_max", "head_dim", "int_bits", "frac_bits", "block_rows", "block_cols",
             "int_lanes", "mac_lanes", "exp_lut_bits", "exp_bits", "prob_bits",
             "recip_guard_bits", "score_scale_bits", "score_scale_frac", "out_bits",
             "out_frac", "axis_elems")
    assert {s: tuple(getattr(random_config(s), f) for f in drawn) for s in (1, 100, 176)} == {
        1: (4, 2, 5, 3, 1, 1, 2, 1, 6, 12, 13, 9, 24, 28, 24, 0, 2),
        100: (32, 4, 5, 5, 4, 1, 4, 1, 3, 13, 12, 4, 12, 26, 20, 6, 2),
        176: (3, 2, 6, 6, 2, 1, 1, 1, 5, 11, 12, 5, 19, 20, 20, 8, 2)}
    rng, nrng = random.Random(1 * 7919 + 1), np.random.default_rng(1)   # seed 1, head 0
    assert random_stall(rng) == 0.0
    fields = ("causal", "head_prune_enable", "head_threshold", "block_prune_enable",
              "block_rule", "rho", "delta", "approx_enable", "score_scale")
    got = []
    # (head_threshold is drawn around the head's importance, which unbiased_selection,
    # now every config's, makes about twice as large: S_int's, as at 00d3120, here)
    config = random_config(1).replace(unbiased_selection=False)
    for _ in range(4):
        h = random_head(rng, nrng, config)
        got.append((h.kind, *h.q.shape, *(int(getattr(h.regs, f)) for f in fields)))
    assert got == [("extremes", 4, 2, 0, 0, 0, 1, 1, -256, 4095, 1, 33428),
                   ("peaked", 1, 2, 1, 1, 180, 0, 1, -256, 4095, 1, 33428),
                   ("zeros", 4, 2, 0, 0, 0, 1, 0, 256, 56, 1, 33428),
                   ("peaked", 1, 2, 0, 1, 230, 1, 0, 256, 4095, 0, 8357)]


@pytest.mark.parametrize("wanted", sorted(STEERS))
def test_steering_hits_each_bin(wanted):
    """Wanted alone, each steerable bin is hit within 40 heads on a config that can hit
    it."""
    steered = Coverage()
    config = (REACH_TOPK if wanted in TOPK_BINS else
              REACH_THRESHOLD if wanted in THRESHOLD_BINS else REACH_ALL)
    for i in range(40):
        _heads(config, 1000 + i, 1, [wanted], steered)
        if steered.count(wanted):
            break
    assert steered.count(wanted), f"{wanted}: no hit in 40 steered heads"


def _rounds(count: int, steered: bool) -> list[list[str]]:
    """The regression's loop in small: rounds of 5 heads on each of seven configs, each
    round steered (or not) toward the head and error holes of the rounds before; the
    holes after each round (seed 108's config has the threshold selector)."""
    cov, holes = Coverage(), []
    for r in range(count):
        want = holes[-1] if steered and holes else []
        for s in (*range(100, 106), 108):
            _heads(random_config(s), 100 * s + r, 5, want, cov)
        holes.append([b for b in cov.holes() if b in STEERS])
    return holes


def test_steering_fills_the_holes_plain_draws_leave():
    plain, steered = _rounds(4, False), _rounds(3, True)
    assert len(plain[0]) == len(steered[0]) >= 10       # the same first round
    assert steered[-1] == []
    # four plain rounds leave rare bins (an error code is 1 head in 90) empty
    assert plain[-1] and all(b.startswith("error case:") for b in plain[-1]), plain[-1]
    assert ERROR_CASE_P / len(PROVOKED) < 0.02


def test_fill_seeds_pick_configs_that_hit_config_holes():
    cov = Coverage()
    for s in range(100, 106):
        cov.sample_config(random_config(s))
    holes = cov.holes("configs")
    picked = fill_seeds(holes, 106, 4)
    assert 0 < len(picked) <= 4 and all(s >= 106 for s, _ in picked)
    filled = set()
    for seed, bins in picked:
        assert set(bins) <= config_bins(random_config(seed)) & set(holes) - filled
        filled |= set(bins)
    assert len(picked[0][1]) >= max(len(b) for _, b in picked)   # the best seed first
    assert fill_seeds([], 106, 4) == [] and fill_seeds(holes, 106, 0) == []
