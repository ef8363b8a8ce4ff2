"""Formal harness of :class:`~hdp_rtl.rtl.block_selector.BlockSelector`."""
from amaranth.hdl import Const, Elaboratable, Signal

from ..config import RHO_ONE
from ..rtl.block_selector import BlockSelector
from .common import Assert, Assume, Cover, UpDown, any_const, drive_any, harness_module, stream_rules

__all__ = ["BlockSelectorHarness"]


class BlockSelectorHarness(Elaboratable):
    """Input ``i_block`` (assumed: stream rules; the head scorer's contract of at most
    ``block_col_count`` blocks a row in strictly increasing column order), output
    ``o_mask`` (asserted: stream rules).

    Beats: one mask per input block row (``last``), never two, ``last_row`` copied;
    the selector takes no block while a row is being decided. With ``functional`` it
    also asserts that a mask keeps only blocks that came in, all of them when
    ``block_prune_enable`` is low, and always the row's best block (both rules keep it
    for any ``rho`` in -256..256 and any ``delta``) - these need the stored blocks,
    so they are checked by BMC.
    """

    def __init__(self, config, *, functional: bool = False):
        self.config = config
        self.functional = functional

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        m.submodules.dut = dut = BlockSelector.from_config(cfg)
        count = cfg.block_col_count
        ib, om = dut.i_block, dut.o_mask

        # run-time registers: stable for the whole run
        for reg in (dut.block_prune_enable, dut.block_rule, dut.rho, dut.delta):
            m.d.comb += reg.eq(any_const(len(reg)))
        m.d.comb += Assume((dut.rho >= -RHO_ONE) & (dut.rho <= RHO_ONE), "rho in -256..256")
        drive_any(m, ib.valid, ib.payload, om.ready)

        fire_in = stream_rules(m, ib.valid, ib.ready, ib.payload, output=False, name="i_block")
        fire_out = stream_rules(m, om.valid, om.ready, om.payload, output=True, name="o_mask")

        # the scorer's contract: <= count blocks a row, columns strictly increasing
        in_row = Signal(range(count + 1))       # blocks of the current row taken so far
        prev_col = Signal(len(ib.payload.col))
        with m.If(fire_in):
            m.d.sync += [in_row.eq(0 if count == 1 else in_row + 1), prev_col.eq(ib.payload.col)]
            with m.If(ib.payload.last):
                m.d.sync += in_row.eq(0)
        with m.If(ib.valid):
            m.d.comb += [
                Assume(ib.payload.col < count, "block column in range"),
                Assume((in_row == 0) | (ib.payload.col > prev_col), "columns strictly increase"),
                Assume((in_row != count - 1) | ib.payload.last, "at most block_col_count blocks"),
            ]

        # one mask per block row
        rows = UpDown(m, up=fire_in & ib.payload.last, down=fire_out, max=1, name="rows_pending")
        row_last_row = Signal()
        with m.If(fire_in & ib.payload.last):
            m.d.sync += row_last_row.eq(ib.payload.last_row)
        m.d.comb += [
            Assert(rows.value <= 1, "at most one block row being decided"),
            Assert(~om.valid | (rows.value == 1), "a mask only for a received block row"),
            Assert(ib.ready == (rows.value == 0), "blocks taken only while no row is pending"),
            Assert(~om.valid | (om.payload.last_row == row_last_row), "last_row copied"),
            Assert((rows.value == 1) | (in_row == 0) | ib.ready, "a row in progress is taken"),
            Cover(fire_out & om.payload.last_row, "a head's last mask sent"),
        ]
        # a two-block row that keeps only one block
        two = Signal()
        with m.If(fire_in & ib.payload.last):
            m.d.sync += two.eq(in_row == 1)
        if count > 1:
            m.d.comb += Cover(fire_out & two & (om.payload.mask != 0) &
                              ((om.payload.mask & (om.payload.mask - 1)) == 0),
                              "a two-block row with one block pruned")

        if self.functional:
            seen = Signal(count)                 # blocks of the row being received
            row_cols = Signal(count)             # blocks of the row being decided
            best_bi = Signal.like(ib.payload.bi)
            best_col = Signal(range(count))
            bit = (Const(1, count) << ib.payload.col)[:count]
            with m.If(fire_in):
                m.d.sync += seen.eq(seen | bit)
                with m.If((in_row == 0) | (ib.payload.bi > best_bi)):
                    m.d.sync += [best_bi.eq(ib.payload.bi), best_col.eq(ib.payload.col)]
                with m.If(ib.payload.last):
                    m.d.sync += [row_cols.eq(seen | bit), seen.eq(0)]
            # the best column of the row just closed
            closed_best = Signal(range(count))
            with m.If(fire_in & ib.payload.last):
                with m.If((in_row == 0) | (ib.payload.bi > best_bi)):
                    m.d.sync += closed_best.eq(ib.payload.col)
                with m.Else():
                    m.d.sync += closed_best.eq(best_col)
            with m.If(om.valid):
                m.d.comb += [
                    Assert((om.payload.mask & ~row_cols) == 0, "mask keeps only received blocks"),
                    Assert(dut.block_prune_enable | (om.payload.mask == row_cols),
                           "no pruning: every received block kept"),
                    Assert(om.payload.mask.bit_select(closed_best, 1),
                           "the row's best block is kept"),
                ]
        return m
