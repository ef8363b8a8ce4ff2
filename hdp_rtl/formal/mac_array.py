"""Formal harness of :class:`~hdp_rtl.rtl.mac_array.MacArray`."""
from ..rtl.mac_array import MacArray
from amaranth.hdl import Signal

from .common import (Assert, Assume, Cover, UpDown, any_const, drive_any, harness_module,
                     stream_rules)
from .order import BeatsHarness, InOrder

__all__ = ["MacArrayHarness"]


class MacArrayHarness(BeatsHarness):
    """Inputs ``i_pair`` and ``i_prob`` (assumed: stream rules), output ``o_score``
    (asserted: stream rules); row-buffer data is free. ``o_chunk`` has no ready: the
    consumer frees a row on ``i_row_free`` any time after it came (assumed).

    With ``beats``: every pair gives exactly one score, in order, with ``col`` and
    ``last`` copied; every probability row (``last``) gives exactly one output row of
    ``head_dim / mac_lanes`` chunks, ``last`` on its last chunk only; at most
    ``score_depth`` pairs (the score credits) and ``out_rows`` probability rows not
    yet freed (the row credits) are inside, and never more than ``out_rows`` rows sent
    and not freed (BMC: these counts are the harness's, which k-induction would start
    from states the array cannot reach).

    With ``hazard`` (the accumulators in block RAM, ``pv_acc_ram``): no accumulator word
    is read in a cycle it is written in, or in the cycle before (a stale or undefined
    word). BMC only: k-induction would start from unreachable pipeline states, so a
    proof of the stream rules leaves it out.
    """

    def __init__(self, config, *, beats: bool = False, hazard: bool = False, **kwargs):
        super().__init__(config, beats=beats, **kwargs)
        self.hazard = hazard

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        m.submodules.dut = dut = MacArray.from_config(cfg)
        if dut.approximation:
            m.d.comb += dut.approx_enable.eq(any_const(1))
        drive_any(m, dut.q_rd.data, dut.k_rd.data, dut.v_rd.data,
                  dut.i_pair.valid, dut.i_pair.payload, dut.i_prob.valid, dut.i_prob.payload,
                  dut.o_score.ready, dut.i_row_free)
        fire_pair = stream_rules(m, dut.i_pair.valid, dut.i_pair.ready, dut.i_pair.payload,
                                 output=False, name="i_pair")
        fire_prob = stream_rules(m, dut.i_prob.valid, dut.i_prob.ready, dut.i_prob.payload,
                                 output=False, name="i_prob")
        fire_score = stream_rules(m, dut.o_score.valid, dut.o_score.ready, dut.o_score.payload,
                                  output=True, name="o_score")
        chunks = cfg.head_dim // cfg.mac_lanes
        chunk = dut.o_chunk
        fire_out = chunk.valid & chunk.payload.last
        in_row = Signal(range(chunks + 1), name="chunks_of_row")
        with m.If(chunk.valid):
            m.d.sync += in_row.eq(in_row + 1)
            with m.If(chunk.payload.last):
                m.d.sync += in_row.eq(0)
        held = UpDown(m, up=fire_out, down=dut.i_row_free, max=dut.out_rows, name="rows_held")
        m.d.comb += [
            Assume(~dut.i_row_free | (held.value != 0)),
            Cover(fire_score & dut.o_score.payload.last, "a row's last score sent"),
            Cover(fire_out, "an output row sent"),
        ]
        if self.hazard:
            assert dut.acc_ram, "the hazard check needs pv_acc_ram"
            m.d.comb += Assert(~dut.acc_ram_hazard,
                               "no accumulator word read as it is written or just before")
        if self.beats:
            depth = dut.score_depth
            pairs = UpDown(m, up=fire_pair, down=fire_score, max=depth, name="pairs_inside")
            prow = UpDown(m, up=fire_prob & dut.i_prob.payload.last, down=fire_out,
                          max=dut.out_rows + 1, name="prob_rows_inside")
            m.d.comb += [
                Assert(pairs.value <= depth, "at most score_depth pairs inside"),
                Assert(~dut.o_score.valid | (pairs.value != 0), "no score without a pair"),
                Assert(prow.value + held.value <= dut.out_rows,
                       "at most out_rows probability rows not freed"),
                Assert(~chunk.valid | (prow.value != 0), "no output chunk without a row"),
                Assert(in_row < chunks, "no row of more than head_dim / mac_lanes chunks"),
                Assert(~chunk.valid | (chunk.payload.last == (in_row == chunks - 1)),
                       "last on a row's last chunk only"),
                Assert(held.value <= dut.out_rows, "at most out_rows rows sent and not freed"),
            ]
            bits = len(dut.o_score.payload.col) + 1
            InOrder(m, fire_in=fire_pair, in_data=dut.i_pair.payload.as_value()[-bits:],
                    fire_out=fire_score, out_data=dut.o_score.payload.as_value()[-bits:],
                    max_beats=self.max_beats, name="pair_score")
            m.d.comb += Cover(pairs.value == depth, "every score credit taken")
        return m
