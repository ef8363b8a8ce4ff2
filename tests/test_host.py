"""The host driver (:mod:`hdp_rtl.host`) without a simulator: register words against the
register map, stream packing against the element ranges of ``golden.quantize``, status
and counter decoding, and :class:`HDPDriver` against an in-memory core (``fake_hdp``)."""
import asyncio
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import golden
from fake_hdp import FakeHDP
from hdp_rtl.config import ConfigError, HDPConfig, Registers
from golden import spatten
from hdp_rtl.host import (BusError, Counters, HDPDriver, HDPError, Status, head_cycle_bound,
                          msb_only, pack_head, pack_tensor, recompute_rows, register_writes,
                          unpack_output)
from hdp_rtl.regmap import COUNTERS, FLAG_FIELDS, ErrorCode, registers_by_name

CONFIGS = {
    "edge": HDPConfig.preset("edge"),
    "default": HDPConfig.preset("default"),
    "server": HDPConfig.preset("server"),            # hi_bits > 32: head_threshold_hi
    "edge-B6": HDPConfig.preset("edge").replace(frac_bits=2),            # 6-bit elements in 8-bit lanes
    "lanes16": HDPConfig.preset("edge").replace(int_bits=8, frac_bits=4),  # 16-bit in and out lanes
    "edge-topk": HDPConfig.preset("edge").replace(selector="topk"),   # the block_k register
    "edge-threshold": HDPConfig.preset("edge").replace(selector="threshold"),  # score_threshold
}
#: small enough for quick golden heads; 6-bit elements in 8-bit lanes allow error 8
# (2 chunks: accumulators in flip-flops; the counters built, which the checks read)
SMALL = HDPConfig.preset("edge").replace(seq_max=12, head_dim=8, axis_elems=2, frac_bits=2,
                                         pv_acc_ram=False, perf_counters=True)


def run(coro):
    return asyncio.run(coro)


def quantized(rng, n, d, config):
    """Integers over the whole element range: a third saturate to data_min/data_max."""
    x = rng.standard_normal((n, d)) * 2.0 ** (config.int_bits - 1)
    return golden.quantize(x, config, exp=0)[0]


def lanes(data: bytes, bits: int) -> list[int]:
    """The signed little-endian lanes of ``data``, decoded one by one."""
    width = bits // 8
    return [int.from_bytes(data[i:i + width], "little", signed=True)
            for i in range(0, len(data), width)]


def random_registers(rng, config, n):
    return Registers(
        seq_len=n, causal=bool(rng.integers(2)), head_prune_enable=bool(rng.integers(2)),
        head_threshold=int(rng.integers(0, 1 << config.hi_bits)),
        block_prune_enable=bool(rng.integers(2)), block_rule=int(rng.integers(2)),
        rho=int(rng.integers(-256, 257)), delta=int(rng.integers(0, 1 << config.delta_bits)),
        approx_enable=bool(rng.integers(2)),
        score_scale=int(rng.integers(1, 1 << config.score_scale_bits)),
        block_k=int(rng.integers(1, 2 * config.block_col_count + 2)),
        score_threshold=int(rng.integers(-(1 << (config.sint_bits - 1)),
                                         1 << (config.sint_bits - 1))),
        pq_threshold=int(rng.integers(0, 1 << (config.prob_bits + 1))))


