"""Head scorer: integer scores, block importances and head importance (spec steps 1-3)."""
from amaranth.hdl import Array, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply, tree_sum
from .layouts import block_layout
from .rowmem import RowReadSignature

__all__ = ["HeadScorer"]


class HeadScorer(wiring.Component):
    """Runs the pair loop of one head on the integer parts of Q and K.

    For every valid pair (``r, c < seq_len`` and, when ``causal``, ``c <= r``), block
    row by block row, row by row, column by column, ``S_int = sum_d qi*ki`` is
    computed with ``int_lanes`` ``I x I`` multipliers, ``head_dim / int_lanes`` cycles a
    pair. Each block row's block importances (the max of ``S_int`` over a block's valid
    pairs) are copied to an output buffer when the row is done and sent on ``o_block``
    while the next block row is computed. ``head_importance`` is ``sum |S_int|``.

    Parameters
    ----------
    seq_max, head_dim, int_bits, frac_bits, int_lanes, block_rows, block_cols : int
        As in :class:`~hdp_rtl.config.HDPConfig`.

    Members
    -------
    start : In(1)
        A pulse while idle starts a head.
    seq_len, causal : In
        Run-time registers, stable from start until ``busy`` falls.
    busy : Out(1)
    q_rd, k_rd : In(RowReadSignature)
        Row-buffer read ports (one cycle latency).
    o_block : Out(stream.Signature(block_layout))
        The valid blocks of each block row in column order.
    head_importance : Out(hi_bits)
    hi_valid : Out(1)
        High from the end of a head until the next start.
    s_valid, s_row, s_col, s_int : Out
        Monitor: one pulse per computed pair (no handshake).

    Throughput: ``head_dim / int_lanes`` cycles a valid pair, with no bubble between
    pairs or rows; a block row's results wait only if the previous block row's are
    still being sent when it ends.
    """

    def __init__(self, *, seq_max: int, head_dim: int, int_bits: int, frac_bits: int,
                 int_lanes: int, block_rows: int, block_cols: int):
        self.seq_max, self.head_dim = seq_max, head_dim
        self.int_bits, self.frac_bits = int_bits, frac_bits
        self.int_lanes, self.block_rows, self.block_cols = int_lanes, block_rows, block_cols
        self.block_col_count = W.ceil_div(seq_max, block_cols)
        self.block_col_bits = W.index_bits(self.block_col_count)
        self.sint_bits = W.sint_bits(int_bits=int_bits, head_dim=head_dim)
        seq_bits = W.index_bits(seq_max)
        self.hi_bits = W.hi_bits(int_bits=int_bits, head_dim=head_dim, seq_max=seq_max)
        data_bits = int_bits + frac_bits
        super().__init__({
            "start": In(1), "busy": Out(1),
            "seq_len": In(W.bits_for(seq_max)), "causal": In(1),
            "q_rd": In(RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=data_bits)),
            "k_rd": In(RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=data_bits)),
            "o_block": Out(stream.Signature(block_layout(sint_bits=self.sint_bits,
                                                         block_col_bits=self.block_col_bits))),
            "head_importance": Out(self.hi_bits), "hi_valid": Out(1),
            "s_valid": Out(1), "s_row": Out(seq_bits), "s_col": Out(seq_bits),
            "s_int": Out(signed(self.sint_bits)),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, int_bits=config.int_bits,
                   frac_bits=config.frac_bits, int_lanes=config.int_lanes,
                   block_rows=config.block_rows, block_cols=config.block_cols)

    def elaborate(self, platform):
        m = Module()
        L, F = self.int_lanes, self.frac_bits
        chunks = self.head_dim // L
        log_bc = self.block_cols.bit_length() - 1
        log_br = self.block_rows.bit_length() - 1
        nbc = self.block_col_count
        n = self.seq_len

        # ---- stage A: the pair loop and the multipliers ------------------------------
        running = Signal()
        row = Signal(self.seq_max.bit_length())
        col = Signal(self.seq_max.bit_length())
        chunk = Signal(range(max(2, chunks)))
        acc = Signal(signed(self.sint_bits))
        limit = Mux(self.causal, row, n - 1)
        last_chunk = chunk == chunks - 1
        last_col = col == limit
        last_row = row == n - 1
        if log_br:
            end_of_block_row = last_col & (last_row | (row[:log_br] == (1 << log_br) - 1))
        else:
            end_of_block_row = last_col

        def int_part(x):
            return x[F:].as_signed() if F else x
        q_elems = [int_part(Value.cast(self.q_rd.data[i])) for i in range(self.head_dim)]
        k_elems = [int_part(Value.cast(self.k_rd.data[i])) for i in range(self.head_dim)]
        partial = Signal(signed(self.sint_bits))
        lane_products = []
        for lane in range(L):
            qs = Array(q_elems[ch * L + lane] for ch in range(chunks))[chunk] if chunks > 1 \
                else q_elems[lane]
            ks = Array(k_elems[ch * L + lane] for ch in range(chunks))[chunk] if chunks > 1 \
                else k_elems[lane]
            lane_products.append(lut_multiply(qs, ks))   # I x I: LUTs, not a DSP
        m.d.comb += partial.eq(tree_sum(lane_products))
        dot = acc + partial if chunks > 1 else partial

        # ---- stage B registers -----------------------------------------------------------
        b_valid = Signal()
        b_s = Signal(signed(self.sint_bits))
        b_row = Signal.like(row)
        b_col = Signal.like(col)
        b_end = Signal()
        b_last = Signal()

        # ---- block importances of the current block row, and the output buffer ----------
        bi = Array(Signal(signed(self.sint_bits), name=f"bi{i}") for i in range(nbc))
        bi_max_col = Signal(range(nbc))
        seen = Signal()                   # the block row has a result yet
        emit_bi = Array(Signal(signed(self.sint_bits), name=f"emit_bi{i}") for i in range(nbc))
        emit_busy = Signal()
        emit_idx = Signal(range(nbc))
        emit_max = Signal(range(nbc))
        emit_last_row = Signal()
        hi = Signal(self.hi_bits)
        done = Signal()

        stall = end_of_block_row & last_chunk & emit_busy
        m.d.comb += [
            self.busy.eq(running | b_valid | emit_busy),
            self.hi_valid.eq(done & ~self.busy),
            self.head_importance.eq(hi),
            self.q_rd.addr.eq(0), self.k_rd.addr.eq(0),
            self.q_rd.en.eq(0), self.k_rd.en.eq(0),
        ]
        with m.If(self.start & ~self.busy):
            m.d.sync += [running.eq(1), row.eq(0), col.eq(0), chunk.eq(0), hi.eq(0),
                         done.eq(0), seen.eq(0), bi_max_col.eq(0)]
            m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]   # rows 0 and 0
        m.d.sync += b_valid.eq(0)
        with m.If(running & ~stall):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))
            if chunks > 1:
                m.d.sync += acc.eq(Mux(chunk == 0, partial, acc + partial))
            with m.If(last_chunk):
                m.d.sync += [b_valid.eq(1), b_s.eq(dot), b_row.eq(row), b_col.eq(col), b_end.eq(end_of_block_row),
                             b_last.eq(last_row & last_col)]
                with m.If(last_col):
                    m.d.sync += [row.eq(row + 1), col.eq(0)]
                    m.d.comb += [self.q_rd.addr.eq(row + 1), self.q_rd.en.eq(1),
                                 self.k_rd.addr.eq(0), self.k_rd.en.eq(1)]
                    with m.If(last_row):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += col.eq(col + 1)
                    m.d.comb += [self.k_rd.addr.eq(col + 1), self.k_rd.en.eq(1)]

        # ---- stage B: block importances, head importance, monitor ---------------------
        b_blk = b_col >> log_bc
        abs_s = Mux(b_s < 0, -b_s, b_s)
        m.d.comb += [self.s_valid.eq(b_valid), self.s_row.eq(b_row), self.s_col.eq(b_col),
                     self.s_int.eq(b_s)]
        bi_next = [Signal(signed(self.sint_bits), name=f"bi_next{i}") for i in range(nbc)]
        first_in_block = Signal()
        # columns only grow within a row and every row restarts at 0, so a block is new
        # to this block row exactly when it lies beyond every block seen so far
        m.d.comb += first_in_block.eq(~seen | (b_blk > bi_max_col))
        for i in range(nbc):
            hit = b_blk == i
            m.d.comb += bi_next[i].eq(Mux(hit & (first_in_block | (b_s > bi[i])), b_s, bi[i]))
        with m.If(b_valid):
            m.d.sync += hi.eq(hi + abs_s)
            with m.If(b_end):
                m.d.sync += [emit_bi[i].eq(bi_next[i]) for i in range(nbc)]
                m.d.sync += [emit_busy.eq(1), emit_idx.eq(0),
                             emit_max.eq(Mux(first_in_block, b_blk, bi_max_col)),
                             emit_last_row.eq(b_last), seen.eq(0), bi_max_col.eq(0)]
            with m.Else():
                m.d.sync += [bi[i].eq(bi_next[i]) for i in range(nbc)]
                m.d.sync += seen.eq(1)
                with m.If(first_in_block):
                    m.d.sync += bi_max_col.eq(b_blk)
            with m.If(b_last):
                m.d.sync += done.eq(1)

        # ---- the output buffer's sender ------------------------------------------------
        m.d.comb += [
            self.o_block.valid.eq(emit_busy),
            self.o_block.payload.bi.eq(emit_bi[emit_idx]),
            self.o_block.payload.col.eq(emit_idx),
            self.o_block.payload.last.eq(emit_idx == emit_max),
            self.o_block.payload.last_row.eq(emit_last_row),
        ]
        with m.If(self.o_block.valid & self.o_block.ready):
            m.d.sync += emit_idx.eq(emit_idx + 1)
            with m.If(emit_idx == emit_max):
                m.d.sync += emit_busy.eq(0)
        return m
