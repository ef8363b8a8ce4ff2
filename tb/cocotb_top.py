"""End-to-end tests of the generated HDP co-processor against the golden model.

The pytest side (tb/test_top.py) passes the config as HDP_CONFIG and the stall
probabilities as HDP_STALL; each cocotb test here is one group of cases.
"""
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

import golden
from golden.vectors import load_minilm_heads
from hdp_host import HDPHost
from hdp_rtl.config import HDPConfig, Registers
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
STALL = env_json("HDP_STALL", 0.3)
SMALL_N = min(CONFIG.seq_max, 20)


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


@cocotb.test()
async def random_heads_back_to_back(dut):
    """Random heads and random registers, several in a row without a reset."""
    host = await _setup(dut, seed=1)
    rng = np.random.default_rng(11)
    prng = random.Random(12)
    for i in range(6):
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
    if env_json("HDP_FULL_LENGTH", True):
        q, k, v, regs = random_head(rng, CONFIG.seq_max, peaked=True, causal=True)
        await host.check_head(q, k, v, regs, label="seq_len seq_max, causal")


@cocotb.test()
async def block_rules_and_ragged_blocks(dut):
    """Mean rule at rho -256, 0, 256 and the delta rule, on a ragged last block."""
    host = await _setup(dut, seed=3)
    rng = np.random.default_rng(31)
    n = CONFIG.block_cols * 3 + 1 if CONFIG.block_cols * 3 + 1 <= CONFIG.seq_max else CONFIG.seq_max
    for fields in (dict(block_rule=0, rho=-256), dict(block_rule=0, rho=0),
                   dict(block_rule=0, rho=256), dict(block_rule=1),
                   dict(block_rule=1, causal=True)):
        q, k, v, regs = random_head(rng, n, peaked=True, **fields)
        counters = await host.check_head(q, k, v, regs, label=str(fields))
        assert counters["blocks_pruned"] >= 0


@cocotb.test()
async def head_pruning_and_approximation(dut):
    """A head pruned at threshold HI + 1, kept at HI; approximation on and off."""
    host = await _setup(dut, seed=4)
    rng = np.random.default_rng(41)
    q, k, v, regs = random_head(rng, 9)
    hi = golden.attention_head(q, k, v, CONFIG, regs).head_importance
    pruned = regs.replace(head_prune_enable=True, head_threshold=hi + 1)
    await host.check_head(q, k, v, pruned, label="pruned head")
    assert (await host.read("heads_pruned")) == 1
    await host.check_head(q, k, v, regs.replace(head_prune_enable=True, head_threshold=hi),
                          label="head at threshold")
    dense = regs.replace(block_prune_enable=False)
    for approx in (False, True):
        c = await host.check_head(q, k, v, dense.replace(approx_enable=approx), label=f"approx {approx}")
    dut._log.info("dense head of 9: %d cycles", c["cycles_total"])


@cocotb.test()
async def bad_registers_set_error_and_core_stays_usable(dut):
    """Bad values set STATUS.error with a code; the next good head runs."""
    host = await _setup(dut, seed=5)
    rng = np.random.default_rng(51)
    q, k, v, regs = random_head(rng, 5)
    await host.write_registers(regs)
    cases = [("seq_len", 0, 1), ("seq_len", CONFIG.seq_max + 1, 2), ("flags", 1 << 7, 3),
             ("rho", 257, 4), ("rho", -300, 4), ("delta", 1 << CONFIG.delta_bits, 6)]
    for name, value, code in cases:
        await host.write_registers(regs)
        await host.write(name, value)
        await host.write("ctrl", 1)
        st = await host.status()
        assert st["error"] == 1 and st["error_code"] == code and not st["busy"], (name, value, st)
        await host.write("ctrl", 2)           # clear_error
        assert (await host.status())["error"] == 0
    await host.axil.write_dword(0xFC, 1)      # a reserved address: SLVERR and error 5
    st = await host.status()
    assert st["error"] == 1 and st["error_code"] == 5, st
    await host.write("ctrl", 2)
    await host.check_head(q, k, v, regs, label="after bad registers")


@cocotb.test()
async def reset_in_the_middle_of_a_head(dut):
    """A reset while Q/K/V stream in (and again during the attention work) loses nothing
    of the next head."""
    host = await _setup(dut, seed=6)
    rng = np.random.default_rng(61)
    q, k, v, regs = random_head(rng, 12)
    for stop_after in (40, 400):
        await host.write_registers(regs)
        await host.write("ctrl", 1)
        for x in (q, k, v):
            host.source.send_nowait(host._pack_tensor(x))
        await host.wait_cycles(stop_after)
        dut.rst.value = 1
        host.source.clear()
        await host.wait_cycles(3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        host.sink.clear()
        st = await host.status()
        assert not st["busy"], st
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
                      pruned["cycles_total"], dense["cycles_total"],
                      dense["cycles_total"] / pruned["cycles_total"])


@cocotb.test()
async def corner_cases(dut):
    """All-zero, saturated and constant heads; causal with one row; head thresholds 0
    and all-ones; seq_len not a multiple of the block shape."""
    host = await _setup(dut, seed=8)
    rng = np.random.default_rng(81)
    lo, hi = -(1 << (CONFIG.data_bits - 1)), (1 << (CONFIG.data_bits - 1)) - 1
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
