"""Formal harness of :class:`~hdp_rtl.rtl.block_selector.BlockSelector`."""
from amaranth.hdl import Cat, Const, Elaboratable, Mux, Signal

from ..config import RHO_ONE
from ..rtl.block_selector import BlockSelector
from .common import Assert, Assume, Cover, UpDown, any_const, drive_any, harness_module, stream_rules

__all__ = ["BlockSelectorHarness"]


class BlockSelectorHarness(Elaboratable):
    """Input ``i_block`` (assumed: stream rules; the head scorer's contract of at most
    ``block_col_count`` blocks a row in strictly increasing column order), output
    ``o_mask`` (asserted: stream rules).

    Proven (k-induction): the stream rules on ``o_mask``. With ``functional`` (BMC),
    the beat counting, which needs the rows held inside (two banks, two mask slots): a
    mask only for a received block row; blocks taken while no row is inside and while a
    row is in progress; while a mask is offered, a row is inside, two when the input is
    not ready; at most three rows inside (one offered, one compared into the other
    slot, one complete in a bank), none taken while three are; masks in row order with
    ``last_row`` copied; a row inside waits at most ``block_col_count + 5`` cycles
    (``+ threshold_cycles(block_col_count)`` for the serial implementation) without a
    mask being offered. With ``functional`` it also asserts that a mask keeps only
    blocks that came in, all of them when ``block_prune_enable`` is low, and always the
    row's best block, with either rule (the delta rule for any ``delta``; the mean rule
    for any ``rho`` in -256..256, as ``256 nb max - rho nb max - (256 - rho) sum = (256
    - rho) (nb max - sum) >= 0``) - these need the stored blocks, so they are checked by
    BMC.

    ``serial`` picks the implementation (default: the one ``from_config`` picks, the
    products for the small configuration of ``checks.py``). For the products the mean
    rule's best-block property is non-linear (the DUT's ``rho * (nb max)`` and ``(256 -
    rho) sum`` multipliers) and the solver does not finish with a free ``rho``:
    ``mean_best`` False asserts it for the delta rule only, ``rho_values`` assumes
    ``rho`` is one of these values (the serial margin needs neither: its threshold
    ``t >= 0`` is an unsigned register).
    """

    def __init__(self, config, *, functional: bool = False, serial: bool | None = None,
                 rho_values=None, mean_best: bool = True):
        self.config = config
        self.mean_best = mean_best
        self.functional = functional
        self.serial = serial
        self.rho_values = None if rho_values is None else tuple(rho_values)

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        m.submodules.dut = dut = BlockSelector.from_config(cfg, serial=self.serial)
        count = cfg.block_col_count
        ib, om = dut.i_block, dut.o_mask

        # run-time registers: stable for the whole run
        for reg in (dut.block_prune_enable, dut.block_rule, dut.rho, dut.delta):
            m.d.comb += reg.eq(any_const(len(reg)))
        m.d.comb += Assume((dut.rho >= -RHO_ONE) & (dut.rho <= RHO_ONE), "rho in -256..256")
        if self.rho_values is not None:
            assert all(-RHO_ONE <= v <= RHO_ONE for v in self.rho_values)
            m.d.comb += Assume(Cat(*(dut.rho == v for v in self.rho_values)).any(),
                               "rho in " + ", ".join(map(str, self.rho_values)))
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

        # one mask per block row: the selector is double-banked with two mask slots, so at
        # most three rows are inside (one whose mask is offered, one being compared into
        # the other slot, one complete in the bank the first one left); the harness keeps
        # what it must know of each (a three-entry queue, oldest first)
        rows = UpDown(m, up=fire_in & ib.payload.last, down=fire_out, max=3, name="rows_pending")
        seen = Signal(count)                 # blocks of the row being received
        best_bi = Signal.like(ib.payload.bi)
        best_col = Signal(range(count))
        bit = (Const(1, count) << ib.payload.col)[:count]
        new_best = (in_row == 0) | (ib.payload.bi > best_bi)
        with m.If(fire_in):
            m.d.sync += seen.eq(seen | bit)
            with m.If(new_best):
                m.d.sync += [best_bi.eq(ib.payload.bi), best_col.eq(ib.payload.col)]
            with m.If(ib.payload.last):
                m.d.sync += seen.eq(0)
        # a closed row: last_row, the blocks that came in, the best block's column
        entry = Cat(ib.payload.last_row, seen | bit, Mux(new_best, ib.payload.col, best_col))
        queue = [Signal(len(entry), name=f"row_queue{i}") for i in range(3)]
        with m.If(fire_out):
            m.d.sync += [queue[0].eq(queue[1]), queue[1].eq(queue[2])]
        with m.If(fire_in & ib.payload.last):
            slot = rows.value - fire_out
            for i in range(3):
                with m.If(slot == i):
                    m.d.sync += queue[i].eq(entry)
        head_last_row = queue[0][0]
        row_cols = queue[0][1:1 + count]
        closed_best = queue[0][1 + count:]
        # bounded latency (taken, read nb cycles, 4 stages, offered a cycle later; the
        # serial threshold's cycles more): a row inside waits at most block_col_count + 5
        # (+ threshold_cycles) cycles for its mask to be offered (BMC: + 4 fails)
        bound = count + 5 + dut.threshold_cycles(count)
        wait = Signal(range(bound + 5))
        with m.If((rows.value != 0) & ~om.valid & (wait < bound + 4)):
            m.d.sync += wait.eq(wait + 1)
        with m.Elif((rows.value == 0) | om.valid):
            m.d.sync += wait.eq(0)
        if self.functional:
            m.d.comb += [
                Assert(wait <= bound, "a row's mask offered within block_col_count + 5 "
                       "(+ threshold_cycles) cycles"),
                Assert(rows.value <= 3, "at most three block rows inside (two mask slots "
                       "and a bank)"),
                Assert((rows.value != 3) | ~ib.ready, "no block taken while three rows are inside"),
            ]
        if self.functional:
            m.d.comb += [
                Assert(~om.valid | (rows.value != 0), "a mask only for a received block row"),
                Assert((rows.value != 0) | ib.ready, "blocks taken while no row is inside"),
                Assert((in_row == 0) | ib.ready, "a row in progress is taken"),
                # while a mask is offered, a complete row waits in a bank when not ready
                Assert(~om.valid | (rows.value >= Mux(ib.ready, 1, 2)),
                       "a mask offered: a row inside, two when a bank holds a complete row"),
            ]
        m.d.comb += [
            Cover(fire_out & om.payload.last_row, "a head's last mask sent"),
            Cover(fire_in & (rows.value == 1) & ib.payload.last,
                  "a block row completes while the previous one is inside"),
            Cover(rows.value == 3, "three block rows inside: one offered, one compared, "
                  "one complete in a bank"),
        ]
        # a row of several blocks that keeps only one
        if count > 1:
            m.d.comb += Cover(fire_out & (rows.value == 1) & (row_cols != 0)
                              & ((row_cols & (row_cols - 1)) != 0) & (om.payload.mask != 0)
                              & ((om.payload.mask & (om.payload.mask - 1)) == 0),
                              "a row of two or more blocks with only one kept")

        if self.functional:
            # these follow the rows' data through the banks: BMC only (k-induction cannot
            # link the harness's queue to a row held in a stalled bank)
            with m.If(om.valid):
                m.d.comb += [
                    Assert(om.payload.last_row == head_last_row, "last_row copied, rows in order"),
                    Assert((om.payload.mask & ~row_cols) == 0, "mask keeps only received blocks"),
                    Assert(dut.block_prune_enable | (om.payload.mask == row_cols),
                           "no pruning: every received block kept"),
                    # BI = max passes the delta rule (max - delta, delta >= 0) and the mean
                    # rule: 256 nb max - rho nb max - (256 - rho) sum = (256 - rho) (nb max
                    # - sum) >= 0 for rho <= 256 (without ``mean_best`` the delta rule only)
                    Assert(~dut.block_prune_enable
                           | ((dut.block_rule == 0) if not self.mean_best else Const(0))
                           | om.payload.mask.bit_select(closed_best, 1),
                           "the row's best block is kept (both rules)" if self.mean_best
                           else "delta rule: the row's best block is kept"),
                ]
        return m
