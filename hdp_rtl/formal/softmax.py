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
    ``last`` copied (a symbolic beat index, see :class:`.order.InOrder`), and no more
    rows and beats are inside than the two score banks, the ``EXP_BANKS`` exps banks and
    the normalise credit (pipeline and output FIFO) hold (BMC).
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
            # a row is in a score bank (received, until its last exponential read), in an
            # exps bank (from its exponential pass to its last normalise read) or, after
            # that, has a beat in the normalise pipeline or the FIFO (at most FIFO_DEPTH)
            banks = 2 + dut.EXP_BANKS
            max_rows = banks + dut.FIFO_DEPTH
            max_beats = banks * cfg.seq_max + dut.FIFO_DEPTH
            rows = UpDown(m, up=fire_in & i.payload.last, down=fire_out & o.payload.last,
                          max=max_rows, name="rows_inside")
            beats = UpDown(m, up=fire_in, down=fire_out, max=max_beats, name="beats_inside")
            m.d.comb += [
                Assert(rows.value <= max_rows, "no more rows inside than banks and credit hold"),
                Assert(beats.value <= max_beats, "no more beats inside than fit"),
                Assert(~o.valid | (beats.value != 0), "no output beat without an input beat"),
            ]
            InOrder(m, fire_in=fire_in, in_data=i.payload.as_value()[-(len(o.payload.col) + 1):],
                    fire_out=fire_out, out_data=o.payload.as_value()[-(len(o.payload.col) + 1):],
                    max_beats=self.max_beats, name="col_last")
            # rows overlap: a row sent while the next two are complete inside
            m.d.comb += Cover(fire_out & o.payload.last & (rows.value == 3),
                              "a row sent while the next two are complete inside")
        return m
