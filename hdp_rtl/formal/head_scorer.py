"""Formal harness of :class:`~hdp_rtl.rtl.head_scorer.HeadScorer`."""
from amaranth.hdl import Elaboratable, Mux, Signal

from ..rtl.head_scorer import HeadScorer
from .common import Assert, Assume, Cover, any_const, drive_any, harness_module, stream_rules

__all__ = ["HeadScorerHarness"]


class HeadScorerHarness(Elaboratable):
    """``start`` is free; ``seq_len`` (1..seq_max) and ``causal`` are constants; the
    row-buffer data and ``q_rows`` are free. Output ``o_block`` (asserted: stream rules).

    With ``beats``: block rows come with columns 0, 1, ... and ``last`` exactly on the
    row's last valid block (``(last row of the block row, or seq_len-1 without the
    causal mask) // block_cols``); a head has ``ceil(seq_len / block_rows)`` block rows,
    ``last_row`` exactly on the final one; no block while idle (BMC).
    """

    def __init__(self, config, *, beats: bool = False):
        self.config = config
        self.beats = beats

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        m.submodules.dut = dut = HeadScorer.from_config(cfg)
        o = dut.o_block
        n = dut.seq_len
        m.d.comb += [n.eq(any_const(len(n))), dut.causal.eq(any_const(1))]
        m.d.comb += Assume((n >= 1) & (n <= cfg.seq_max), "seq_len in 1..seq_max")
        # q_rows free: no safety property may depend on Q's arrival (the loop only waits)
        drive_any(m, dut.start, dut.q_rd.data, dut.k_rd.data, o.ready, dut.q_rows)
        fire = stream_rules(m, o.valid, o.ready, o.payload, output=True, name="o_block")
        m.d.comb += Cover(fire & o.payload.last & o.payload.last_row, "a head's last block sent")

        if self.beats:
            br, bc = cfg.block_rows, cfg.block_cols
            heads = Signal(2)            # heads started (saturating at 2)
            brow = Signal(range(cfg.block_row_count + 1))    # block rows sent this head
            col = Signal(range(cfg.block_col_count + 1))     # blocks sent this block row
            with m.If(dut.start & ~dut.busy):
                m.d.sync += [brow.eq(0), col.eq(0), heads.eq(Mux(heads == 2, 2, heads + 1))]
            with m.If(fire):
                m.d.sync += col.eq(col + 1)
                with m.If(o.payload.last):
                    m.d.sync += [col.eq(0), brow.eq(brow + 1)]
            rows_in_brow_end = Signal(range(cfg.seq_max + br))
            m.d.comb += rows_in_brow_end.eq(brow * br + br - 1)
            last_r = Mux(rows_in_brow_end < n - 1, rows_in_brow_end, n - 1)
            last_c = Mux(dut.causal, last_r, n - 1) // bc
            n_brows = (n + br - 1) // br
            with m.If(o.valid):
                m.d.comb += [
                    Assert(heads != 0, "no block before the first start"),
                    Assert(o.payload.col == col, "block columns 0, 1, ... in order"),
                    Assert(o.payload.last == (col == last_c), "last on the row's last valid block"),
                    Assert(brow < n_brows, "no more block rows than the head has"),
                    Assert(~o.payload.last | (o.payload.last_row == (brow == n_brows - 1)),
                           "last_row on the head's final block row"),
                ]
            m.d.comb += Cover(fire & o.payload.last_row & (n == cfg.seq_max) & dut.causal,
                              "a causal head of seq_max tokens done")
        return m
