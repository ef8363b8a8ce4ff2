"""Importance unit Verilog: key sums and output magnitude against the golden functions
(tb/importance_events.py), probabilities every cycle and with gaps, three heads."""
import random

import cocotb
from cocotb.triggers import RisingEdge

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.importance import ImportanceUnit
from importance_events import random_head
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG"))


async def run_head(dut, rng, n: int, gap: float):
    events, keys, out_imp = random_head(CONFIG, rng, n, gap)
    dut.busy.value = 1
    dut.seq_len.value = n
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    for _ in range(n):                 # the sweep (the core's K load)
        await RisingEdge(dut.clk)
    for prob, chunk in events:
        dut.prob_valid.value = int(prob is not None)
        if prob is not None:
            dut.prob_col.value, dut.prob.value = prob
        dut.chunk_valid.value = int(chunk is not None)
        if chunk is not None:
            mask = (1 << CONFIG.out_bits) - 1
            dut.chunk_out.value = sum((v & mask) << (CONFIG.out_bits * i)
                                      for i, v in enumerate(chunk))
        await RisingEdge(dut.clk)
    dut.prob_valid.value = 0
    dut.chunk_valid.value = 0
    for _ in range(ImportanceUnit.from_config(CONFIG).out_latency()):
        await RisingEdge(dut.clk)
    assert int(dut.out_importance.value) == out_imp
    dut.busy.value = 0
    for key in range(min(n + 2, CONFIG.seq_max)):
        dut.key_index.value = key
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        want = int(keys[key]) if key < n else 0
        assert int(dut.key_importance.value) == want, f"key {key} of {n}"


@cocotb.test()
async def importances_match_golden(dut):
    await past_time_zero()
    for name in ("start", "busy", "prob_valid", "chunk_valid", "seq_len", "prob_col", "prob",
                 "key_index", "chunk_out"):
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut)
    rng = random.Random(5)
    for gap in (0.0, 0.5, 0.0):
        await run_head(dut, rng, rng.choice([1, CONFIG.seq_max, rng.randint(2, CONFIG.seq_max)]),
                       gap)
