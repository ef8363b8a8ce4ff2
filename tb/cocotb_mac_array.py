"""MAC array Verilog: scores (approximation on and off, in builds with the unit) and P x V rows (chunks, on row
credits) vs the golden model, the second time with both outputs held full for a while
first (credits, not a stall). With the channel mask's skipping (``score_last_chunk``,
configs with ``channel_pruning``) the second pass runs its scores on the first chunks
only: the scores of Q and K cut to those chunks' channels."""
import cocotb
from cocotb.triggers import ClockCycles
import numpy as np

import golden
from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.layouts import layouts_for
from row_chunks import RowChunkSink
from rowmem_model import RowMemModel
from streams import StreamSink, StreamSource, env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
LAYOUTS = layouts_for(CONFIG)


@cocotb.test()
async def scores_and_outputs_match_golden(dut):
    await past_time_zero()
    rng = np.random.default_rng(3)
    n = min(CONFIG.seq_max, 9)
    lo, hi = -(1 << (CONFIG.data_bits - 1)), 1 << (CONFIG.data_bits - 1)
    q, k, v = rng.integers(lo, hi, (3, n, CONFIG.head_dim))
    for name, rows in (("q_rd", q), ("k_rd", k), ("v_rd", v)):
        RowMemModel(dut, name, CONFIG, rows)
    pairs_in = StreamSource(dut, "i_pair", LAYOUTS["pair"], idle=0.3, seed=1)
    probs_in = StreamSource(dut, "i_prob", LAYOUTS["prob"], idle=0.3, seed=2)
    scores_out = StreamSink(dut, "o_score", LAYOUTS["score"], backpressure=0.3, seed=3)
    rows_out = RowChunkSink(dut, "o_chunk", dut.i_row_free, CONFIG, hold=0.5, seed=4)
    chunks = CONFIG.head_dim // CONFIG.mac_lanes
    skip = hasattr(dut, "score_last_chunk")
    approx_built = hasattr(dut, "approx_enable")     # (HDPConfig.approximation)
    if approx_built:
        dut.approx_enable.value = 0
    if skip:
        dut.score_last_chunk.value = chunks - 1
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    for first in (True, False):
        # the first pass approximated (when built), the second exact with scores over
        # the first chunk only (when skipping), P x V over all
        approx = first and approx_built
        if approx_built:
            dut.approx_enable.value = int(approx)
        kept = CONFIG.head_dim if first or not skip else CONFIG.mac_lanes
        if skip:
            dut.score_last_chunk.value = kept // CONFIG.mac_lanes - 1
        keep = rng.random((n, n)) < 0.6
        keep[np.arange(n), rng.integers(0, n, n)] = True
        p = np.where(keep, rng.integers(0, 1 << CONFIG.prob_bits, (n, n)), 0)
        p = p * (1 << CONFIG.prob_bits) // np.maximum(p.sum(axis=1, keepdims=True), 1)
        cols = [np.flatnonzero(keep[r]) for r in range(n)]
        pairs_in.send_all({"row": r, "col": int(c), "last": int(c == cols[r][-1])}
                          for r in range(n) for c in cols[r])
        probs_in.send_all({"prob": int(p[r, c]), "col": int(c), "last": int(c == cols[r][-1])}
                          for r in range(n) for c in cols[r])
        if not first:
            # outputs full: the array takes what its credits allow and waits, losing nothing
            scores_out.backpressure = rows_out.hold = 1.0
            await ClockCycles(dut.clk, 40 * CONFIG.head_dim // CONFIG.mac_lanes)
            scores_out.backpressure, rows_out.hold = 0.3, 0.5
        want_s = golden.full_scores(q[:, :kept], k[:, :kept], CONFIG, approx)
        want_out = golden.pv_output(p, v, CONFIG)
        for r in range(n):
            for c in cols[r]:
                got = await scores_out.recv()
                assert got == {"score": int(want_s[r, c]), "col": int(c), "last": int(c == cols[r][-1])}, \
                    f"approx={approx} pair ({r},{c}): {got}"
        for r in range(n):
            got = await rows_out.recv()
            assert got == [int(x) for x in want_out[r]], f"approx={approx} row {r}"
