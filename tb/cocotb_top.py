"""End-to-end tests of the generated HDP co-processor against the golden model, through
the host driver (:mod:`hdp_rtl.host`).

The pytest side (tb/test_top.py) passes the config as HDP_CONFIG, the stall
probabilities as HDP_STALL and the number of back-to-back random heads as HDP_HEADS; each cocotb test here is one group of cases.
"""
import itertools
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout

import golden
import golden.channels
from golden.spatten import progressive_head, progressive_rows
from golden.vectors import load_minilm_heads
from hdp_host import QUIET_CYCLES, HDPHost
from hdp_rtl.config import HDPConfig
from hdp_rtl.host import BusError, HDPError, msb_only, pack_head, recompute_rows
from hdp_rtl.regmap import FLAG_FIELDS, INPUT_ORDER, PQ_BASE, ErrorCode
from port_monitors import AxisRules, CycleLog
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
STALL = env_json("HDP_STALL", 0.3)
SMALL_N = min(CONFIG.seq_max, 20)
#: Heads of random_heads_back_to_back (the Icarus smoke run takes the first three).
HEADS = env_json("HDP_HEADS", 6)
#: A byte address with no register.
RESERVED = 0xFC
#: Tokens of the heads the abort tests cut short.
ABORT_N = min(CONFIG.seq_max, 8)
#: Cycles from the AW/W handshake of a ``ctrl.abort`` write to ``s_axis_tready`` low:
#: the AXI4-Lite front end's request register, the top's delay, the sequencer's ABORT.
ABORT_HALT_CYCLES = 3
#: Cycles from the last input beat to ``s_axis_tready`` low under ``input_timeout`` T:
#: T + 1 cycles without a beat, the registered compare, ABORT.
TIMEOUT_HALT_CYCLES = 3


async def _setup(dut, seed=0):
    await past_time_zero()
    host = HDPHost(dut, CONFIG, idle=STALL, backpressure=STALL, seed=seed)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    return host


def random_head(rng: np.random.Generator, n: int, peaked: bool = False, **fields):
    """Float Q/K/V of ``n`` tokens, quantised, and matching registers."""
    d = CONFIG.head_dim
    xq, xk, xv = rng.standard_normal((3, n, d))
    if peaked:                       # keys close to queries: low-entropy attention rows
        xk = xq[rng.permutation(n)] * 2.0 + 0.3 * xk
    q, k, v, regs, _ = golden.prepare_head(xq, xk, xv, CONFIG, logit_gap=3.0, **fields)
    return q, k, v, regs


async def expect_raise(exc_type, awaitable, what: str):
    """Await ``awaitable``, which must raise ``exc_type``; return the exception."""
    try:
        await awaitable
    except exc_type as err:
        return err
    raise AssertionError(f"{what}: no {exc_type.__name__} raised")


async def expect_refused(host: HDPHost, code: ErrorCode, what: str) -> None:
    """A start now is refused with ``code``, the core staying idle; clear_error clears it."""
    err = await expect_raise(HDPError, host.driver.start(), what)
    assert err.code == code, f"{what}: refused with {err}, expected error {int(code)}"
    st = await host.driver.status()
    assert st.error and st.error_code == code and not st.busy, f"{what}: {st}"
    await host.driver.clear_error()
    st = await host.driver.status()
    assert not st.error and st.error_code == ErrorCode.NONE, f"{what}, cleared: {st}"


def _rules_held_under_stalls(rules):
    """``rules`` (an :class:`AxisRules`) saw no violation, and saw a stall to check."""
    rules.check()
    assert rules.stalls, "the m_axis rules were never exercised by a stall"


@cocotb.test()
async def random_heads_back_to_back(dut):
    """Random heads and random registers, several in a row without a reset."""
    host = await _setup(dut, seed=1)
    rng = np.random.default_rng(11)
    prng = random.Random(12)
    for i in range(HEADS):
        n = prng.randint(1, SMALL_N)
        fields = dict(causal=prng.random() < 0.3, block_rule=prng.randint(0, 1),
                      rho=prng.choice([-256, -77, 0, 100, 256]),
                      approx_enable=prng.random() < 0.5,
                      block_prune_enable=prng.random() < 0.8)
        q, k, v, regs = random_head(rng, n, peaked=i % 2 == 1, **fields)
        await host.check_head(q, k, v, regs, label=f"head {i}")


@cocotb.test()
async def sequence_length_extremes(dut):
    """seq_len 1, and seq_len = seq_max with the causal mask."""
    host = await _setup(dut, seed=2)
    rng = np.random.default_rng(21)
    q, k, v, regs = random_head(rng, 1)
    await host.check_head(q, k, v, regs, label="seq_len 1")
    q, k, v, regs = random_head(rng, CONFIG.seq_max, peaked=True, causal=True)
    await host.check_head(q, k, v, regs, label="seq_len seq_max, causal")


