"""Block selector Verilog against golden.select_blocks under random idle/back-pressure."""
import random

import cocotb
import numpy as np

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.layouts import layouts_for
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
LAYOUTS = layouts_for(CONFIG)


class SelectorTB:
    """Drives block rows in, checks every mask in order against the golden model."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        self.source = StreamSource(dut, "i_block", LAYOUTS["block"], idle=0.3, seed=seed)
        self.sink = StreamSink(dut, "o_mask", LAYOUTS["mask"], backpressure=0.3, seed=seed + 1)

    def set_registers(self, regs: Registers):
        self.dut.block_prune_enable.value = int(regs.block_prune_enable)
        self.dut.block_rule.value = regs.block_rule
        self.dut.rho.value = regs.rho & ((1 << CONFIG.rho_bits) - 1)
        self.dut.delta.value = regs.delta

    def random_rows(self, count: int):
        lo, hi = -(1 << (CONFIG.sint_bits - 1)), (1 << (CONFIG.sint_bits - 1)) - 1
        rows = []
        for i in range(count):
            nb = self.rng.choice([1, 2, CONFIG.block_col_count, self.rng.randint(1, CONFIG.block_col_count)])
            spread = self.rng.choice([2, 50, hi])
            rows.append([max(lo, min(hi, self.rng.randint(-spread, spread))) for _ in range(nb)])
        return rows

    async def check(self, rows, regs: Registers):
        self.set_registers(regs)
        for r, bi in enumerate(rows):
            self.source.send_all({"bi": b, "col": c, "last": int(c == len(bi) - 1),
                                  "last_row": int(r == len(rows) - 1)} for c, b in enumerate(bi))
        for r, bi in enumerate(rows):
            full = np.zeros((1, CONFIG.block_col_count), dtype=np.int64)
            valid = np.zeros_like(full, dtype=bool)
            full[0, :len(bi)], valid[0, :len(bi)] = bi, True
            keep = golden.select_blocks(full, valid, regs)[0]
            want = sum(int(k) << c for c, k in enumerate(keep))
            got = await self.sink.recv()
            assert got["mask"] == want, f"row {r} {regs}: mask {got['mask']:#x}, expected {want:#x}"
            assert got["last_row"] == int(r == len(rows) - 1)


@cocotb.test()
async def masks_match_golden(dut):
    await past_time_zero()
    tb = SelectorTB(dut, seed=7)
    tb.set_registers(Registers(seq_len=1))
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for fields in (dict(block_rule=0, rho=-256), dict(block_rule=0, rho=0),
                   dict(block_rule=0, rho=128), dict(block_rule=0, rho=256),
                   dict(block_rule=1, delta=0), dict(block_rule=1, delta=40),
                   dict(block_prune_enable=False)):
        await tb.check(tb.random_rows(6), Registers(seq_len=1, **fields))