def test_the_driver_needs_no_simulator():
    code = "import sys, hdp_rtl.host; assert not {'cocotb', 'cocotbext'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- packing -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pack_tensor_lanes_rows_and_padding(name):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(1)
    d = max(1, cfg.head_dim - 3)                 # a narrow head: rows zero-padded
    x = quantized(rng, 5, d, cfg)
    assert x.min() == cfg.data_min and x.max() == cfg.data_max
    data = pack_tensor(x, cfg)
    assert len(data) * 8 == 5 * cfg.beats_per_row * cfg.s_axis_bits
    got = np.array(lanes(data, cfg.in_lane_bits)).reshape(5, cfg.head_dim)
    assert np.array_equal(got[:, :d], x) and not got[:, d:].any()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pack_tensor_refuses_values_it_cannot_send(name):
    cfg = CONFIGS[name]
    for bad in (cfg.data_min - 1, cfg.data_max + 1):
        with pytest.raises(ValueError, match="range"):
            pack_tensor(np.full((2, 2), bad), cfg)
    with pytest.raises(ValueError, match="head_dim"):
        pack_tensor(np.zeros((2, cfg.head_dim + 1), int), cfg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_unpack_output_reads_signed_lanes(name):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(2)
    lo, hi = -(1 << (cfg.out_bits - 1)), (1 << (cfg.out_bits - 1)) - 1
    want = rng.integers(lo, hi + 1, (3, cfg.head_dim))
    want[0, :2] = lo, hi
    data = b"".join(int(v).to_bytes(cfg.out_lane_bits // 8, "little", signed=True)
                    for v in want.flat)
    assert np.array_equal(unpack_output(data, 3, cfg), want)
    with pytest.raises(ValueError, match="bytes"):
        unpack_output(data[:-1], 3, cfg)


def test_pack_then_unpack_round_trip_when_lanes_match():
    cfg = CONFIGS["lanes16"]
    assert cfg.in_lane_bits == cfg.out_lane_bits
    x = quantized(np.random.default_rng(3), 4, cfg.head_dim, cfg)
    assert np.array_equal(unpack_output(pack_tensor(x, cfg), 4, cfg), x)


# ---- register words ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_register_writes_decode_back_to_the_registers(name):
    cfg = CONFIGS[name]
    rmap = registers_by_name(cfg)
    rng = np.random.default_rng(4)
    for _ in range(20):
        regs = random_registers(rng, cfg, int(rng.integers(1, cfg.seq_max + 1)))
        writes = register_writes(regs, cfg)
        written = {name: word for name, _, word in writes}
        assert set(written) == {r.name for r in rmap.values() if r.access == "rw"}
        assert [off for _, off, _ in writes] == sorted(rmap[n].offset for n in written)
        for name_, offset, word in writes:
            assert offset == rmap[name_].offset and word & ~rmap[name_].mask == 0
        fields = {k: v for n, word in written.items() for k, v in rmap[n].decode(word).items()}
        low = rmap["head_threshold"].field("head_threshold").width
        threshold = fields["head_threshold"] | fields.get("head_threshold_hi", 0) << low
        assert threshold == regs.head_threshold
        for key in ("seq_len", "rho", "delta", "score_scale", *FLAG_FIELDS):
            assert fields[key] == int(getattr(regs, key)), key
        # topk only; any value from block_col_count up keeps every row whole
        assert fields.get("block_k") == (min(regs.block_k, cfg.block_col_count)
                                         if cfg.selector == "topk" else None)
        # threshold only: signed, decoded back from the field's two's complement
        assert fields.get("score_threshold") == (regs.score_threshold
                                                 if cfg.selector == "threshold" else None)
        # progressive_report only; the read index written 0
        assert fields.get("pq_threshold") == (regs.pq_threshold
                                              if cfg.progressive_report else None)
        assert fields.get("pq_index") == (0 if cfg.progressive_report else None)


def test_register_writes_split_the_threshold_and_encode_rho():
    cfg = CONFIGS["server"]
    words = {n: w for n, _, w in register_writes(
        Registers(seq_len=1, head_threshold=(3 << 32) | 5, rho=-1), cfg)}
    assert (words["head_threshold"], words["head_threshold_hi"]) == (5, 3)
    assert words["rho"] == 0xFFFF_FFFF
    edge = {n: w for n, _, w in register_writes(Registers(seq_len=1, head_threshold=5),
                                                  CONFIGS["edge"])}
    assert (edge["head_threshold"], edge["head_threshold_hi"]) == (5, 0)   # no _hi field


def test_register_writes_refuse_values_that_do_not_fit():
    cfg = CONFIGS["edge"]
    for bad in (dict(seq_len=cfg.seq_max + 1), dict(delta=1 << cfg.delta_bits),
                dict(seq_len=1, head_threshold=1 << cfg.hi_bits)):
        with pytest.raises(ConfigError):
            register_writes(Registers(**{"seq_len": 1, **bad}), cfg)


# ---- status, counters, errors --------------------------------------------------------------

def test_status_decodes_every_field_of_the_register_map():
    cfg = CONFIGS["edge"]
    reg = registers_by_name(cfg)["status"]
    assert [f.name for f in dataclasses.fields(Status)] == [f.name for f in reg.fields]
    for code in ErrorCode:
        for bits in range(16):
            values = dict(busy=bits & 1, done=bits >> 1 & 1, error=bits >> 2 & 1,
                          head_pruned=bits >> 3 & 1)
            st = Status.decode(reg.word(**values, error_code=code) | ~reg.mask & 0xFFFF_FFFF, cfg)
            assert st.error_code is code
            assert {k: int(getattr(st, k)) for k in values} == values


def test_counters_have_one_field_per_counter_of_the_register_map():
    assert [f.name for f in dataclasses.fields(Counters)] == list(COUNTERS)
    for name, text in COUNTERS.items():
        assert f"{name} : int" in Counters.__doc__ and text[1:] in Counters.__doc__
    with pytest.raises(dataclasses.FrozenInstanceError):
        Counters(**dict.fromkeys(COUNTERS, 0)).words_in = 1


def test_hdp_error_carries_the_code_and_its_description():
    for code in ErrorCode:
        err = HDPError(int(code))
        assert err.code is code and err.description == code.description
        assert code.description in str(err) and code.name in str(err)


def test_head_cycle_bound_covers_the_mac_bound_of_a_dense_head():
    for cfg in (CONFIGS["edge"], SMALL, SMALL.replace(int_lanes=1, mac_lanes=1)):
        rng = np.random.default_rng(5)
        for n in (1, cfg.seq_max):
            q, k, v = (quantized(rng, n, cfg.head_dim, cfg) for _ in range(3))
            res = golden.attention_head(q, k, v, cfg, Registers(seq_len=n, block_prune_enable=False,
                                                                score_scale=1))
            ideal = (res.int_macs / cfg.int_lanes + (res.score_macs + res.pv_macs) / cfg.mac_lanes
                     + 4 * n * cfg.beats_per_row)
            assert head_cycle_bound(cfg, n) >= 2 * ideal


# ---- the driver against an in-memory core --------------------------------------------------

def small_head(rng, n, cfg=SMALL, **fields):
    q, k, v = (quantized(rng, n, cfg.head_dim - 1, cfg) for _ in range(3))
    regs = Registers(seq_len=n, score_scale=1 << 16, delta=40, **fields)
    return q, k, v, regs


def check_run(got, q, k, v, regs, cfg=SMALL, error=ErrorCode.NONE):
    res = golden.attention_head(q, k, v, cfg, regs)
    assert np.array_equal(got.out, res.out)
    assert got.counters.words_in == 3 * regs.seq_len * cfg.beats_per_row
    assert (got.counters.blocks_kept, got.counters.pv_macs) == (res.blocks_kept, res.pv_macs)
    assert got.status.done and not got.status.busy and got.status.head_pruned == res.head_pruned
    assert got.status.error == (error != ErrorCode.NONE) and got.status.error_code is error


def test_driver_runs_heads_bit_exact():
    async def main():
        core = FakeHDP(SMALL, busy_reads=3)
        drv = HDPDriver(core, SMALL)
        assert await drv.read_config_hash() == int(SMALL.digest(), 16) & 0xFFFF_FFFF
        rng = np.random.default_rng(6)
        for i, n in enumerate((1, 5, SMALL.seq_max)):
            q, k, v, regs = small_head(rng, n, causal=i == 1, block_rule=i % 2)
            check_run(await drv.run_head(q, k, v, regs), q, k, v, regs)
        pruned = regs.replace(head_prune_enable=True, head_threshold=(1 << SMALL.hi_bits) - 1)
        check_run(await drv.run_head(q, k, v, pruned), q, k, v, pruned)
        assert (await drv.counters()).heads_pruned == 1
    run(main())


def test_driver_reads_back_only_field_bits():
    async def main():
        drv = HDPDriver(FakeHDP(SMALL), SMALL)
        for reg in drv.registers.values():
            if reg.access == "rw":
                await drv.write_register(reg.name, -1)
                assert await drv.read_register(reg.name) == reg.mask, reg.name
    run(main())


@pytest.mark.parametrize("name, value, code", [
    ("seq_len", 0, ErrorCode.SEQ_LEN_ZERO),
    ("seq_len", SMALL.seq_max + 1, ErrorCode.SEQ_LEN_TOO_BIG),
    ("seq_len", 1 << SMALL.seq_len_bits | 1, ErrorCode.SEQ_LEN_TOO_BIG),   # a bit past the field
    ("flags", 1 << len(FLAG_FIELDS), ErrorCode.FLAGS_RESERVED),
    ("rho", 257, ErrorCode.RHO_RANGE),
    ("rho", -300, ErrorCode.RHO_RANGE),
    ("delta", 1 << SMALL.delta_bits, ErrorCode.FIELD_OVERFLOW),
    ("head_threshold_hi", 1, ErrorCode.FIELD_OVERFLOW),
])
def test_driver_raises_on_a_refused_start_and_recovers(name, value, code):
    async def main():
        drv = HDPDriver(FakeHDP(SMALL), SMALL)
        q, k, v, regs = small_head(np.random.default_rng(7), 4)
        await drv.program(regs)
        await drv.write_register(name, value)
        with pytest.raises(HDPError) as err:
            await drv.start()
        assert err.value.code is code and code.refuses_start
        st = await drv.status()
        assert st.error and st.error_code is code and not st.busy
        await drv.clear_error()
        assert not (await drv.status()).error
        check_run(await drv.run_head(q, k, v, regs), q, k, v, regs)
    run(main())


def test_driver_bad_address_and_start_while_busy():
    async def main():
        drv = HDPDriver(FakeHDP(SMALL), SMALL)
        for offset in (0xFC, drv.registers["status"].offset, 0x09):
            with pytest.raises(BusError):
                await drv.bus.write32(offset, 1)
            assert (await drv.status()).error_code is ErrorCode.BAD_ADDRESS
        await drv.clear_error()
        q, k, v, regs = small_head(np.random.default_rng(8), 6)
        await drv.program(regs)
        await drv.start()
        st = await drv.start()                        # ignored: the running head goes on
        assert st.busy and st.error_code is ErrorCode.START_WHILE_BUSY
        got = await drv.finish(pack_head(q, k, v, SMALL), regs.seq_len)
        check_run(got, q, k, v, regs, error=ErrorCode.START_WHILE_BUSY)
    run(main())


def test_driver_reports_input_errors_and_the_head_completes():
    async def main():
        drv = HDPDriver(FakeHDP(SMALL), SMALL)
        rng = np.random.default_rng(9)
        q, k, v, regs = small_head(rng, 5)
        packets = pack_head(q, k, v, SMALL)          # K, Q, V
        beat = SMALL.s_axis_bits // 8
        for label, sent in (("tlast early", [packets[0][:beat], packets[0][beat:], *packets[1:]]),
                            ("tlast missing", [packets[0], packets[1] + packets[2]])):
            await drv.program(regs)
            await drv.start()
            check_run(await drv.finish(sent, regs.seq_len), q, k, v, regs,
                      error=ErrorCode.INPUT_TLAST)
            await drv.clear_error()
        B = SMALL.data_bits          # lane 0 of K: 2**(B-1) is not the sign extension of -2**(B-1)
        bad = bytes([1 << (B - 1)]) + packets[0][1:]
        await drv.start()
        got = await drv.finish([bad, *packets[1:]], regs.seq_len)
        check_run(got, q, np.vstack([[-(1 << (B - 1)), *k[0, 1:]], k[1:]]), v, regs,
                  error=ErrorCode.INPUT_LANE)
    run(main())


def test_driver_wait_idle_and_config_hash_are_checked():
    async def main():
        drv = HDPDriver(FakeHDP(SMALL, busy_reads=10), SMALL, busy_polls=5)
        q, k, v, regs = small_head(np.random.default_rng(10), 2)
        with pytest.raises(TimeoutError, match="busy=1"):
            await drv.run_head(q, k, v, regs)
        other = HDPDriver(FakeHDP(SMALL, config_hash=1), SMALL)
        with pytest.raises(ConfigError, match="another config"):
            await other.read_config_hash()
        with pytest.raises(ValueError, match="rows"):
            await other.run_head(q[:1], k, v, regs)
    run(main())


def test_driver_topk_block_k_and_error_12():
    """Selector topk: block_k programmed with every head (heads bit-exact at 1, 2 and
    beyond the blocks of a row); block_k 0 with block pruning on refuses the start
    (error 12), with it off runs; the driver refuses to program it; an hdp build has no
    block_k register (a write there is error 5)."""
    cfg = SMALL.replace(selector="topk")

    async def main():
        drv = HDPDriver(FakeHDP(cfg), cfg)
        rng = np.random.default_rng(12)
        for i, block_k in enumerate((1, 2, cfg.block_col_count, 3 * cfg.block_col_count)):
            q, k, v, regs = small_head(rng, cfg.seq_max, cfg, causal=i % 2 == 1,
                                       block_k=block_k)
            check_run(await drv.run_head(q, k, v, regs), q, k, v, regs, cfg)
        await drv.program(regs)
        await drv.write_register("block_k", 0)
        with pytest.raises(HDPError) as err:
            await drv.start()
        assert err.value.code is ErrorCode.BLOCK_K_ZERO and ErrorCode.BLOCK_K_ZERO.refuses_start
        await drv.clear_error()
        dense = regs.replace(block_prune_enable=False, block_k=0)
        check_run(await drv.run_head(q, k, v, dense), q, k, v, dense, cfg)
        with pytest.raises(ConfigError, match="block_k"):
            register_writes(regs.replace(block_k=0), cfg)
        hdp = HDPDriver(FakeHDP(SMALL), SMALL)
        assert "block_k" not in hdp.registers
        assert "block_k" not in {n for n, _, _ in register_writes(regs, SMALL)}
        with pytest.raises(BusError):
            await hdp.bus.write32(drv.registers["block_k"].offset, 1)
    run(main())


def test_driver_threshold_score_threshold():
    """Selector threshold: score_threshold programmed with every head (heads bit-exact
    at the field's ends, negative and positive); a value outside its signed range is
    refused by the driver, a 32-bit sign extension written by hand refuses the start
    (error 6); an hdp build has no score_threshold register (a write there is error 5)."""
    cfg = SMALL.replace(selector="threshold")
    half = 1 << (cfg.sint_bits - 1)

    async def main():
        drv = HDPDriver(FakeHDP(cfg), cfg)
        rng = np.random.default_rng(13)
        for i, t in enumerate((-half, -3, 0, 5, half - 1)):
            q, k, v, regs = small_head(rng, cfg.seq_max, cfg, causal=i % 2 == 1,
                                       score_threshold=t)
            check_run(await drv.run_head(q, k, v, regs), q, k, v, regs, cfg)
        for bad in (-half - 1, half):
            with pytest.raises(ConfigError, match="score_threshold"):
                register_writes(regs.replace(score_threshold=bad), cfg)
        await drv.program(regs)
        await drv.write_register("score_threshold", 0xFFFF_FFFF)     # -1, sign-extended
        with pytest.raises(HDPError) as err:
            await drv.start()
        assert err.value.code is ErrorCode.FIELD_OVERFLOW
        await drv.clear_error()
        hdp = HDPDriver(FakeHDP(SMALL), SMALL)
        assert "score_threshold" not in hdp.registers
        with pytest.raises(BusError):
            await hdp.bus.write32(drv.registers["score_threshold"].offset, 1)
    run(main())


# ---- progressive quantization --------------------------------------------------------------

def test_msb_only_and_recompute_rows():
    cfg = SMALL
    x = np.array([[cfg.data_min, -1, 0, 1, 3, 4, 5, cfg.data_max]])   # F = 2
    assert msb_only(x, cfg).tolist() == [[cfg.data_min, -4, 0, 0, 0, 4, 4, cfg.data_max - 3]]
    none, some = np.zeros(7, bool), np.array([0, 1, 0, 1, 0, 0, 0], bool)
    assert (recompute_rows(none, True), recompute_rows(none, False)) == (0, 0)
    assert (recompute_rows(some, True), recompute_rows(some, False)) == (4, 7)


def test_driver_progressive_head_bit_exact():
    """run_progressive_head (MSB pass, flags, full-precision prefix or head) equals
    golden.spatten.progressive_head for causal and not, approximation on and off, over
    thresholds from none to every row; the flags and their count as the core reports
    them; the second pass only when a row is flagged, over the causal prefix; more than
    32 rows (two flag words); refused when pruning is on, or without the flags."""
    cfg = SMALL.replace(seq_max=40, progressive_report=True)
    one = 1 << cfg.prob_bits

    async def main():
        core = FakeHDP(cfg)
        drv = HDPDriver(core, cfg)
        rng = np.random.default_rng(12)
        seen = set()
        for i in range(16):
            n = int(rng.choice([1, 7, 33, cfg.seq_max]))
            causal = i % 2 == 1
            q, k, v, regs = small_head(rng, n, cfg, causal=causal, approx_enable=i % 4 < 2,
                                       block_prune_enable=False)
            regs = regs.replace(score_scale=int(rng.choice([1 << 12, 1 << 15, 1 << 18])))
            # (and the MSB pass's median row maximum: some rows flagged, not all)
            msb = golden.attention_head(msb_only(q, cfg), msb_only(k, cfg), v, cfg, regs)
            median = int(np.median(np.where(msb.keep, msb.probs, 0).max(axis=1))) + 1
            threshold = int(rng.choice([0, one // 3, one + 1, median, median]))
            want_out, _, _, want_redo = spatten.progressive_head(q, k, v, cfg, regs, threshold)
            got = await drv.run_progressive_head(q, k, v, regs, threshold)
            assert np.array_equal(got.out, want_out), i
            assert np.array_equal(got.redo, want_redo) and got.count == want_redo.sum(), i
            m = recompute_rows(want_redo, causal)
            assert (got.lsb is None) == (m == 0)
            if got.lsb is not None:
                assert got.lsb.out.shape[0] == m
                flags = await drv.progressive_flags(m)     # the second pass flags nothing
                assert flags.count == 0 and not flags.flags.any()
            seen.add((causal, 0 < m < n, 0 < want_redo.sum() < n))
        assert {(True, True, True), (False, False, True)} <= seen, seen
        # the flags of a head as the core reports them
        q, k, v, regs = small_head(rng, 37, cfg, block_prune_enable=False)
        regs = regs.replace(score_scale=1 << 15, pq_threshold=one // 3)
        res = golden.attention_head(q, k, v, cfg, regs)
        await drv.run_head(q, k, v, regs)
        flags = await drv.progressive_flags(37)
        want = spatten.progressive_rows(res.probs, res.keep, one // 3)
        assert np.array_equal(flags.flags, want) and flags.count == want.sum()
        with pytest.raises(ValueError, match="block_prune_enable"):
            await drv.run_progressive_head(q, k, v, regs.replace(block_prune_enable=True), 1)
        with pytest.raises(ConfigError, match="pq_threshold"):
            await drv.run_progressive_head(q, k, v, regs, 1 << (cfg.prob_bits + 1))
        edge = HDPDriver(FakeHDP(SMALL), SMALL)           # no flags built: no registers
        assert not {"pq_threshold", "pq_flags"} & set(edge.registers)
        with pytest.raises(ConfigError, match="progressive_report"):
            await edge.run_progressive_head(q, k, v, regs, 1)
        with pytest.raises(ConfigError, match="progressive_report"):
            await edge.progressive_flags(3)
    run(main())


# ---- abort and input timeout ---------------------------------------------------------------

def test_register_writes_carry_the_input_timeout():
    cfg = CONFIGS["edge"]
    field = registers_by_name(cfg)["input_timeout"].field("input_timeout")
    regs = Registers(seq_len=1)
    assert dict((n, w) for n, _, w in register_writes(regs, cfg))["input_timeout"] == 0
    top = (1 << field.width) - 1
    for cycles in (1, 1000, top):
        words = {n: w for n, _, w in register_writes(regs, cfg, input_timeout=cycles)}
        assert field.get(words["input_timeout"]) == cycles
    for bad in (-1, top + 1):
        with pytest.raises(ConfigError, match="input_timeout"):
            register_writes(regs, cfg, input_timeout=bad)
        with pytest.raises(ConfigError, match="input_timeout"):
            HDPDriver(FakeHDP(cfg), cfg, input_timeout=bad)


def test_driver_abort_drops_a_short_head_and_the_next_runs():
    async def main():
        core = FakeHDP(SMALL)
        drv = HDPDriver(core, SMALL, input_timeout=300)
        q, k, v, regs = small_head(np.random.default_rng(11), 5)
        await drv.program(regs)
        assert core.value["input_timeout"] == 300
        await drv.start()
        await drv.bus.send_packet(pack_head(q, k, v, SMALL)[0][:SMALL.s_axis_bits // 8])
        st = await drv.abort()
        assert not st.busy and not st.done and st.error and st.error_code is ErrorCode.ABORTED
        assert core.dropped == 1
        await drv.clear_error()
        check_run(await drv.run_head(q, k, v, regs), q, k, v, regs)
        st = await drv.abort()                      # idle: nothing changes
        assert st.done and not st.busy and not st.error, st
    run(main())


def test_driver_aborts_a_head_that_hangs():
    """wait_idle's timeout: the head is aborted before the TimeoutError reaches the caller,
    and the next head runs."""
    async def main():
        core = FakeHDP(SMALL, busy_reads=10)
        drv = HDPDriver(core, SMALL, busy_polls=5)
        q, k, v, regs = small_head(np.random.default_rng(12), 3)
        with pytest.raises(TimeoutError, match="busy=1.*aborted.*error_code=10"):
            await drv.run_head(q, k, v, regs)
        st = await drv.status()
        assert not st.busy and st.error_code is ErrorCode.ABORTED and core.dropped == 1
        await drv.clear_error()
        core.busy_reads = 1
        check_run(await drv.run_head(q, k, v, regs), q, k, v, regs)
    run(main())


def test_driver_channel_mask():
    """run_head's channel_mask: the kept channels packed to the front of Q and K and
    channel_drop = head_dim - kept written (read back), each head bit-exact with
    golden.channels.attention_head_channels (outputs, int_macs and score_macs) for every
    channel, a scattered half, a partial chunk, one and none (inputs narrower than
    head_dim); a head without a mask writes channel_drop 0 again; a build without
    channel_pruning has no register and refuses a mask that drops a channel."""
    from golden.channels import attention_head_channels
    cfg = SMALL.replace(channel_pruning=True)
    d = cfg.head_dim

    async def main():
        drv = HDPDriver(FakeHDP(cfg), cfg)
        rng = np.random.default_rng(13)
        masks = [np.ones(d, bool), np.arange(d) % 2 == 1, np.arange(d) < 3,
                 np.arange(d) == 5, np.zeros(d, bool)]
        for i, mask in enumerate(masks):
            q, k, v, regs = small_head(rng, cfg.seq_max - i, cfg, causal=i % 2 == 1)
            got = await drv.run_head(q, k, v, regs, channel_mask=mask)
            want = attention_head_channels(q, k, v, cfg, regs, mask)
            assert np.array_equal(got.out, want.out), i
            assert (got.counters.int_macs, got.counters.score_macs) == \
                (want.int_macs, want.score_macs)
            assert await drv.read_register("channel_drop") == d - int(mask.sum())
        await drv.run_head(q, k, v, regs)
        assert await drv.read_register("channel_drop") == 0
        with pytest.raises(ConfigError, match="channel_drop"):
            register_writes(regs, cfg, channel_drop=d + 1)
        plain = HDPDriver(FakeHDP(SMALL), SMALL)
        assert "channel_drop" not in plain.registers
        check_run(await plain.run_head(q, k, v, regs, channel_mask=np.ones(d, bool)),
                  q, k, v, regs)
        with pytest.raises(ConfigError, match="channel"):
            await plain.run_head(q, k, v, regs, channel_mask=masks[1])
    run(main())
