"""Top-k selector Verilog against golden.SELECTORS["topk"] under random idle/back-pressure
(tb/selector_tb.py).

The config comes from ``HDP_CONFIG`` (tests/units/test_topk_selector.py).
"""
import cocotb

from hdp_rtl.config import HDPConfig, Registers
from selector_tb import SelectorTB
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {"selector": "topk"}))


class TopKSelectorTB(SelectorTB):
    REGISTERS = ("block_prune_enable", "block_k")
    SETTLE = 2                              # the selector registers k

    def draw_registers(self, rows) -> Registers:
        """block_k 0, 1, nb, above nb, the field's largest; pruning off one head in five."""
        rng, c = self.rng, self.config
        top = (1 << c.block_k_bits) - 1
        nb = len(rng.choice(rows))
        k = rng.choice([0, 1, nb, nb + 1, top, rng.randint(0, c.block_col_count)])
        return Registers(seq_len=1, block_k=min(k, top), block_prune_enable=rng.random() < 0.8)


@cocotb.test()
async def masks_match_golden(dut):
    await past_time_zero()
    tb = TopKSelectorTB(dut, CONFIG, seed=5)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for _ in range(25):
        await tb.check(*tb.random_head())