@cocotb.test()
async def block_rules_and_ragged_blocks(dut):
    """Mean rule at rho -256, 0, 256 and the delta rule, on a ragged last block."""
    host = await _setup(dut, seed=3)
    rng = np.random.default_rng(31)
    n = min(CONFIG.block_cols * 3 + 1, CONFIG.seq_max)
    for fields in (dict(block_rule=0, rho=-256), dict(block_rule=0, rho=0),
                   dict(block_rule=0, rho=256), dict(block_rule=1),
                   dict(block_rule=1, causal=True)):
        q, k, v, regs = random_head(rng, n, peaked=True, **fields)
        await host.check_head(q, k, v, regs, label=str(fields))


@cocotb.test()
async def head_pruning_and_approximation(dut):
    """A head pruned at threshold HI + 1, kept at HI; approximation on and off."""
    host = await _setup(dut, seed=4)
    rng = np.random.default_rng(41)
    q, k, v, regs = random_head(rng, 9)
    hi = golden.attention_head(q, k, v, CONFIG, regs).head_importance
    pruned = regs.replace(head_prune_enable=True, head_threshold=hi + 1)
    await host.check_head(q, k, v, pruned, label="pruned head")
    assert (await host.driver.counters()).heads_pruned == int(CONFIG.perf_counters)
    await host.check_head(q, k, v, regs.replace(head_prune_enable=True, head_threshold=hi),
                          label="head at threshold")
    dense = regs.replace(block_prune_enable=False)
    for approx in (False, True):
        c = await host.check_head(q, k, v, dense.replace(approx_enable=approx), label=f"approx {approx}")
    dut._log.info("dense head of 9: %d cycles", c.cycles_total)


