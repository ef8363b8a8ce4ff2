"""LeOPArd-style score-threshold block selection behind the selection seam (selector
``"threshold"``; issue 13 item 1)."""
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..widths import index_bits
from .layouts import block_layout, mask_layout

__all__ = ["ThresholdSelector"]


class ThresholdSelector(wiring.Component):
    """Keeps the blocks of each block row at or above ``score_threshold``, and the row's best.

    A block is kept when ``BI >= score_threshold`` (signed) or it is the row's best
    block (the largest ``BI``, the lowest column of a tie): bit-exact with
    :func:`golden.selectors.select_threshold`. With ``block_prune_enable`` low every
    valid block is kept.

    No row buffer: each block is registered as it is taken, and the cycle after, while
    the row streams in (columns in order, as the head scorer sends them), updates the
    mask of the blocks at or above the threshold and the row's running maximum with the
    one-hot mask of its column (replaced only by a larger block: the lowest column of a
    tie stays), two compares a block. The row's last block writes their OR as the row's
    mask into the output register, and the running values start over. The block
    register never waits: a row's last block is taken only when the output register
    will be free the next cycle. So no enable of the wide masks hangs off a port, and
    ``o_mask.ready`` reaches only ``i_block.ready`` (timing: docs/units.md).

    Parameters
    ----------
    block_col_count : int
        Blocks in a block row: the mask width.
    sint_bits : int
        Signed width of a block importance, and of ``score_threshold``.

    Members
    -------
    block_prune_enable : In(1)
        Run-time register, stable during a head (:meth:`drive_registers`).
    score_threshold : In(signed(sint_bits))
        Run-time register, stable during a head.
    i_block : In(stream.Signature(block_layout))
        The valid blocks of each block row (``last`` ends the row).
    o_mask : Out(stream.Signature(mask_layout))
        One keep mask per block row; ``last_row`` copied from the row's last block.

    Cycles: a block a cycle within a row; a row's mask is offered two cycles after its
    last block is taken. A row's last block waits while the previous row's last block
    is in the block register or its mask is offered and not taken: without
    back-pressure a row of one block waits a cycle (rows take ``max(nb, 2)`` cycles;
    BlockSelector's take ``nb + 1``).
    """

    def __init__(self, *, block_col_count: int, sint_bits: int):
        self.block_col_count = block_col_count
        self.sint_bits = sint_bits
        super().__init__({
            "block_prune_enable": In(1),
            "score_threshold": In(signed(sint_bits)),
            "i_block": In(stream.Signature(block_layout(
                sint_bits=sint_bits, block_col_bits=index_bits(block_col_count)))),
            "o_mask": Out(stream.Signature(mask_layout(block_col_count=block_col_count))),
        })

    @classmethod
    def from_config(cls, config):
        """The selector of ``config``: its block rows of ``BI``."""
        return cls(block_col_count=config.block_col_count, sint_bits=config.sint_bits)

    def drive_registers(self, m, run):
        """Connect the run-time registers this policy reads from the latched ``run``."""
        m.d.comb += [self.block_prune_enable.eq(run.flags.block_prune_enable),
                     self.score_threshold.eq(run.score_threshold)]

    def elaborate(self, platform):
        m = Module()
        bcc = self.block_col_count
        beat = self.i_block.payload
        taken = self.i_block.valid & self.i_block.ready

        # the block register: payload captured every cycle (no enable); ``step`` a
        # row's block but its last taken, ``end`` a row's last (the wide masks' controls:
        # ``last`` itself stays off their fan-out)
        blk = Signal.like(beat)
        step, end = Signal(), Signal()
        # the threshold compare on the way in: the registered result, not the carry
        # chain, fans out to the mask (pruning off: every block passes)
        passes = Signal()
        # likewise ``bi > row max`` against the maximum as the block before leaves it
        greater = Signal()
        # a row's last block writes the output register the cycle after: taken only when
        # neither the block register nor the output register holds a mask then
        out_free = ~self.o_mask.valid | self.o_mask.ready
        m.d.comb += self.i_block.ready.eq(~beat.last | (~end & out_free))
        m.d.sync += [blk.eq(beat), step.eq(taken & ~beat.last), end.eq(taken & beat.last),
                     passes.eq(~self.block_prune_enable | (beat.bi >= self.score_threshold))]

        # the running row: the blocks at or above the threshold, its maximum and its
        # column's one-hot mask (``first``: no block of the row yet)
        above = Signal(bcc)
        row_max = Signal(signed(self.sint_bits))
        best = Signal(bcc)
        first = Signal(init=1)

        bit = Signal(bcc)
        m.d.comb += bit.eq(Const(1, bcc) << blk.col)
        take = first | greater                          # strict: a tie keeps the lower column
        # both compares start from registers; only the choice waits for ``take``
        max_from_blk = take & step
        m.d.sync += [greater.eq(Mux(max_from_blk, beat.bi > blk.bi, beat.bi > row_max)),
                     row_max.eq(Mux(max_from_blk, blk.bi, row_max))]
        next_above = Mux(passes, above | bit, above)
        next_best = Mux(take, bit, best)

        with m.If(self.o_mask.valid & self.o_mask.ready):
            m.d.sync += self.o_mask.valid.eq(0)
        with m.If(step):
            m.d.sync += [above.eq(next_above), best.eq(next_best), first.eq(0)]
        with m.If(end):
            m.d.sync += [self.o_mask.payload.mask.eq(next_above | next_best),
                         self.o_mask.payload.last_row.eq(blk.last_row),
                         self.o_mask.valid.eq(1),
                         above.eq(0), first.eq(1)]
        return m
