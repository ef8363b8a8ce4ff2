"""Input unpacker Verilog: the words of K, Q, V rows in order from s_axis beats under random idle and
back-pressure, tlast errors raised on their beats, one last_row per head."""
import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import INPUT_ORDER, TENSOR_CODE, ErrorCode
from hdp_rtl.rtl.unpacker import word_write_layout
from streams import AxisPort, StreamSink, StreamSource, env_json, past_time_zero, \
    start_clock_and_reset
from tb.beats import input_beats

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
WORD = word_write_layout(seq_bits=CONFIG.seq_bits, words=CONFIG.row_words,
                         word_elems=CONFIG.row_word_elems, data_bits=CONFIG.data_bits)


class UnpackerTB:
    def __init__(self, dut):
        self.dut = dut
        port = AxisPort(dut, "s_axis")
        self.source = StreamSource(port, "axis", port.layout, idle=0.3, seed=1)
        self.sink = StreamSink(dut, "o_word", WORD, backpressure=0.3, seed=2)
        self.errors, self.last_rows, self.beats = [], [], 0
        dut.start.value = dut.seq_len.value = 0
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            if int(dut.error.value):
                self.errors.append((self.beats, int(dut.error.value)))
            if int(dut.last_row.value) and int(dut.o_word__ready.value):
                self.last_rows.append(self.beats)
            self.beats += int(dut.beat.value)

    async def check_head(self, x, beats, errors):
        """Send ``beats`` for head ``x`` (in stream order: K, Q, V); check its rows and
        ``errors`` (the
        index of each beat raising one, and its code)."""
        n = len(x[0])
        self.errors.clear()
        self.last_rows.clear()
        self.beats = 0
        self.dut.start.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.start.value = 0
        self.dut.seq_len.value = n
        self.source.send_all(beats)
        e = CONFIG.row_word_elems
        for t in range(3):
            for r in range(n):
                for w in range(CONFIG.row_words):
                    got = await self.sink.recv()
                    code = TENSOR_CODE[INPUT_ORDER[t]]
                    want = [int(v) for v in x[t][r][w * e:(w + 1) * e]]
                    assert got == {"tensor": code, "row": r, "word": w, "data": want}, (t, r, w)
        assert self.errors == errors
        assert self.last_rows == [len(beats) - 1]


@cocotb.test()
async def rows_and_errors(dut):
    await past_time_zero()
    tb = UnpackerTB(dut)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    rng = np.random.default_rng(4)
    for n in (5, 2):
        x = rng.integers(CONFIG.data_min, CONFIG.data_max + 1, (3, n, CONFIG.head_dim))
        beats = [b for t in x for b in input_beats(CONFIG, t)]
        errors = []
        if n == 2:                        # tlast missing at K's end, early in Q
            per_tensor = len(beats) // 3
            for i in (per_tensor - 1, per_tensor + 1):
                beats[i]["tlast"] ^= 1
                errors.append((i, ErrorCode.INPUT_TLAST))
        await tb.check_head(x, beats, errors)