def channel_masks(rng: np.random.Generator) -> list:
    """The channel masks of ``channel_mask_heads``: every channel; half the channels,
    scattered (packed: half the MAC array's chunks); a chunk and a part of the next (a
    partial chunk, zeroed in Q by the core); one channel; none."""
    d, L = CONFIG.head_dim, CONFIG.mac_lanes

    def keep(count):
        mask = np.zeros(d, bool)
        mask[rng.choice(d, count, replace=False)] = True
        return mask

    return [("all", np.ones(d, bool)), ("half", keep(d // 2)),
            ("partial", keep(min(d - 1, L + L // 2 + 1))), ("one", keep(1)),
            ("none", np.zeros(d, bool))]


@cocotb.test()
async def channel_mask_heads(dut):
    """The run-time channel mask (configs with channel_pruning; issue 13) through the
    driver under random stalls: each head bit-exact with
    golden.channels.attention_head_channels and its counters (int_macs and score_macs
    count the kept channels); every channel kept is the dense head bit for bit; the MAC
    array's busy cycles are kept pairs x (ceil(kept / mac_lanes) + head_dim /
    mac_lanes): a score runs only the chunks of the kept channels, P x V all. A build
    without channel_pruning runs the full mask only."""
    host = await _setup(dut, seed=13)
    rng = np.random.default_rng(13)
    d, L = CONFIG.head_dim, CONFIG.mac_lanes
    for i, (name, mask) in enumerate(channel_masks(rng)):
        if not CONFIG.channel_pruning and not mask.all():
            continue
        n = min(CONFIG.seq_max, 6 + 3 * i)
        q, k, v, regs = random_head(rng, n, causal=i % 2 == 1, block_prune_enable=i != 2)
        label = f"channels {name} ({int(mask.sum())} kept)"
        c = await host.check_head(q, k, v, regs, label=label, channel_mask=mask)
        res = golden.channels.attention_head_channels(q, k, v, CONFIG, regs, mask)
        if mask.all():
            dense = golden.attention_head(q, k, v, CONFIG, regs)
            assert (res.out == dense.out).all() and res.int_macs == dense.int_macs
        if CONFIG.perf_counters and not res.head_pruned:
            active = max(1, -(-int(mask.sum()) // L))
            want = res.pairs_kept * (active + d // L)
            assert c.mac_busy == want, f"{label}: mac_busy {c.mac_busy}, expected {want}"


@cocotb.test()
async def spatten_importances(dut):
    """Each key's summed probability and the output importance after a head: random,
    causal with ragged blocks, the delta rule, a shorter head after a longer one (the keys
    past seq_len read 0), a pruned head (all 0), under random stalls."""
    host = await _setup(dut, seed=9)
    rng = np.random.default_rng(91)
    n = min(CONFIG.block_cols * 3 + 1, CONFIG.seq_max)
    if not CONFIG.importance_report:      # not built: the registers read 0
        q, k, v, regs = random_head(rng, n)
        await host.check_head(q, k, v, regs, label="no importance unit")
        for name in ("key_importance", "out_importance"):
            assert await host.driver.read_register(name) == 0, name
        return
    heads = [random_head(rng, n, peaked=True), random_head(rng, n, causal=True),
             random_head(rng, SMALL_N, block_rule=1),
             random_head(rng, max(1, n // 2), block_prune_enable=False)]
    for i, (q, k, v, regs) in enumerate(heads):
        await host.check_head(q, k, v, regs, label=f"importances {i}", importances=True)
    q, k, v, regs = heads[0]
    hi = golden.attention_head(q, k, v, CONFIG, regs).head_importance
    await host.check_head(q, k, v, regs.replace(head_prune_enable=True, head_threshold=hi + 1),
                          label="importances, pruned head", importances=True)
    # the host's reads past seq_len read 0 (not the longer head's sums)
    await host.driver.write_register("key_index", n)
    assert await host.driver.read_register("key_importance") == 0


async def _check_flags(host: HDPHost, want, label: str) -> None:
    """The core's flags and count of the last head are ``want`` (bool per row)."""
    got = await host.driver.progressive_flags(len(want))
    bad = np.flatnonzero(got.flags != want)
    assert bad.size == 0, (f"{label}: {len(bad)} row flags differ, first row {bad[0]}: "
                           f"{got.flags[bad[0]]}, expected {want[bad[0]]}")
    assert got.count == int(np.sum(want)), f"{label}: pq_count {got.count}, expected {np.sum(want)}"


@cocotb.test()
async def progressive_quantization(dut):
    """SpAtten's progressive quantization through the host driver, under random stalls:
    the MSB pass (Q and K's fraction bits zeroed), the flags and their count, and the
    full-precision pass over the flagged rows' prefix (causal) or the whole head, against
    golden.spatten.progressive_head: thresholds flagging some rows (the MSB pass's median
    row maximum), some but not the last (a causal head's second pass over a prefix),
    every row (the full head) and none (the MSB pass alone), approximation on and off; flags of a head with block pruning and of a pruned head (no row has a
    kept pair: none flagged); with HDP_HEADS >= 6 a head of more than 32 rows (two flag
    words) before them (whose second word they read as 0). Without progressive_report
    the registers are not there."""
    host = await _setup(dut, seed=13)
    drv = host.driver
    if not CONFIG.progressive_report:     # not built: no register, a read is SLVERR
        assert "pq_flags" not in drv.registers
        await expect_raise(BusError, host.bus.read32(PQ_BASE + 8), "a read of pq_flags")
        return
    rng = np.random.default_rng(131)
    one = 1 << CONFIG.prob_bits
    # (Icarus, HDP_HEADS 3: about 1 s a head of 6 tokens)
    n = min(CONFIG.seq_max, 8 if HEADS >= 6 else 6)

    def row_maxima(q, k, v, regs):
        """The MSB pass's row maxima (golden)."""
        msb = golden.attention_head(msb_only(q, CONFIG), msb_only(k, CONFIG), v, CONFIG, regs)
        return np.where(msb.keep, msb.probs, 0).max(axis=1)

    def median_threshold(q, k, v, regs):
        """The median distinct row maximum: the rows below it flagged, the others not
        (when the rows' maxima differ)."""
        maxima = np.unique(row_maxima(q, k, v, regs))
        return int(maxima[len(maxima) // 2])

    heads = []
    for i, (causal, approx, kind) in enumerate([
            (False, True, "median"), (True, False, "median"), (True, True, "prefix"),
            (True, True, "all"), (False, False, "none")]):
        size = {"all": max(2, n // 2), "none": 3}.get(kind, n)
        q, k, v, regs = random_head(rng, size, peaked=i in (0, 2), causal=causal,
                                    approx_enable=approx, block_prune_enable=False)
        # prefix: the last row's maximum (strictly below it flagged: never the last row,
        # so the second pass is a shorter head)
        threshold = {"median": lambda: median_threshold(q, k, v, regs),
                     "prefix": lambda: int(row_maxima(q, k, v, regs)[-1]),
                     "all": lambda: one + 1, "none": lambda: 0}[kind]()
        heads.append((q, k, v, regs, threshold, f"progressive {i} ({kind}, causal {causal})"))
    if HEADS >= 6 and CONFIG.seq_max > 32:
        q, k, v, regs = random_head(rng, min(CONFIG.seq_max, 40), causal=True,
                                    block_prune_enable=False)
        heads.append((q, k, v, regs, median_threshold(q, k, v, regs), "progressive, 2 words"))
    shapes = set()                         # (causal, second pass shorter, some rows flagged)
    for q, k, v, regs, threshold, label in heads:
        size = regs.seq_len
        out, _, _, redo = progressive_head(q, k, v, CONFIG, regs, threshold)
        with host.bus.head(label, size):
            run = await drv.run_progressive_head(q, k, v, regs, threshold)
            await host.bus.wait_cycles(QUIET_CYCLES)
            assert not host.bus.stray_output(), label
        bad = np.flatnonzero(run.redo != redo)
        assert bad.size == 0, f"{label}: flag of row {bad[0]} is {run.redo[bad[0]]}"
        assert run.count == int(redo.sum()), f"{label}: pq_count {run.count}, expected {redo.sum()}"
        bad = np.argwhere(run.out != out)
        assert bad.size == 0, (f"{label}: {len(bad)} output words differ, first at {bad[0]}: "
                               f"got {run.out[tuple(bad[0])]}, expected {out[tuple(bad[0])]}")
        m = recompute_rows(redo, bool(regs.causal))
        assert (run.lsb is None) == (m == 0) and (m == 0 or run.lsb.out.shape[0] == m), label
        for part in (run.msb, run.lsb):
            assert part is None or (part.status.done and not part.status.error), \
                f"{label}: {part.status}"
        dut._log.info("%s: n=%d, %d rows flagged, second pass over %d tokens", label, size,
                      int(redo.sum()), m)
        shapes.add((bool(regs.causal), 0 < m < size, 0 < redo.sum() < size))
    # the protocol's cases were all drawn: a causal prefix, some rows of a full head
    assert {(True, True, True), (False, False, True)} <= shapes, shapes
    # any head's flags: with block pruning (golden.spatten.progressive_rows of its kept
    # pairs), then a pruned head (no row has a kept pair)
    q, k, v, regs = random_head(rng, n, peaked=True, pq_threshold=one // 2)
    res = golden.attention_head(q, k, v, CONFIG, regs)
    await host.check_head(q, k, v, regs, label="flags, block pruning")
    await _check_flags(host, progressive_rows(res.probs, res.keep, one // 2),
                       "flags, block pruning")
    if CONFIG.seq_max > 32:                # the first word only (a longer head's 2nd: 0)
        await drv.write_register("pq_index", 1)
        assert await drv.read_register("pq_flags") == 0, f"pq_flags word 1 after {n} rows"
    pruned = regs.replace(head_prune_enable=True, head_threshold=res.head_importance + 1,
                          pq_threshold=one + 1)
    await host.check_head(q, k, v, pruned, label="flags, pruned head")
    await _check_flags(host, np.zeros(n, bool), "flags, pruned head")


@cocotb.test()
async def registers_read_back_their_fields(dut):
    """config_hash matches the config; every writable register written all-ones reads
    back its field mask; a read of a write-only or reserved address answers SLVERR and
    sets no error; programming the registers again makes the next head run."""
    host = await _setup(dut, seed=9)
    drv = host.driver
    await drv.read_config_hash()
    writable = [r for r in drv.registers.values() if r.access == "rw"]
    for reg in writable:
        await drv.write_register(reg.name, 0xFFFF_FFFF)
    for reg in writable:
        got = await drv.read_register(reg.name)
        assert got == reg.mask, f"{reg.name} reads 0x{got:08X}, its fields are 0x{reg.mask:08X}"
    for offset in (drv.registers["ctrl"].offset, RESERVED):
        await expect_raise(BusError, host.bus.read32(offset), f"a read of 0x{offset:02X}")
    assert not (await drv.status()).error
    await expect_refused(host, ErrorCode.SEQ_LEN_TOO_BIG, "all-ones registers")
    q, k, v, regs = random_head(np.random.default_rng(91), 4)
    await host.check_head(q, k, v, regs, label="after all-ones registers")


@cocotb.test()
async def bad_registers_set_error_and_core_stays_usable(dut):
    """Errors 1-7 through the driver: each refused start raises HDPError with its code
    and leaves the core idle; error 5 answers SLVERR; a start while a head runs (7) is
    ignored and that head still finishes bit-exact; the latest error wins; the next good
    head runs."""
    host = await _setup(dut, seed=5)
    drv = host.driver
    rng = np.random.default_rng(51)
    q, k, v, regs = random_head(rng, 5)
    cases = [("seq_len", 0, ErrorCode.SEQ_LEN_ZERO),
             ("seq_len", CONFIG.seq_max + 1, ErrorCode.SEQ_LEN_TOO_BIG),
             ("seq_len", 1 << CONFIG.seq_len_bits | 1, ErrorCode.SEQ_LEN_TOO_BIG),
             ("flags", 1 << len(FLAG_FIELDS), ErrorCode.FLAGS_RESERVED),
             ("flags", 1 << 31, ErrorCode.FLAGS_RESERVED),
             ("rho", 257, ErrorCode.RHO_RANGE), ("rho", -300, ErrorCode.RHO_RANGE)]
    for name in ("head_threshold", "head_threshold_hi", "delta", "score_scale"):
        reg = drv.registers[name]
        if reg.mask != 0xFFFF_FFFF:           # the first bit above the field (bit 0 if none)
            cases.append((name, reg.mask + 1, ErrorCode.FIELD_OVERFLOW))
    for name, value, code in cases:
        await drv.program(regs)
        await drv.write_register(name, value)
        await expect_refused(host, code, f"{name} = {value}")

    for name, offset in (("reserved", RESERVED), ("status", drv.registers["status"].offset)):
        await expect_raise(BusError, host.bus.write32(offset, 1), f"a write to {name}")
        st = await drv.status()
        assert st.error and st.error_code == ErrorCode.BAD_ADDRESS and not st.busy, (name, st)
        await drv.clear_error()

    await drv.write_register("rho", 257)
    await expect_raise(HDPError, drv.start(), "rho = 257")                # error 4, then
    await expect_raise(BusError, host.bus.write32(RESERVED, 1), "reserved")  # 5: the latest wins
    st = await drv.status()
    assert st.error_code == ErrorCode.BAD_ADDRESS, f"error 4 then 5: {st}"
    await drv.clear_error()

    async def start_again():
        st = await drv.start()
        assert st.busy and st.error and st.error_code == ErrorCode.START_WHILE_BUSY, st
    await host.check_head(q, k, v, regs, label="start while busy", while_running=start_again,
                          error=ErrorCode.START_WHILE_BUSY)
    await drv.clear_error()
    await host.check_head(q, k, v, regs, label="after bad registers")


@cocotb.test()
async def input_errors_complete_the_head(dut):
    """tlast early or missing (error 9) and, when lanes are wider than elements, a lane
    that is not a sign extension (error 8, the element taken as its low B bits): the head
    still completes bit-exact with the error in status, and after clear_error the next
    head is bit-exact with no error."""
    host = await _setup(dut, seed=10)
    rng = np.random.default_rng(101)
    n = min(CONFIG.seq_max, 6)
    q, k, v, regs = random_head(rng, n)
    first, second, third = pack_head(q, k, v, CONFIG)      # K, Q, V
    beat = CONFIG.s_axis_bits // 8
    cases = [("tlast early", [first[:beat], first[beat:], second, third], (q, k, v),
              ErrorCode.INPUT_TLAST),
             ("tlast missing", [first, second + third], (q, k, v), ErrorCode.INPUT_TLAST)]
    assert INPUT_ORDER[-1] == "v"
    B, lane = CONFIG.data_bits, CONFIG.in_lane_bits // 8
    if CONFIG.in_lane_bits > B:
        # V[n-1, 1]'s lane holds 2**(B-1): not the sign extension of its low B bits, -2**(B-1)
        at = ((n - 1) * CONFIG.head_dim + 1) * lane
        bad = third[:at] + (1 << (B - 1)).to_bytes(lane, "little") + third[at + lane:]
        v_taken = v.copy()
        v_taken[n - 1, 1] = -(1 << (B - 1))
        cases.append(("lane not sign-extended", [first, second, bad], (q, k, v_taken),
                      ErrorCode.INPUT_LANE))
    else:
        dut._log.info("B = lane = %d bits: every lane is a sign extension, no error 8 case", B)
    for label, packets, (hq, hk, hv), code in cases:
        await host.check_head(hq, hk, hv, regs, label=label, packets=packets, error=code)
        await host.driver.clear_error()
        await host.check_head(q, k, v, regs, label=f"after {label}")


@cocotb.test()
async def reset_in_the_middle_of_a_head(dut):
    """A reset while Q/K/V stream in (and again during the attention work) loses nothing
    of the next head."""
    host = await _setup(dut, seed=6)
    rng = np.random.default_rng(61)
    q, k, v, regs = random_head(rng, 12)
    for stop_after in (40, 400):
        with host.bus.head(f"reset at cycle {stop_after}", regs.seq_len):
            await host.driver.program(regs)
            await host.driver.start()
            for packet in pack_head(q, k, v, CONFIG):
                await host.bus.send_packet(packet)
            await host.bus.wait_cycles(stop_after)
            await host.bus.reset()
            st = await host.driver.status()
        assert not (st.busy or st.done or st.error), f"after reset: {st}"
        await host.check_head(q, k, v, regs, label=f"after reset at cycle {stop_after}")


@cocotb.test()
async def minilm_heads(dut):
    """Real all-MiniLM-L6-v2 heads (tests/data/minilm_heads.npz) stored for this config,
    each in its stored (pruned) mode and in dense mode; logs the cycles of both."""
    heads = [h for h in load_minilm_heads() if h.config == CONFIG]
    host = await _setup(dut, seed=7)
    dut._log.info("%d stored MiniLM heads for this config", len(heads))
    for h in heads:
        assert np.array_equal(golden.attention_head(h.q, h.k, h.v, CONFIG, h.regs).out, h.out), \
            f"{h.name}: the golden model no longer gives the stored output"
        pruned = await host.check_head(h.q, h.k, h.v, h.regs, label=f"MiniLM {h.name}")
        dense = await host.check_head(
            h.q, h.k, h.v, h.regs.replace(block_prune_enable=False, head_prune_enable=False),
            label=f"MiniLM {h.name} dense")
        dut._log.info("MiniLM %s: %d cycles pruned, %d dense (%.2fx)", h.name,
                      pruned.cycles_total, dense.cycles_total,
                      dense.cycles_total / max(1, pruned.cycles_total))   # 0: no counters


@cocotb.test()
async def corner_cases(dut):
    """All-zero, saturated and constant heads; causal with one row; head thresholds 0
    and all-ones; seq_len not a multiple of the block shape."""
    host = await _setup(dut, seed=8)
    rng = np.random.default_rng(81)
    lo, hi = CONFIG.data_min, CONFIG.data_max
    n = min(CONFIG.seq_max, CONFIG.block_cols * 2 + 1)
    d = CONFIG.head_dim
    q, k, v, regs = random_head(rng, n)
    heads = {
        "all zeros": (np.zeros((n, d), int),) * 3,
        "saturated extremes": tuple(rng.choice([lo, hi], size=(n, d)) for _ in range(3)),
        "most negative everywhere": (np.full((n, d), lo),) * 3,
        "constant rows": tuple(np.repeat(rng.integers(lo, hi + 1, (n, 1)), d, axis=1)
                               for _ in range(3)),
    }
    for label, (hq, hk, hv) in heads.items():
        for rule in (0, 1):
            await host.check_head(hq, hk, hv, regs.replace(block_rule=rule), label=f"{label}, rule {rule}")
    await host.check_head(q[:1], k[:1], v[:1], regs.replace(seq_len=1, causal=True),
                          label="causal, one row")
    top = (1 << CONFIG.hi_bits) - 1          # the register field is hi_bits wide
    for threshold, label in ((0, "threshold 0 (never pruned)"), (top, "threshold all-ones")):
        await host.check_head(q, k, v, regs.replace(head_prune_enable=True, head_threshold=threshold),
                              label=label)


# ---- the topk selector (docs/units.md, "Top-k selector") --------------------------------

@cocotb.test(skip=CONFIG.selector != "topk")
async def topk_selector_heads(dut):
    """Selector topk: HDP_HEADS heads (at most 8) with block_k 1, above the most valid
    blocks of a row (nb), 2, a middle value, nb, the field's largest and random ones,
    causal and not, then one with block pruning off and block_k 0 (not read): each
    bit-exact with golden.SELECTORS["topk"]."""
    host = await _setup(dut, seed=17)
    rng = np.random.default_rng(171)
    prng = random.Random(172)
    top_k = (1 << CONFIG.block_k_bits) - 1
    for i in range(min(HEADS, 8)):
        n = prng.choice([SMALL_N, prng.randint(2, SMALL_N)])
        nb = -(-n // CONFIG.block_cols)              # blocks in a block row's widest row
        block_k = [1, nb + 1, 2, max(1, nb // 2), nb, top_k,
                   prng.randint(1, top_k), prng.randint(1, nb)][i]
        q, k, v, regs = random_head(rng, n, peaked=i % 2 == 1, causal=i % 3 == 0,
                                    block_k=block_k, block_prune_enable=True)
        await host.check_head(q, k, v, regs, label=f"head {i}, n {n}, block_k {block_k}")
    q, k, v, regs = random_head(rng, 8, block_k=0, block_prune_enable=False)
    await host.check_head(q, k, v, regs, label="pruning off, block_k 0")


@cocotb.test(skip=CONFIG.selector != "topk")
async def block_k_zero_refused(dut):
    """block_k 0 with block pruning on refuses the start with error 12 (the core stays
    idle; clear_error clears it), after a bit above its field error 6; then the head
    runs bit-exact."""
    host = await _setup(dut, seed=18)
    drv = host.driver
    q, k, v, regs = random_head(np.random.default_rng(181), 6, block_k=2,
                                block_prune_enable=True)
    reg = drv.registers["block_k"]
    for value, code in ((0, ErrorCode.BLOCK_K_ZERO), (reg.mask + 1, ErrorCode.FIELD_OVERFLOW)):
        await drv.program(regs)
        await drv.write_register("block_k", value)
        await expect_refused(host, code, f"block_k = {value}")
    await host.check_head(q, k, v, regs, label="after block_k 0")


# ---- the threshold selector (docs/units.md, "Threshold selector") ----------------------

@cocotb.test(skip=CONFIG.selector != "threshold")
async def threshold_selector_heads(dut):
    """Selector threshold: HDP_HEADS heads (at most 8) with score_threshold at the
    field's ends (low: every block kept; high: each row's best only) and between (a
    quantile of the head's own block importances), causal and not, then one with block
    pruning off and the highest threshold (not read): each bit-exact with
    golden.SELECTORS["threshold"]."""
    host = await _setup(dut, seed=19)
    rng = np.random.default_rng(191)
    prng = random.Random(192)
    half = 1 << (CONFIG.sint_bits - 1)
    for i in range(min(HEADS, 8)):
        n = prng.choice([SMALL_N, prng.randint(2, SMALL_N)])
        q, k, v, regs = random_head(rng, n, peaked=i % 2 == 1, causal=i % 3 == 0,
                                    block_prune_enable=True)
        bi = golden.attention_head(q, k, v, CONFIG, regs).block_importance
        mid = int(np.quantile(bi[bi != 0] if (bi != 0).any() else [0], prng.random()))
        threshold = [-half, half - 1, mid, mid, 0, mid, -half, half - 1][i]
        regs = regs.replace(score_threshold=threshold)
        await host.check_head(q, k, v, regs, label=f"head {i}, n {n}, threshold {threshold}")
    q, k, v, regs = random_head(rng, 8, score_threshold=half - 1, block_prune_enable=False)
    await host.check_head(q, k, v, regs, label="pruning off, highest threshold")


# ---- abort and input timeout (docs/interface.md, "Dropping a head") ----------------------

async def _bounded(awaitable, what: str, us: int = 200):
    try:
        return await with_timeout(awaitable, us, "us")
    except SimTimeoutError:
        raise AssertionError(f"{what}: not within {us} us") from None


async def _until(dut, condition, what: str, cycles: int = 20_000) -> None:
    for _ in range(cycles):
        if condition():
            return
        await RisingEdge(dut.clk)
    raise AssertionError(f"{what}: not within {cycles} cycles")


def _cut(packets, cut: str) -> list[bytes]:
    """The first part of a head's packets (K, Q, V), cut ``cut``."""
    beat = CONFIG.s_axis_bits // 8
    first, second, third = packets
    half = len(first) // beat // 2 * beat
    return {"in K": [first[:half]], "in Q": [first, second[:half]],
            "before V's last beat": [first, second, third[:-beat]]}[cut]


def _handshake(rows, at: int, channel: str) -> int:
    """The cycle (row) of the first handshake of AXI4-Lite channel ``channel`` from
    ``at`` on."""
    return next(i for i in range(at, len(rows))
                if rows[i][f"s_axil_{channel}valid"] and rows[i][f"s_axil_{channel}ready"])


@cocotb.test()
async def abort_a_short_input(dut):
    """A head whose input ends early waits (busy, s_axis_tready high) until ctrl.abort:
    s_axis_tready falls ABORT_HALT_CYCLES after the write's AW/W handshake, and by the
    second status read the core is idle with error 10, done low. Cut in K, in Q and
    before V's last beat (the integer pass done); after each the next head, sent whole,
    is bit-exact; m_axis keeps the AXI4-Stream rules throughout."""
    host = await _setup(dut, seed=13)
    rules = AxisRules(dut, "m_axis")
    drv = host.driver
    ctrl = drv.registers["ctrl"]
    rng = np.random.default_rng(131)
    for cut in ("in K", "in Q", "before V's last beat"):
        q, k, v, regs = random_head(rng, ABORT_N)
        with host.bus.head(f"cut {cut}", ABORT_N):
            await drv.program(regs)
            await drv.start()
            for packet in _cut(pack_head(q, k, v, CONFIG), cut):
                await host.bus.send_packet(packet)
            await _bounded(host.bus.source.wait(), f"cut {cut}: the input taken")
            await host.bus.wait_cycles(40)
            st = await drv.status()
            assert st.busy and not st.done and dut.s_axis_tready.value == 1, f"{cut}: {st}"
            log = CycleLog(dut, "s_axil_awvalid", "s_axil_awready", "s_axil_wvalid",
                           "s_axil_wready", "s_axis_tready")
            await host.bus.write32(ctrl.offset, ctrl.word(abort=1))
            reads = [await drv.status(), await drv.status()]
            rows = log.stop()
            written = max(_handshake(rows, 0, "aw"), _handshake(rows, 0, "w"))
            halted = next(i for i in range(written, len(rows)) if not rows[i]["s_axis_tready"])
            assert halted - written == ABORT_HALT_CYCLES, f"{cut}: halted {halted - written}"
            assert not reads[1].busy and not reads[1].done, f"{cut}: {reads}"
            assert reads[1].error and reads[1].error_code == ErrorCode.ABORTED, f"{cut}: {reads}"
            assert dut.s_axis_tready.value == 0 and dut.m_axis_tvalid.value == 0
            await host.bus.drop_streams()
        await drv.clear_error()
        await host.check_head(q, k, v, regs, label=f"after a head cut {cut}")
    _rules_held_under_stalls(rules)


@cocotb.test()
async def abort_while_the_output_is_read(dut):
    """Aborts while the host reads the output. A beat offered while m_axis_tready is held
    low stays, unchanged, and the core busy, until the host takes it; it is the head's
    last beat and the core is then idle with error 10. At random points of the output
    under random back-pressure: the packet ends without tlast. m_axis keeps the
    AXI4-Stream rules throughout; each next head is bit-exact."""
    host = await _setup(dut, seed=14)
    rules = AxisRules(dut, "m_axis")
    drv = host.driver
    ctrl = drv.registers["ctrl"]
    rng = np.random.default_rng(141)
    prng = random.Random(142)
    total = ABORT_N * CONFIG.beats_per_row
    for trial in ("beat held", "first beats", "random", "random"):
        q, k, v, regs = random_head(rng, ABORT_N, block_prune_enable=False)
        label = f"abort in the output, {trial}"
        with host.bus.head(label, ABORT_N):
            await drv.program(regs)
            await drv.start()
            for packet in pack_head(q, k, v, CONFIG):
                await host.bus.send_packet(packet)
            beats, packets = rules.beats, rules.packets
            if trial == "beat held":
                host.bus.sink.set_pause_generator(itertools.repeat(True))
                await _until(dut, lambda: dut.m_axis_tvalid.value == 1, "a beat offered")
                await host.bus.wait_cycles(2)
                offered = (str(dut.m_axis_tdata.value), str(dut.m_axis_tlast.value))
                await host.bus.write32(ctrl.offset, ctrl.word(abort=1))
                await host.bus.wait_cycles(20)
                st = await drv.status()
                assert st.busy and dut.m_axis_tvalid.value == 1, f"{label}: {st}"
                assert (str(dut.m_axis_tdata.value), str(dut.m_axis_tlast.value)) == offered
                host.bus.sink.set_pause_generator(itertools.repeat(False))
                st = await drv.wait_idle()
                assert rules.beats == beats + 1, f"{label}: {rules.beats - beats} beats"
                await host.bus.drop_streams()
            else:
                at = 1 if trial == "first beats" else prng.randint(2, total - 12)
                await _until(dut, lambda: rules.beats >= beats + at, f"{label}: {at} beats")
                st = await drv.abort()          # (drops the partial packet)
                assert rules.beats - beats < total, f"{label}: the whole head was sent"
            assert not st.busy and not st.done and st.error_code == ErrorCode.ABORTED, \
                f"{label}: {st}"
            assert rules.packets == packets, f"{label}: tlast sent"
            for _ in range(8):
                assert dut.m_axis_tvalid.value == 0 and dut.s_axis_tready.value == 0
                await RisingEdge(dut.clk)
            host.bus.sink.set_pause_generator(
                (prng.random() < STALL for _ in itertools.count()))
        await drv.clear_error()
        await host.check_head(q, k, v, regs, label=f"after {label}")
    _rules_held_under_stalls(rules)


@cocotb.test()
async def input_timeout_aborts_a_short_head(dut):
    """With input_timeout T, a head whose input has the usual random gaps runs bit-exact;
    one whose input stops goes idle by itself with error 11, done low: s_axis_tready
    falls T + TIMEOUT_HALT_CYCLES after the last beat taken; the next head is bit-exact.
    With T = 0 a short head waits until ctrl.abort."""
    host = await _setup(dut, seed=15)
    drv = host.driver
    rng = np.random.default_rng(151)
    timeout = 48
    drv.input_timeout = timeout
    q, k, v, regs = random_head(rng, ABORT_N)
    await host.check_head(q, k, v, regs, label=f"input_timeout {timeout}, input with gaps")
    for cut in ("in Q", "in K"):
        q, k, v, regs = random_head(rng, ABORT_N)
        label = f"input_timeout {timeout}, input cut {cut}"
        with host.bus.head(label, ABORT_N):
            await drv.program(regs)
            await drv.start()
            log = CycleLog(dut, "s_axis_tvalid", "s_axis_tready")
            for packet in _cut(pack_head(q, k, v, CONFIG), cut):
                await host.bus.send_packet(packet)
            await _bounded(host.bus.source.wait(), f"{label}: the input taken")
            await host.bus.wait_cycles(timeout + 10)
            rows = log.stop()
            last = max(i for i, r in enumerate(rows) if r["s_axis_tvalid"] and r["s_axis_tready"])
            halted = next(i for i in range(last, len(rows)) if not rows[i]["s_axis_tready"])
            assert halted - last == timeout + TIMEOUT_HALT_CYCLES, \
                f"{label}: s_axis_tready low {halted - last} cycles after the last beat"
            st = await drv.status()
            assert not st.busy and not st.done and st.error_code == ErrorCode.INPUT_TIMEOUT, \
                f"{label}: {st}"
            await host.bus.drop_streams()
        await drv.clear_error()
        await host.check_head(q, k, v, regs, label=f"after {label}")
    drv.input_timeout = 0
    with host.bus.head("input_timeout 0, input cut", ABORT_N):
        await drv.program(regs)
        await drv.start()
        for packet in _cut(pack_head(q, k, v, CONFIG), "in Q"):
            await host.bus.send_packet(packet)
        await _bounded(host.bus.source.wait(), "input_timeout 0: the input taken")
        await host.bus.wait_cycles(3 * timeout)
        st = await drv.status()                     # (the cut packet's tlast: error 9)
        assert st.busy and st.error_code == ErrorCode.INPUT_TLAST, f"input_timeout 0: {st}"
        st = await drv.abort()
        assert not st.busy and st.error_code == ErrorCode.ABORTED, f"input_timeout 0: {st}"
    await drv.clear_error()
    await host.check_head(q, k, v, regs, label="after input_timeout 0")


@cocotb.test()
async def abort_while_idle_and_start_while_busy(dut):
    """ctrl.abort on an idle core changes nothing (after reset; after a head: done,
    head_pruned, no error and the counters kept). A start while a head runs is still
    error 7 and the head goes on, until ctrl.abort (error 10, the latest). Abort and
    start written in one word on an idle core start a head that runs to the end."""
    host = await _setup(dut, seed=16)
    drv = host.driver
    ctrl = drv.registers["ctrl"]
    rng = np.random.default_rng(161)
    before = await drv.status()
    assert not (before.busy or before.done or before.error), before
    assert await drv.abort() == before
    q, k, v, regs = random_head(rng, ABORT_N)
    counters = await host.check_head(q, k, v, regs, label="a head")
    before = await drv.status()
    assert await drv.abort() == before and await drv.counters() == counters
    with host.bus.head("start while busy, then abort", ABORT_N):
        await drv.program(regs)
        await drv.start()
        await host.bus.send_packet(pack_head(q, k, v, CONFIG)[0])
        st = await drv.start()                      # ignored: error 7, the head goes on
        assert st.busy and st.error_code == ErrorCode.START_WHILE_BUSY, st
        await host.bus.wait_cycles(20)
        assert (await drv.status()).busy
        st = await drv.abort()
        assert not st.busy and not st.done and st.error_code == ErrorCode.ABORTED, st
    await drv.clear_error()
    res = golden.attention_head(q, k, v, CONFIG, regs)
    with host.bus.head("abort and start in one word", ABORT_N):
        await drv.program(regs)
        await host.bus.write32(ctrl.offset, ctrl.word(start=1, abort=1))
        await host.bus.wait_cycles(10)
        st = await drv.status()
        assert st.busy and not st.error, f"abort with start: {st}"
        run = await drv.finish(pack_head(q, k, v, CONFIG), ABORT_N)
    host.check_run(run, res, ABORT_N, label="abort and start in one word")
