"""Formal harness of :class:`~hdp_rtl.rtl.mac_array.MacArray`."""
from ..rtl.mac_array import MacArray
from .common import Assert, Cover, UpDown, any_const, drive_any, harness_module, stream_rules
from .order import BeatsHarness, InOrder

__all__ = ["MacArrayHarness"]


class MacArrayHarness(BeatsHarness):
    """Inputs ``i_pair`` and ``i_prob`` (assumed: stream rules), outputs ``o_score`` and
    ``o_out`` (asserted: stream rules); row-buffer data is free.

    With ``beats``: every pair gives exactly one score, in order, with ``col`` and
    ``last`` copied; every probability row (``last``) gives exactly one output row;
    at most ``score_depth`` pairs (the score credits) and one probability row (the output
    row's credit) are inside (BMC).

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
        m.d.comb += dut.approx_enable.eq(any_const(1))
        drive_any(m, dut.q_rd.data, dut.k_rd.data, dut.v_rd.data,
                  dut.i_pair.valid, dut.i_pair.payload, dut.i_prob.valid, dut.i_prob.payload,
                  dut.o_score.ready, dut.o_out.ready)
        fire_pair = stream_rules(m, dut.i_pair.valid, dut.i_pair.ready, dut.i_pair.payload,
                                 output=False, name="i_pair")
        fire_prob = stream_rules(m, dut.i_prob.valid, dut.i_prob.ready, dut.i_prob.payload,
                                 output=False, name="i_prob")
        fire_score = stream_rules(m, dut.o_score.valid, dut.o_score.ready, dut.o_score.payload,
                                  output=True, name="o_score")
        fire_out = stream_rules(m, dut.o_out.valid, dut.o_out.ready, dut.o_out.payload,
                                output=True, name="o_out")
        m.d.comb += [
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
            prow = UpDown(m, up=fire_prob & dut.i_prob.payload.last, down=fire_out, max=2,
                          name="prob_rows_inside")
            m.d.comb += [
                Assert(pairs.value <= depth, "at most score_depth pairs inside"),
                Assert(~dut.o_score.valid | (pairs.value != 0), "no score without a pair"),
                Assert(prow.value <= 1, "at most one probability row inside"),
                Assert(~dut.o_out.valid | (prow.value != 0), "no output row without a row"),
            ]
            bits = len(dut.o_score.payload.col) + 1
            InOrder(m, fire_in=fire_pair, in_data=dut.i_pair.payload.as_value()[-bits:],
                    fire_out=fire_score, out_data=dut.o_score.payload.as_value()[-bits:],
                    max_beats=self.max_beats, name="pair_score")
            m.d.comb += Cover(pairs.value == depth, "every score credit taken")
        return m
