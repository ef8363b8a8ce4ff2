"""SpAtten-style per-row top-k block selection behind the selection seam (selector
``"topk"``; issue 12 item 2): :class:`TopKEngine` on the seam's streams."""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..widths import bits_for, clog2, index_bits
from .layouts import block_layout, mask_layout
from .topk import TopKEngine

__all__ = ["TopKSelector"]

#: Rows inside the engine between a row's last block taken and its mask sent: one
#: being selected (or offered), one stored in the other bank.
ROWS_IN_FLIGHT = 2


class TopKSelector(wiring.Component):
    """Keeps the ``block_k`` blocks of largest importance of each block row.

    A block row's valid blocks are always its columns ``0 .. nb - 1`` (a valid pair
    needs ``c < seq_len`` and, causal, ``c <= r``: both hold for every column left of
    a valid one), and the head scorer sends them in column order: value ``i`` of the
    engine's row is block column ``i``, and ``col`` is not read. The engine
    (:class:`TopKEngine`, bit-exact with :func:`golden.spatten.topk_mask`: the lower
    column wins a tie) sees a row of ``n_max = 2**clog2(block_col_count)`` values at
    most; its mask's bits beyond the row's ``nb`` are 0, so the low
    ``block_col_count`` bits are the seam's mask. ``last_row`` goes around the engine
    in a FIFO of :data:`ROWS_IN_FLIGHT` entries, written with the row's last block and
    read with its mask: the engine takes no block of a third row before the first
    one's mask is sent, so the FIFO never fills while a block waits (``i_block``'s
    ready includes it anyway).

    ``k`` is the engine's: ``block_k`` (any ``k >= nb`` keeps the row, values above
    ``n_max`` included), or ``n_max`` with ``block_prune_enable`` low (every valid
    block kept).
    It is registered (the registers are stable during a head) and sampled by the
    engine with each row's first block. ``block_k = 0`` keeps no block; the register
    file refuses such a start with block pruning on (error 12), so the core never
    runs it.

    Parameters
    ----------
    block_col_count : int
        Blocks in a block row: the mask width.
    sint_bits : int
        Signed width of a block importance.
    comparators : int
        Values the engine compares a cycle (a power of two; at most ``n_max``).

    Members
    -------
    block_prune_enable, block_k : In
        Run-time registers, stable during a head (:meth:`drive_registers`).
    i_block : In(stream.Signature(block_layout))
        The valid blocks of each block row, columns ``0 .. nb - 1`` in order (``last``
        ends the row).
    o_mask : Out(stream.Signature(mask_layout))
        One keep mask per block row; ``last_row`` copied from the input.

    Cycles: a row of ``nb`` blocks is taken a block a cycle into one bank while the
    row before is selected from the other; its select side then takes
    :func:`~hdp_rtl.rtl.topk.topk_select_cycles` ``(row, k, sint_bits, P)`` cycles from
    taking the stored row to its mask taken (no counting pass when ``k = 0`` or ``k >=
    nb``, at most ``ceil(sint_bits / 4)``), the cycle after its last block at the
    earliest. Without
    back-pressure block rows follow each other every ``max(nb + 1, that)`` cycles.
    """

    def __init__(self, *, block_col_count: int, sint_bits: int, comparators: int = 8):
        self.block_col_count = block_col_count
        self.sint_bits = sint_bits
        self.n_max = 1 << clog2(block_col_count)
        self.comparators = min(comparators, self.n_max)
        self.block_k_bits = bits_for(block_col_count)
        super().__init__({
            "block_prune_enable": In(1),
            "block_k": In(self.block_k_bits),
            "i_block": In(stream.Signature(block_layout(
                sint_bits=sint_bits, block_col_bits=index_bits(block_col_count)))),
            "o_mask": Out(stream.Signature(mask_layout(block_col_count=block_col_count))),
        })

    @classmethod
    def from_config(cls, config, *, comparators: int = 8):
        """The selector of ``config``: its block rows of ``BI``, 8 values compared a
        cycle (the engine's default)."""
        return cls(block_col_count=config.block_col_count, sint_bits=config.sint_bits,
                   comparators=comparators)

    def drive_registers(self, m, run):
        """Connect the run-time registers this policy reads from the latched ``run``."""
        m.d.comb += [self.block_prune_enable.eq(run.flags.block_prune_enable),
                     self.block_k.eq(run.block_k)]

    def elaborate(self, platform):
        m = Module()
        n_max = self.n_max
        m.submodules.engine = engine = TopKEngine(n_max=n_max, width=self.sint_bits,
                                                  comparators=self.comparators)
        m.submodules.last_rows = last_rows = SyncFIFO(width=1, depth=ROWS_IN_FLIGHT)

        # registered: the engine samples k with a row's first block, many cycles after
        # a start latched the registers. block_k above n_max needs no saturation: the
        # engine's k >= n is the sign of a count-down as wide as its k port, which
        # holds every block_k (block_k_bits <= bits of n_max).
        assert self.block_k_bits <= len(engine.k)
        k = Signal.like(engine.k)
        m.d.sync += k.eq(Mux(self.block_prune_enable, self.block_k, n_max))
        m.d.comb += engine.k.eq(k)

        beat = self.i_block.payload
        taken = self.i_block.valid & self.i_block.ready
        m.d.comb += [
            engine.i_value.payload.value.eq(beat.bi),
            engine.i_value.payload.last.eq(beat.last),
            engine.i_value.valid.eq(self.i_block.valid & last_rows.w_rdy),
            self.i_block.ready.eq(engine.i_value.ready & last_rows.w_rdy),
            last_rows.w_data.eq(beat.last_row),
            last_rows.w_en.eq(taken & beat.last),
        ]

        # a mask goes out with its row's last_row (the FIFO holds it by then: the row's
        # last block was taken cycles before the engine offers the mask; r_rdy is
        # ANDed in all the same)
        m.d.comb += [
            self.o_mask.payload.mask.eq(engine.o_mask.payload.mask[:self.block_col_count]),
            self.o_mask.payload.last_row.eq(last_rows.r_data),
            self.o_mask.valid.eq(engine.o_mask.valid & last_rows.r_rdy),
            engine.o_mask.ready.eq(self.o_mask.ready & last_rows.r_rdy),
            last_rows.r_en.eq(self.o_mask.valid & self.o_mask.ready),
        ]
        return m
