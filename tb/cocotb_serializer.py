"""Output serializer Verilog: computed rows (chunks on credits) and zero rows leave on
m_axis in row order, in sign-extended lanes, tlast on each head's last beat, under random
idle and back-pressure."""
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.pair_generator import zero_row_layout
from row_chunks import RowChunkSource
from streams import AxisPort, StreamSink, StreamSource, env_json, past_time_zero, \
    start_clock_and_reset
from tb.beats import output_rows

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
BPR = CONFIG.beats_per_row


@cocotb.test()
async def rows_in_order(dut):
    await past_time_zero()
    rows_in = RowChunkSource(dut, "i_chunk", dut.row_free, CONFIG, idle=0.3, seed=1)
    zeros_in = StreamSource(dut, "i_zero_row", zero_row_layout(seq_bits=CONFIG.seq_bits),
                            idle=0.3, seed=2)
    port = AxisPort(dut, "m_axis")
    sink = StreamSink(port, "axis", port.layout, backpressure=0.4, seed=3)
    dut.start.value = dut.seq_len.value = dut.stop.value = 0
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    rng = random.Random(5)
    lo, hi = -(1 << (CONFIG.out_bits - 1)), (1 << (CONFIG.out_bits - 1)) - 1
    for n in (9, 3):
        rows = [None if r in (0, n - 1) or rng.random() < 0.3 else
                [rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(CONFIG.head_dim)]
                for r in range(n)]
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        dut.seq_len.value = n
        for r, row in enumerate(rows):    # in order: a zero row's token goes out early
            if row is None:
                zeros_in.send_nowait({"row": r})
            else:
                await zeros_in.wait_idle()
                rows_in.send_nowait(row)
        beats = [await sink.recv() for _ in range(n * BPR)]
        assert output_rows(CONFIG, [b["tdata"] for b in beats]) == \
            [row or [0] * CONFIG.head_dim for row in rows]
        assert [b["tlast"] for b in beats] == [0] * (n * BPR - 1) + [1]
        await ReadOnly()
        assert int(dut.done.value)
        await RisingEdge(dut.clk)
