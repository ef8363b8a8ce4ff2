"""Random heads with random registers on one random config (driven by sim/regress.py).

HDP_SEED names the config (``sim.random_configs.random_config``) and seeds the heads;
HDP_HEADS heads run back to back under random idle and back-pressure, each checked
word for word and counter for counter against the golden model. HDP_FIRST_HEAD (default
0) numbers the first of them: the regression runs a seed's heads in batches, each its
own random stream drawn from the seed and its first head. A failure names the seed and
the head; the seed, the first head and the head count are all it takes to reproduce it
(with HDP_WANT, when the batch was steered).

About one head in ten comes with an error case (``random_error_case``, from a stream
of its own, so that the heads are those drawn without error cases): a bad register
value or address before the head, which must be refused with its code and cleared; or
a second start, a bad input lane or a misplaced tlast during the head, which must
complete bit-exact with the code in ``status``.

HDP_WANT (a JSON list of :mod:`sim.coverage` bins, default none) steers the draws toward
those bins. HDP_COVERAGE_OUT, when set, is the file that receives the coverage of the
heads checked (:class:`sim.coverage.Coverage` as JSON), also when one fails.
"""
import os
import random
from pathlib import Path

import cocotb
import numpy as np

import golden
from hdp_host import HDPHost
from hdp_rtl.host import BusError, HDPError, pack_head
from hdp_rtl.regmap import ErrorCode
from sim.coverage import Coverage, Outcome
from sim.random_configs import random_config, random_error_case, random_head, random_stall
from streams import env_json, past_time_zero, start_clock_and_reset

SEED = int(env_json("HDP_SEED", 0))
HEADS = int(env_json("HDP_HEADS", 10))
FIRST_HEAD = int(env_json("HDP_FIRST_HEAD", 0))
WANT = tuple(env_json("HDP_WANT", []))
COVERAGE_OUT = os.environ.get("HDP_COVERAGE_OUT")
CONFIG = random_config(SEED)


def _random_streams(seed: int, first_head: int) -> tuple[random.Random, np.random.Generator, int]:
    """The batch's Python and NumPy generators and the bus's seed. The batch from head 0
    draws from the seed alone, as every run did before batches (the same heads as then);
    a later batch from the seed and its first head, so that batches draw different heads."""
    if first_head == 0:
        return random.Random(seed * 7919 + 1), np.random.default_rng(seed), seed
    rng = random.Random(f"regress seed {seed} first head {first_head}")
    return rng, np.random.default_rng([seed, first_head]), rng.getrandbits(32)


async def _refused(host: HDPHost, case, regs, label: str) -> None:
    """``case`` before the head: the bad write, then a start (refused) or, for a bad
    address, the write answered SLVERR; ``status`` shows the code and clear_error
    clears it."""
    drv = host.driver
    await drv.program(regs)
    if case.code == ErrorCode.BAD_ADDRESS:
        try:
            await host.bus.write32(case.address, case.value)
        except BusError:
            pass
        else:
            raise AssertionError(f"{label}: the write was answered OKAY")
    else:
        for name, value in case.also:
            await drv.write_register(name, value)
        await drv.write_register(case.register, case.value)
        try:
            await drv.start()
        except HDPError as err:
            assert err.code == case.code, f"{label}: refused with {err}"
        else:
            raise AssertionError(f"{label}: the start was accepted")
    st = await drv.status()
    assert st.error and st.error_code == case.code and not st.busy, f"{label}: {st}"
    await drv.clear_error()
    st = await drv.status()
    assert not st.error and st.error_code == ErrorCode.NONE, f"{label}, cleared: {st}"


def _bad_packets(case, q, k, v) -> tuple[list[bytes], np.ndarray]:
    """The ``s_axis`` packets of an input error case, and V as the core takes it."""
    packets = pack_head(q, k, v, CONFIG)
    if case.code == ErrorCode.INPUT_LANE:
        row, col = case.at
        lane = CONFIG.in_lane_bits // 8
        at = (row * CONFIG.head_dim + col) * lane
        packets[2] = packets[2][:at] + case.value.to_bytes(lane, "little") + packets[2][at + lane:]
        b = CONFIG.data_bits
        low = case.value & ((1 << b) - 1)
        v = v.copy()
        v[row, col] = low - (1 << b) if low >> (b - 1) else low   # its low B bits, signed
    elif case.variant == "early":
        tensor, beat = case.at
        cut = beat * CONFIG.s_axis_bits // 8
        packets[tensor:tensor + 1] = [packets[tensor][:cut], packets[tensor][cut:]]
    else:
        tensor, = case.at
        packets[tensor:tensor + 2] = [packets[tensor] + packets[tensor + 1]]
    return packets, v


async def _run_head(host: HDPHost, head, case, label: str) -> None:
    """Check ``head`` with its error ``case`` (None: none)."""
    q, k, v, regs = head.q, head.k, head.v, head.regs
    if case is None:
        await host.check_head(q, k, v, regs, label=label)
        return
    if case.before_head:
        await _refused(host, case, regs, label)
        await host.check_head(q, k, v, regs, label=label)
        return
    if case.code == ErrorCode.START_WHILE_BUSY:
        async def start_again():
            st = await host.driver.start()
            assert st.busy and st.error_code == ErrorCode.START_WHILE_BUSY, f"{label}: {st}"
        await host.check_head(q, k, v, regs, label=label, while_running=start_again,
                              error=case.code)
    else:
        packets, v_taken = _bad_packets(case, q, k, v)
        await host.check_head(q, k, v_taken, regs, label=label, packets=packets, error=case.code)
    await host.driver.clear_error()
    st = await host.driver.status()
    assert not st.error and st.error_code == ErrorCode.NONE, f"{label}, cleared: {st}"


@cocotb.test()
async def random_config_heads(dut):
    """HDP_HEADS random heads, from head HDP_FIRST_HEAD on, on the config of HDP_SEED."""
    await past_time_zero()
    rng, nrng, bus_seed = _random_streams(SEED, FIRST_HEAD)
    stall = random_stall(rng, WANT)
    host = HDPHost(dut, CONFIG, idle=stall, backpressure=stall, seed=bus_seed)
    await start_clock_and_reset(dut)
    await host.driver.read_config_hash()      # the Verilog is this seed's config
    dut._log.info("seed %d, heads %d to %d: %s", SEED, FIRST_HEAD, FIRST_HEAD + HEADS - 1,
                  CONFIG)
    if WANT:
        dut._log.info("steered toward %d bins: %s", len(WANT), ", ".join(WANT))
    coverage = Coverage()
    try:
        for i in range(FIRST_HEAD, FIRST_HEAD + HEADS):
            head = random_head(rng, nrng, CONFIG, WANT)
            n, d = head.q.shape
            # a stream of its own: the heads are those of a run without error cases
            case = random_error_case(random.Random(f"regress errors seed {SEED} head {i}"),
                                     CONFIG, n, d, WANT)
            label = f"seed {SEED} head {i} ({head.kind}, {head.regs}" + \
                (f"; {case})" if case else ")")
            await _run_head(host, head, case, label)
            res = golden.attention_head(head.q, head.k, head.v, CONFIG, head.regs)
            coverage.sample_head(CONFIG, head.regs, head.kind, n, d, Outcome(
                res.head_importance, res.head_pruned, res.blocks_pruned,
                case.code if case else ErrorCode.NONE), stall)
    finally:
        if COVERAGE_OUT:
            Path(COVERAGE_OUT).write_text(coverage.to_json() + "\n")
