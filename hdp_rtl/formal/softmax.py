"""Formal harness of :class:`~hdp_rtl.rtl.softmax.Softmax`."""
from amaranth.hdl import Signal

from ..rtl.softmax import Softmax
from .common import Assert, Assume, Cover, UpDown, any_const, drive_any, harness_module, stream_rules
from .order import BeatsHarness, InOrder

__all__ = ["SoftmaxHarness"]


class SoftmaxHarness(BeatsHarness):
    """Input ``i_score`` (assumed: stream rules, rows of at most ``seq_max`` beats),
    output ``o_prob`` (asserted: stream rules).

    With ``beats``: every input beat leaves exactly once, in order, with ``col`` and
    ``last`` copied (a symbolic beat index, see :class:`.order.InOrder`), and at most
    two rows plus the output register are inside (BMC).
    """

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        m.submodules.dut = dut = Softmax.from_config(cfg)
        i, o = dut.i_score, dut.o_prob
        m.d.comb += dut.score_scale.eq(any_const(len(dut.score_scale)))
        drive_any(m, i.valid, i.payload, o.ready)
        fire_in = stream_rules(m, i.valid, i.ready, i.payload, output=False, name="i_score")
        fire_out = stream_rules(m, o.valid, o.ready, o.payload, output=True, name="o_prob")

        in_row = Signal(range(cfg.seq_max + 1))
        with m.If(fire_in):
            m.d.sync += in_row.eq(in_row + 1)
            with m.If(i.payload.last):
                m.d.sync += in_row.eq(0)
        m.d.comb += Assume(~i.valid | (in_row != cfg.seq_max - 1) | i.payload.last,
                           "rows of at most seq_max beats")
        m.d.comb += Cover(fire_out & o.payload.last, "a row of probabilities sent")

        if self.beats:
            rows = UpDown(m, up=fire_in & i.payload.last, down=fire_out & o.payload.last,
                          max=3, name="rows_inside")
            beats = UpDown(m, up=fire_in, down=fire_out, max=2 * cfg.seq_max + 1,
                           name="beats_inside")
            m.d.comb += [
                Assert(rows.value <= 3, "at most two banks and the output register hold rows"),
                Assert(beats.value <= 2 * cfg.seq_max + 1, "no more beats inside than fit"),
                Assert(~o.valid | (beats.value != 0), "no output beat without an input beat"),
            ]
            InOrder(m, fire_in=fire_in, in_data=i.payload.as_value()[-(len(o.payload.col) + 1):],
                    fire_out=fire_out, out_data=o.payload.as_value()[-(len(o.payload.col) + 1):],
                    max_beats=self.max_beats, name="col_last")
            # a second row while the first is still being processed
            m.d.comb += Cover(fire_out & o.payload.last & (rows.value == 2),
                              "a row sent while the next one is complete inside")
        return m
