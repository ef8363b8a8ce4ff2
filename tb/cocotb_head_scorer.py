"""Head scorer Verilog: every pair score (S_int, or S_sel with unbiased_selection), block
importance and HI against the golden model, with Q's rows arriving while the loop runs
(one every ``beats_per_row`` cycles, as from the input unpacker)."""
import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.layouts import layouts_for
from rowmem_model import RowMemModel
from streams import StreamSink, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
LAYOUTS = layouts_for(CONFIG)


class ScorerTB:
    def __init__(self, dut):
        self.dut = dut
        self.sink = StreamSink(dut, "o_block", LAYOUTS["block"], backpressure=0.4, seed=3)
        self.scores = {}
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            if int(self.dut.s_valid.value):
                key = (self.dut.s_row.value.to_unsigned(), self.dut.s_col.value.to_unsigned())
                assert key not in self.scores, f"pair {key} computed twice"
                self.scores[key] = self.dut.s_int.value.to_signed()

    async def _feed_q(self, n: int, gap: int):
        for rows in range(2, n + 1):
            for _ in range(gap):
                await RisingEdge(self.dut.clk)
            self.dut.q_rows.value = rows

    async def check_head(self, q, k, n: int, causal: bool):
        RowMemModel(self.dut, "q_rd", CONFIG, q)
        RowMemModel(self.dut, "k_rd", CONFIG, k)
        self.scores.clear()
        self.dut.seq_len.value = n
        self.dut.causal.value = int(causal)
        self.dut.q_rows.value = 1                 # Q's row 0 is in at start
        self.dut.start.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.start.value = 0
        cocotb.start_soon(self._feed_q(n, CONFIG.beats_per_row))
        qi, _ = golden.split(q, CONFIG)
        ki, _ = golden.split(k, CONFIG)
        valid = golden.valid_mask(n, causal)
        s_int = np.where(valid, golden.selection_scores(qi, ki, CONFIG), 0)
        bi, bvalid = golden.block_importance(s_int, valid, CONFIG)
        rows = bvalid.shape[0]
        for R in range(rows):
            cols = np.flatnonzero(bvalid[R])
            for C in cols:
                got = await self.sink.recv()
                want = {"bi": int(bi[R, C]), "col": int(C), "last": int(C == cols[-1]),
                        "last_row": int(R == rows - 1)}
                assert got == want, f"block ({R},{C}): {got}, expected {want}"
        while not int(self.dut.hi_valid.value):
            await RisingEdge(self.dut.clk)
        assert self.dut.head_importance.value.to_unsigned() == golden.head_importance(s_int, valid)
        assert self.scores == {(int(r), int(c)): int(s_int[r, c]) for r, c in zip(*np.nonzero(valid))}


@cocotb.test()
async def heads_match_golden(dut):
    await past_time_zero()
    tb = ScorerTB(dut)
    dut.start.value = 0
    dut.seq_len.value = 1
    dut.causal.value = 0
    dut.q_rows.value = 0
    for port in ("q_rd__data", "k_rd__data"):
        getattr(dut, port).value = 0
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    rng = np.random.default_rng(5)
    lo, hi = -(1 << (CONFIG.data_bits - 1)), 1 << (CONFIG.data_bits - 1)
    for n, causal in ((1, False), (CONFIG.block_cols * 2 + 1, False), (11, True)):
        q, k = rng.integers(lo, hi, (2, n, CONFIG.head_dim))
        await tb.check_head(q, k, n, causal)
