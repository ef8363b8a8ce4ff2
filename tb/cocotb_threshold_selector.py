"""Threshold selector Verilog against golden.SELECTORS["threshold"] under random
idle/back-pressure.

The config comes from ``HDP_CONFIG`` (tests/units/test_threshold_selector.py).
"""
import random

import cocotb
import numpy as np

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.layouts import layouts_for
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {"selector": "threshold"}))
LAYOUTS = layouts_for(CONFIG)
BCC = CONFIG.block_col_count
LO, HI = -(1 << (CONFIG.sint_bits - 1)), (1 << (CONFIG.sint_bits - 1)) - 1


class ThresholdSelectorTB:
    """Drives heads of block rows in, checks every mask in order against the golden
    model; the registers change between heads only, as a start latches them."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        self.source = StreamSource(dut, "i_block", LAYOUTS["block"], idle=0.3, seed=seed)
        self.sink = StreamSink(dut, "o_mask", LAYOUTS["mask"], backpressure=0.4, seed=seed + 1)
        self.set_registers(Registers(seq_len=1))

    def set_registers(self, regs: Registers):
        self.dut.block_prune_enable.value = int(regs.block_prune_enable)
        self.dut.score_threshold.value = regs.score_threshold

    def random_head(self):
        """Causal-like (a block more each row) or full rows, ties and extremes; the
        threshold at the field's ends, a row's value, one above the largest, random;
        pruning off one head in five."""
        rng = self.rng
        first, rows = rng.randint(1, BCC), rng.randint(1, 4)
        causal = rng.random() < 0.5
        sizes = [min(first + r, BCC) if causal else first for r in range(rows)]
        spread = rng.choice([1, 3, HI])
        bis = [[max(LO, min(HI, rng.randint(-spread - 1, spread))) for _ in range(nb)]
               for nb in sizes]
        values = [b for bi in bis for b in bi]
        threshold = rng.choice([LO, HI, rng.choice(values), min(HI, max(values) + 1),
                                rng.randint(LO, HI)])
        return Registers(seq_len=1, score_threshold=threshold,
                         block_prune_enable=rng.random() < 0.8), bis

    async def check(self, regs: Registers, rows):
        self.set_registers(regs)
        for r, bi in enumerate(rows):
            self.source.send_all({"bi": b, "col": c, "last": int(c == len(bi) - 1),
                                  "last_row": int(r == len(rows) - 1)} for c, b in enumerate(bi))
        for r, bi in enumerate(rows):
            full = np.zeros((1, BCC), dtype=np.int64)
            valid = np.zeros_like(full, dtype=bool)
            full[0, :len(bi)], valid[0, :len(bi)] = bi, True
            keep = golden.SELECTORS["threshold"](full, valid, regs, CONFIG)[0]
            want = sum(int(k) << c for c, k in enumerate(keep))
            got = await self.sink.recv()
            assert got["mask"] == want, (f"row {r} {bi} threshold={regs.score_threshold} "
                                         f"prune={regs.block_prune_enable}: mask "
                                         f"{got['mask']:#x}, expected {want:#x}")
            assert got["last_row"] == int(r == len(rows) - 1), f"row {r}: last_row"


@cocotb.test()
async def masks_match_golden(dut):
    await past_time_zero()
    tb = ThresholdSelectorTB(dut, seed=6)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for _ in range(25):
        await tb.check(*tb.random_head())
