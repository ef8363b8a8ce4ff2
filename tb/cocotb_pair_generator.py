"""Pair generator Verilog: the kept pairs and zero rows of golden heads (the keep matrix of
golden.attention_head), in order, under random idle, back-pressure and slow row credits."""
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.rtl.layouts import layouts_for
from hdp_rtl.rtl.pair_generator import zero_row_layout
from sim.packing import unpack
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
LAYOUTS = layouts_for(CONFIG)
ZERO_ROW = zero_row_layout(seq_bits=CONFIG.seq_bits)
ROWS_IN_FLIGHT = 2          # PairGenerator's default, as the top builds it
#: (seq_len, causal, delta, head pruned); delta 0 keeps only each row's best block
HEADS = [(min(CONFIG.seq_max, 20), False, 0, False), (13, True, 2, False),
         (1, False, 0, False), (9, True, 0, True)]


class GeneratorTB:
    def __init__(self, dut):
        self.dut = dut
        self.rng = random.Random(6)
        self.masks = StreamSource(dut, "i_mask", LAYOUTS["mask"], idle=0.3, seed=1)
        self.pairs = StreamSink(dut, "o_pair", LAYOUTS["pair"], backpressure=0.3, seed=2)
        self.zeros = StreamSink(dut, "o_zero_row", ZERO_ROW, backpressure=0.3, seed=3)
        for name in ("start", "seq_len", "causal", "go", "prune_head", "row_done"):
            getattr(dut, name).value = 0
        self.started, self.returned = set(), 0
        cocotb.start_soon(self._credits())

    async def _credits(self):
        """Each finished row's credit comes back on row_done 0 to 6 cycles later, as the
        output serializer's would (one a cycle); checks the rows in flight."""
        dut, due = self.dut, []
        while True:
            await RisingEdge(dut.clk)
            finished = []
            if int(dut.o_pair__valid.value) and int(dut.o_pair__ready.value):
                pair = unpack(LAYOUTS["pair"], dut.o_pair__payload.value.to_unsigned())
                self.started.add(pair["row"])
                finished += [pair["row"]] if pair["last"] else []
            if int(dut.o_zero_row__valid.value) and int(dut.o_zero_row__ready.value):
                row = unpack(ZERO_ROW, dut.o_zero_row__payload.value.to_unsigned())["row"]
                self.started.add(row)
                finished.append(row)
            assert len(self.started) - self.returned <= ROWS_IN_FLIGHT, "too many rows out"
            self.returned += int(dut.row_done.value)
            due = sorted([t - 1 for t in due] + [self.rng.randint(0, 6) for _ in finished])
            back = bool(due) and due[0] <= 0
            dut.row_done.value = int(back)
            due = due[1:] if back else due

    async def check_head(self, n: int, causal: bool, delta: int, pruned: bool, seed: int):
        rng = np.random.default_rng(seed)
        q, k, v = rng.integers(CONFIG.data_min, CONFIG.data_max + 1, (3, n, CONFIG.head_dim))
        res = golden.attention_head(q, k, v, CONFIG, Registers(
            seq_len=n, causal=causal, delta=delta, score_scale=1 << 10))
        keep = np.zeros_like(res.keep) if pruned else res.keep
        want_pairs = [{"row": r, "col": int(c), "last": int(c == np.flatnonzero(keep[r])[-1])}
                      for r in range(n) for c in np.flatnonzero(keep[r])]
        want_zero = [{"row": r} for r in range(n) if not keep[r].any()]
        dut = self.dut
        dut.seq_len.value, dut.causal.value, dut.start.value = n, int(causal), 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        self.masks.send_all({"mask": sum(int(b) << c for c, b in enumerate(row)),
                             "last_row": int(r == len(res.block_keep) - 1)}
                            for r, row in enumerate(res.block_keep))
        await self.masks.wait_idle()
        await ReadOnly()
        assert int(dut.masks_done.value), f"masks_done low after the {n}-row head's masks"
        await RisingEdge(dut.clk)
        self.started, self.returned = set(), 0
        dut.go.value, dut.prune_head.value = 1, int(pruned)
        await RisingEdge(dut.clk)
        dut.go.value = 0
        got_pairs = [await self.pairs.recv() for _ in want_pairs]
        got_zero = [await self.zeros.recv() for _ in want_zero]
        assert got_pairs == want_pairs, (n, causal, delta)
        assert got_zero == want_zero, (n, causal, delta)
        for _ in range(20):                   # nothing more comes
            await RisingEdge(dut.clk)
            assert not int(dut.o_pair__valid.value) and not int(dut.o_zero_row__valid.value)


@cocotb.test()
async def kept_pairs_match_golden(dut):
    await past_time_zero()
    tb = GeneratorTB(dut)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for i, head in enumerate(HEADS):
        await tb.check_head(*head, seed=i)
