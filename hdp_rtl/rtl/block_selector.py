"""Top-k-free row-balanced block selector (spec step 4)."""
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import RHO_BITS, RHO_ONE
from ..widths import index_bits
from .layouts import block_layout, mask_layout

__all__ = ["BlockSelector"]


class BlockSelector(wiring.Component):
    """Keeps the blocks of each block row that pass the top-k-free rule; no sort, no division.

    While a block row streams in, the selector stores its block importances in one of two
    banks and keeps the row's count ``nb``, maximum and sum. It then compares every stored
    block, one a cycle, and emits the row's keep mask, while the next block row streams
    into the other bank:

    - mean rule (``block_rule`` 0): ``256*nb*BI >= rho*nb*max + (256-rho)*sum``;
    - delta rule (``block_rule`` 1): ``BI >= max - delta``;
    - with ``block_prune_enable`` low every valid block is kept.

    Parameters
    ----------
    block_col_count : int
        Blocks in a block row (``ceil(seq_max / block_cols)``): the mask width.
    sint_bits : int
        Signed width of a block importance.
    delta_bits : int
        Width of the ``delta`` register.

    Members
    -------
    block_prune_enable, block_rule, rho, delta : In
        Run-time registers, stable during a head (:meth:`drive_registers`).
    i_block : In(stream.Signature(block_layout))
        The valid blocks of each block row (``last`` ends the row).
    o_mask : Out(stream.Signature(mask_layout))
        One keep mask per block row; ``last_row`` copied from the input.

    Latency and throughput: a block row of ``nb`` blocks is taken in ``nb`` cycles,
    compared in ``nb + 2`` cycles after one cycle's hand-over, and its mask offered one
    cycle later. Rows follow each other every ``max(nb + 1, nb + 4)`` cycles.
    """

    def __init__(self, *, block_col_count: int, sint_bits: int, delta_bits: int):
        self.block_col_count = block_col_count
        self.sint_bits = sint_bits
        col_bits = index_bits(block_col_count)
        self.col_bits = col_bits
        super().__init__({
            "block_prune_enable": In(1), "block_rule": In(1),
            "rho": In(signed(RHO_BITS)), "delta": In(delta_bits),
            "i_block": In(stream.Signature(block_layout(sint_bits=sint_bits, block_col_bits=col_bits))),
            "o_mask": Out(stream.Signature(mask_layout(block_col_count=block_col_count))),
        })

    @classmethod
    def from_config(cls, config):
        return cls(block_col_count=config.block_col_count, sint_bits=config.sint_bits,
                   delta_bits=config.delta_bits)

    def drive_registers(self, m, run):
        """Connect the run-time registers this policy reads from the latched ``run``."""
        m.d.comb += [self.block_prune_enable.eq(run.flags.block_prune_enable),
                     self.block_rule.eq(run.flags.block_rule),
                     self.rho.eq(run.rho), self.delta.eq(run.delta)]

    def elaborate(self, platform):
        m = Module()
        count = self.block_col_count
        # two banks: a block row streams into one while the other one's is compared
        store = memory.Memory(shape=self.sint_bits + self.col_bits, depth=2 * count, init=[])
        m.submodules.store = store
        wr, rd = store.write_port(), store.read_port()
        sum_shape = signed(self.sint_bits + count.bit_length() + 1)

        # collect side: the row arriving in bank `wbank`
        wbank = Signal()
        c_nb = Signal(range(count + 1))
        c_max = Signal(signed(self.sint_bits))
        c_sum = Signal(sum_shape)
        c_last_row = Signal()
        c_full = Signal()                 # a whole row waits in bank `wbank`
        # compare side: the row in bank `~wbank`
        nb = Signal(range(count + 1))
        row_max = Signal(signed(self.sint_bits))
        row_sum = Signal(sum_shape)
        last_row = Signal()
        rhs = Signal(signed(len(row_sum) + RHO_BITS + 2 + len(nb) + 1))
        idx = Signal(range(count + 1))
        mask = Signal(count)
        beat = self.i_block.payload

        m.d.comb += [wr.addr.eq(Mux(wbank, count + c_nb, c_nb)), wr.data.eq(Cat(beat.bi, beat.col)),
                     rd.addr.eq(Mux(wbank, idx, count + idx))]
        stored_bi = rd.data[:self.sint_bits].as_signed()
        stored_col = rd.data[self.sint_bits:]

        m.d.comb += [self.i_block.ready.eq(~c_full), wr.en.eq(self.i_block.valid & ~c_full)]
        with m.If(self.i_block.valid & ~c_full):
            m.d.sync += [c_nb.eq(c_nb + 1), c_sum.eq(c_sum + beat.bi)]
            with m.If((c_nb == 0) | (beat.bi > c_max)):
                m.d.sync += c_max.eq(beat.bi)
            with m.If(beat.last):
                m.d.sync += [c_full.eq(1), c_last_row.eq(beat.last_row)]

        with m.FSM():
            with m.State("IDLE"):          # take the collected row, free its bank
                with m.If(c_full):
                    m.d.sync += [nb.eq(c_nb), row_max.eq(c_max), row_sum.eq(c_sum),
                                 last_row.eq(c_last_row), wbank.eq(~wbank), c_full.eq(0),
                                 c_nb.eq(0), c_sum.eq(0), idx.eq(0), mask.eq(0)]
                    m.next = "THRESHOLD"
            with m.State("THRESHOLD"):     # the row's side of the compare, once per row
                m.d.sync += [rhs.eq(self.rho * nb * row_max + (RHO_ONE - self.rho) * row_sum),
                             idx.eq(1)]
                m.next = "COMPARE"
            with m.State("COMPARE"):       # rd.data holds block idx-1
                keep_mean = (nb * stored_bi) * RHO_ONE >= rhs
                keep_delta = stored_bi >= row_max - self.delta
                keep = ~self.block_prune_enable | \
                    ((self.block_rule == 0) & keep_mean) | ((self.block_rule == 1) & keep_delta)
                with m.If(keep):
                    m.d.sync += mask.bit_select(stored_col, 1).eq(1)
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == nb):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [self.o_mask.valid.eq(1), self.o_mask.payload.mask.eq(mask),
                             self.o_mask.payload.last_row.eq(last_row)]
                with m.If(self.o_mask.ready):
                    m.next = "IDLE"
        return m
