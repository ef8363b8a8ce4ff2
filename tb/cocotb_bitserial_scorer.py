"""Bit-serial scorer Verilog (LeOPArd's early termination) against
golden.leopard.bitserial_scores under random idle and back-pressure.

The config comes from ``HDP_CONFIG`` (tests/units/test_bitserial_scorer.py). Results
leave in the order pairs finish: they are checked by (row, col), each pair once.
"""
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

import golden
from golden.leopard import bitserial_scores
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.bitserial_scorer import pair_in_layout, result_layout
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {"head_dim": 16, "int_lanes": 16}))


class BitSerialTB:
    """Heads of random and extreme Q and K; each head's pairs (all of them, shuffled)
    under one threshold, the threshold set while the unit is idle."""

    def __init__(self, dut, config: HDPConfig, seed: int):
        self.dut, self.config = dut, config
        self.rng = np.random.default_rng(seed)
        self.shuffle = random.Random(seed)
        seq_bits = config.seq_bits
        self.source = StreamSource(dut, "i_pair", pair_in_layout(
            head_dim=config.head_dim, data_bits=config.data_bits, seq_bits=seq_bits),
            idle=0.3, seed=seed)
        self.sink = StreamSink(dut, "o_result", result_layout(
            int_bits=config.int_bits, sint_bits=config.sint_bits, seq_bits=seq_bits),
            backpressure=0.4, seed=seed + 1)
        dut.threshold.value = 0

    def random_head(self, n: int):
        c, rng = self.config, self.rng
        lo, hi = c.data_min, c.data_max
        rows = []
        for _ in range(2 * n):
            kind = rng.integers(3)
            if kind == 0:
                rows.append(rng.integers(lo, hi + 1, c.head_dim))
            elif kind == 1:
                rows.append(rng.choice([lo, hi, 0, -(1 << c.frac_bits)], c.head_dim))
            else:
                rows.append(np.full(c.head_dim, rng.choice([lo, hi])))
        rows = np.array(rows, dtype=np.int64)
        return rows[:n], rows[n:]

    async def check_head(self, n: int, threshold: int | None = None):
        c = self.config
        q, k = self.random_head(n)
        qi, _ = golden.split(q, c)
        ki, _ = golden.split(k, c)
        s = golden.integer_scores(qi, ki)
        if threshold is None:
            threshold = int(self.rng.choice(s.ravel()))
        want = bitserial_scores(qi, ki, threshold, int_bits=c.int_bits)
        while int(self.dut.busy.value):
            await RisingEdge(self.dut.clk)
        self.dut.threshold.value = threshold
        pairs = [(r, col) for r in range(n) for col in range(n)]
        self.shuffle.shuffle(pairs)
        self.source.send_all({"q": [int(x) for x in q[r]], "k": [int(x) for x in k[col]],
                              "row": r, "col": col} for r, col in pairs)
        seen = set()
        for _ in pairs:
            got = await self.sink.recv()
            key = (got["row"], got["col"])
            assert key not in seen, f"pair {key} twice"
            seen.add(key)
            expect = {"terminated": int(want.terminated[key]), "planes": int(want.planes[key]),
                      "s_int": int(want.s_int[key]), "keep": int(want.keep[key])}
            assert {f: got[f] for f in expect} == expect, (
                f"pair {key} threshold {threshold} (S_int {s[key]}): {got}, expected {expect}")
        await self.source.wait_idle()


@cocotb.test()
async def results_match_golden(dut):
    await past_time_zero()
    tb = BitSerialTB(dut, CONFIG, seed=13)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    lo, hi = -(1 << (CONFIG.sint_bits - 1)), (1 << (CONFIG.sint_bits - 1)) - 1
    for threshold in (lo, hi, None, None, 0, None):
        await tb.check_head(6, threshold)
