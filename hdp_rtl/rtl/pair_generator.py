"""Pair generator: the keep masks of a head in, its kept pairs out (spec step 5's loop)."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import first_set
from .layouts import mask_layout, pair_layout

__all__ = ["PairGenerator", "zero_row_layout"]


def zero_row_layout(*, seq_bits: int) -> data.StructLayout:
    """Pair generator -> output serializer: row ``row`` has no kept pair (its output is 0)."""
    return data.StructLayout({"row": seq_bits})


class PairGenerator(wiring.Component):
    """Stores a head's block keep masks as they come, then walks its rows in order and
    sends every kept, valid pair ``(r, c)`` (``c < seq_len``, and ``c <= r`` when
    ``causal``) in column order; ``last`` marks a row's final pair.

    A row with no kept pair (every block pruned, a pruned head, or with ``Br > 1`` and
    the causal mask only kept blocks right of the row's diagonal) is sent on
    ``o_zero_row`` instead. Whole pruned blocks cost no cycle: from a block's last
    column the generator jumps to the next kept block. Three cycles a row fetch and
    latch its mask.

    The generator starts a row only while fewer than ``rows_in_flight`` rows it started
    have not come back on ``row_done`` (the output serializer taking the row): the
    softmax unit holds two rows, so a score never waits for a softmax buffer that only
    P x V (sharing the MAC array) could free.

    Parameters
    ----------
    seq_max, block_rows, block_cols : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    rows_in_flight : int
        Rows allowed between the generator and the output serializer.

    Members
    -------
    start : In(1)
        A head begins: forget the stored masks.
    seq_len, causal : In
        Run-time registers, stable from ``start`` until the head's rows are sent.
    i_mask : In(stream.Signature(mask_layout))
        One mask per block row, in order; always ready. ``last_row`` ends the head.
    masks_done : Out(1)
        The head's last mask was stored.
    go : In(1)
        Walk the rows (after ``masks_done``); with ``prune_head`` every row is a zero row.
    prune_head : In(1)
    o_pair : Out(stream.Signature(pair_layout))
    o_zero_row : Out(stream.Signature(zero_row_layout))
    row_done : In(1)
        A row left the pipeline (one pulse per row, kept or zero).
    """

    def __init__(self, *, seq_max: int, block_rows: int, block_cols: int,
                 rows_in_flight: int = 2):
        self.seq_max, self.block_rows, self.block_cols = seq_max, block_rows, block_cols
        self.rows_in_flight = rows_in_flight
        self.block_row_count = W.ceil_div(seq_max, block_rows)
        self.block_col_count = W.ceil_div(seq_max, block_cols)
        self.seq_bits = W.index_bits(seq_max)
        super().__init__({
            "start": In(1), "seq_len": In(W.bits_for(seq_max)), "causal": In(1),
            "i_mask": In(stream.Signature(mask_layout(block_col_count=self.block_col_count))),
            "masks_done": Out(1),
            "go": In(1), "prune_head": In(1),
            "o_pair": Out(stream.Signature(pair_layout(seq_bits=self.seq_bits))),
            "o_zero_row": Out(stream.Signature(zero_row_layout(seq_bits=self.seq_bits))),
            "row_done": In(1),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, block_rows=config.block_rows,
                   block_cols=config.block_cols)

    def elaborate(self, platform):
        m = Module()
        nbc, n = self.block_col_count, self.seq_len
        log_bc = self.block_cols.bit_length() - 1
        log_br = self.block_rows.bit_length() - 1
        col_bits = W.index_bits(nbc)

        # ---- the head's masks ------------------------------------------------------------
        masks = memory.Memory(shape=nbc, depth=self.block_row_count, init=[])
        m.submodules.masks = masks
        mask_w, mask_r = masks.write_port(), masks.read_port()
        mask_rows = Signal(range(self.block_row_count + 1))
        m.d.comb += [self.i_mask.ready.eq(1), mask_w.addr.eq(mask_rows),
                     mask_w.data.eq(self.i_mask.payload.mask), mask_w.en.eq(self.i_mask.valid)]
        with m.If(self.i_mask.valid):
            m.d.sync += mask_rows.eq(mask_rows + 1)
            with m.If(self.i_mask.payload.last_row):
                m.d.sync += self.masks_done.eq(1)
        with m.If(self.start):
            m.d.sync += [mask_rows.eq(0), self.masks_done.eq(0)]

        # ---- row credits -----------------------------------------------------------------
        row = Signal(self.seq_bits + 1)
        rows_back = Signal(self.seq_bits + 1)
        with m.If(self.row_done):
            m.d.sync += rows_back.eq(rows_back + 1)

        # ---- the walk over one row ---------------------------------------------------------
        col = Signal(self.seq_bits + 1)
        mask = Signal(nbc)
        rest = Signal(nbc)               # kept blocks of the row not visited yet
        pruned = Signal()
        limit = Mux(self.causal, row, n - 1)
        top_block = Signal(range(nbc))   # last kept block starting at or before the limit
        low_block = Signal(range(nbc))   # lowest kept block not visited
        # with Br > 1 and the causal mask, blocks right of the row's limit are kept for
        # the block row's later rows, and the row's own last column may be pruned
        limit_block = Signal(range(nbc))
        m.d.comb += limit_block.eq(limit >> log_bc)
        # (block 0 always starts at or before the limit: no constant compare for lint)
        kept_upto_limit = Signal(nbc)    # a net: first_set reads it bit by bit
        m.d.comb += kept_upto_limit.eq(
            mask & Cat(Const(1, 1), *(limit_block >= i for i in range(1, nbc))))
        m.d.comb += [top_block.eq(first_set(kept_upto_limit, highest=True)[1]),
                     low_block.eq(first_set(rest)[1])]
        row_empty = Signal()
        m.d.comb += row_empty.eq((mask == 0) | ((low_block << log_bc) > limit))
        block_end = Signal(self.seq_bits + 1)
        m.d.comb += block_end.eq(((top_block + 1) << log_bc) - 1)
        last_col = Signal(self.seq_bits + 1)
        m.d.comb += last_col.eq(Mux(block_end < limit, block_end, limit))
        blk = col >> log_bc
        col_kept = mask.bit_select(blk[:col_bits], 1) if nbc > 1 else mask[0]
        m.d.comb += [
            self.o_pair.payload.row.eq(row), self.o_pair.payload.col.eq(col),
            self.o_pair.payload.last.eq(col == last_col),
            self.o_zero_row.payload.row.eq(row),
            mask_r.addr.eq(row >> log_br),
        ]

        def next_row():
            m.d.sync += row.eq(row + 1)
            with m.If(row == n - 1):
                m.next = "IDLE"
            with m.Else():
                m.next = "ROW_FETCH"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [row.eq(0), rows_back.eq(0), pruned.eq(self.prune_head)]
                    m.next = "ROW_FETCH"
            with m.State("ROW_FETCH"):     # the row's mask is read (one cycle latency)
                with m.If(row < rows_back + self.rows_in_flight):
                    m.next = "ROW_LATCH"
            with m.State("ROW_LATCH"):
                m.d.sync += [mask.eq(Mux(pruned, 0, mask_r.data)),
                             rest.eq(Mux(pruned, 0, mask_r.data)), col.eq(0)]
                m.next = "ROW_START"
            with m.State("ROW_START"):
                with m.If(row_empty):
                    m.next = "ZERO_ROW"
                with m.Else():
                    m.d.sync += col.eq(low_block << log_bc)
                    m.next = "PAIRS"
            with m.State("NEXT_BLOCK"):     # jump over pruned blocks to the next kept one
                m.d.sync += col.eq(low_block << log_bc)
                m.next = "PAIRS"
            with m.State("ZERO_ROW"):
                m.d.comb += self.o_zero_row.valid.eq(1)
                with m.If(self.o_zero_row.ready):
                    next_row()
            with m.State("PAIRS"):
                with m.If(col_kept):
                    m.d.comb += self.o_pair.valid.eq(1)
                    with m.If(self.o_pair.ready):
                        with m.If(col == last_col):
                            next_row()
                        # at a block's last column go to the next kept block: the visited
                        # block is the lowest one left, so clearing the lowest set bit
                        # drops it (no constant condition at 1x1 blocks: Yosys would
                        # write an empty case that Icarus rejects)
                        with (m.Elif((col + 1)[:log_bc] == 0) if log_bc else m.Else()):
                            m.d.sync += rest.eq(rest & (rest - 1))
                            m.next = "NEXT_BLOCK"
                        if log_bc:
                            with m.Else():
                                m.d.sync += col.eq(col + 1)
                with m.Else():
                    m.d.sync += col.eq((blk + 1) << log_bc)
        return m
