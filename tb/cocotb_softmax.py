"""Softmax Verilog: probabilities bit-exact to golden.softmax_rows, rows back to back."""
import random

import cocotb
import numpy as np

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.layouts import layouts_for
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
LAYOUTS = layouts_for(CONFIG)


@cocotb.test()
async def rows_match_golden(dut):
    await past_time_zero()
    rng = random.Random(9)
    source = StreamSource(dut, "i_score", LAYOUTS["score"], idle=0.3, seed=1)
    sink = StreamSink(dut, "o_prob", LAYOUTS["prob"], backpressure=0.3, seed=2)
    dut.score_scale.value = 0
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    lo, hi = -(1 << (CONFIG.score_bits - 1)), (1 << (CONFIG.score_bits - 1)) - 1
    for scale in (23637, (1 << CONFIG.score_scale_bits) - 1):
        dut.score_scale.value = scale
        rows = []
        for i in range(6):
            k = [1, 3, 17, min(CONFIG.seq_max, 40)][i % 4]
            spread = [10, 2000, hi // 2][i % 3]
            base = rng.randint(lo + spread, hi - spread)
            rows.append([base + rng.randint(-spread, spread) for _ in range(k)])
        for row in rows:
            source.send_all({"score": s, "col": c, "last": int(c == len(row) - 1)}
                            for c, s in enumerate(row))
        for r, row in enumerate(rows):
            s = np.array([row], dtype=np.int64)
            p, _, _ = golden.softmax_rows(s, np.ones_like(s, dtype=bool), CONFIG, scale)
            for c, want in enumerate(p[0]):
                got = await sink.recv()
                assert got == {"prob": int(want), "col": c, "last": int(c == len(row) - 1)}, \
                    f"row {r} col {c}: {got}, expected {int(want)}"
