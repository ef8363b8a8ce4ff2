"""End-to-end tests of the generated HDP co-processor against the golden model, through
the host driver (:mod:`hdp_rtl.host`).

The pytest side (tb/test_top.py) passes the config as HDP_CONFIG, the stall
probabilities as HDP_STALL and the number of back-to-back random heads as HDP_HEADS; each cocotb test here is one group of cases.
"""
import random

import cocotb
import numpy as np

import golden
from golden.vectors import load_minilm_heads
from hdp_host import HDPHost
from hdp_rtl.config import HDPConfig
from hdp_rtl.host import BusError, HDPError, pack_head
from hdp_rtl.regmap import FLAG_FIELDS, INPUT_ORDER, ErrorCode
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
STALL = env_json("HDP_STALL", 0.3)
SMALL_N = min(CONFIG.seq_max, 20)
#: Heads of random_heads_back_to_back (the Icarus smoke run takes the first three).
HEADS = env_json("HDP_HEADS", 6)
#: A byte address with no register.
RESERVED = 0xFC


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
    assert (await host.driver.counters()).heads_pruned == 1
    await host.check_head(q, k, v, regs.replace(head_prune_enable=True, head_threshold=hi),
                          label="head at threshold")
    dense = regs.replace(block_prune_enable=False)
    for approx in (False, True):
        c = await host.check_head(q, k, v, dense.replace(approx_enable=approx), label=f"approx {approx}")
    dut._log.info("dense head of 9: %d cycles", c.cycles_total)


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
                      dense.cycles_total / pruned.cycles_total)


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
