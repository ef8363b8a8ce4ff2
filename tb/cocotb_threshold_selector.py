"""Threshold selector Verilog against golden.SELECTORS["threshold"] under random
idle/back-pressure (tb/selector_tb.py).

The config comes from ``HDP_CONFIG`` (tests/units/test_threshold_selector.py).
"""
import cocotb

from hdp_rtl.config import HDPConfig, Registers
from selector_tb import SelectorTB
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {"selector": "threshold"}))


class ThresholdSelectorTB(SelectorTB):
    REGISTERS = ("block_prune_enable", "score_threshold")

    def draw_registers(self, rows) -> Registers:
        """The threshold at the field's ends, a row's value, one above the largest,
        random; pruning off one head in five."""
        rng, c = self.rng, self.config
        lo, hi = -(1 << (c.sint_bits - 1)), (1 << (c.sint_bits - 1)) - 1
        values = [b for bi in rows for b in bi]
        threshold = rng.choice([lo, hi, rng.choice(values), min(hi, max(values) + 1),
                                rng.randint(lo, hi)])
        return Registers(seq_len=1, score_threshold=threshold,
                         block_prune_enable=rng.random() < 0.8)


@cocotb.test()
async def masks_match_golden(dut):
    await past_time_zero()
    tb = ThresholdSelectorTB(dut, CONFIG, seed=6)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for _ in range(25):
        await tb.check(*tb.random_head())
