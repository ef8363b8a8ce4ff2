"""Head scorer: integer scores, block importances and head importance (spec steps 1-3)."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply, tree_sum
from .layouts import block_layout
from .rowmem import RowReadSignature

__all__ = ["HeadScorer", "SUM_GROUP"]

#: Products summed in one registered group (three adder levels of a few bits); the
#: groups' sums are summed in groups again, registered, until one sum is left.
SUM_GROUP = 8


class HeadScorer(wiring.Component):
    """Runs the pair loop of one head on the integer parts of Q and K.

    For every valid pair (``r, c < seq_len`` and, when ``causal``, ``c <= r``), block
    row by block row, row by row, column by column, ``S_int = sum_d qi*ki`` is
    computed with ``int_lanes`` ``I x I`` multipliers, ``head_dim / int_lanes`` cycles a
    pair. Each block row's block importances (the max of ``S_int`` over a block's valid
    pairs) are copied to an output buffer when the row is done and sent on ``o_block``
    while the next block row is computed. ``head_importance`` is ``sum |S_int|``.

    Pipelined for the clock: the loop issues one chunk of ``int_lanes`` elements a
    cycle; the chunk's integer parts (the read data, after the chunk multiplexer), the
    products, the sums of groups of ``SUM_GROUP`` products (then of groups of those
    sums, until one is left: ``levels`` = ceil(log_SUM_GROUP(int_lanes)) stages) and
    the pair's ``S_int`` (stage B, after the sum over its chunks) are each registered,
    with the pair's row, column and flags alongside. So a pair's ``S_int`` reaches
    stage B (``s_valid``) ``3 + levels`` cycles after its last chunk was issued (5 in
    the default preset, 4 in ``edge``; it was 1 before the pipeline); ``|S_int|`` is
    added to the head importance one cycle later, and a block row's importances are
    copied to the output buffer the cycle after its last pair was in stage B and sent
    from the cycle after that. The pipeline never stops: back-pressure on ``o_block``
    acts only on the loop (see below), so it changes no result.

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
        High while the loop runs, anything is in the pipeline or a block row's
        importances are being copied or sent.
    q_rd, k_rd : In(RowReadSignature)
        Row-buffer read ports (one cycle latency), read only while the loop runs.
    o_block : Out(stream.Signature(block_layout))
        The valid blocks of each block row in column order.
    head_importance : Out(hi_bits)
    hi_valid : Out(1)
        High from the end of a head (``busy`` low) until the next start.
    s_valid, s_row, s_col, s_int : Out
        Monitor: one pulse per computed pair (no handshake), ``3 + levels`` cycles
        after the pair's last chunk was issued.

    Throughput: ``head_dim / int_lanes`` cycles a valid pair, with no bubble between
    pairs or rows, except that a block row's last pair is held (its last chunk not
    issued) while the output buffer could still be in use when its importances would
    be copied: while the previous block row's are being sent, or its last pair is still
    in the pipeline or being copied. In the default preset (every row a block row,
    ``Bc = 1``) a dense row ends as the previous row's ``n`` blocks are still being sent,
    so each row after the first waits 7 cycles (6 when causal); in ``edge`` no row does.
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
        idx = self.seq_max.bit_length()          # row, col, n - 1 and row + 1 all fit

        # ---- the pair loop (issue) -------------------------------------------------------
        # Every flag the loop decides on is a register, updated with the counters, so
        # the stall and the counters' enables are a few LUTs from flip-flops:
        # ``limit`` is the row's last column, ``last_col`` is col == limit, ``last_row``
        # is row == n - 1, ``closes`` is "this row ends a block row"; row1 and col1
        # are row + 1 and col + 1 (the next read addresses).
        running = Signal()
        row, row1 = Signal(idx), Signal(idx)
        col, col1 = Signal(idx), Signal(idx)
        limit = Signal(idx)
        n_m1 = Signal(idx)
        last_col, last_row, closes = Signal(), Signal(), Signal()
        chunk = Signal(range(max(2, chunks)))
        last_chunk = chunk == chunks - 1
        end_of_block_row = last_col & closes

        # The first pair of block C in a block row (first row R0) is in column C*Bc of
        # row R0, or, when causal and C*Bc > R0, of row C*Bc (the first that reaches it).
        first_in_block = ((col[:log_bc] == 0) if log_bc else 1) & (
            ((row[:log_br] == 0) if log_br else 1) | (self.causal & (row == col)))

        def closes_at(r, is_last):
            return is_last | r[:log_br].all() if log_br else 1

        # ---- the pipeline: operands -> products -> sums of groups -> ... -> stage B -------
        # One chunk a stage; each stage's control (a delay line, no enables: the
        # pipeline never stops, the loop stalls at issue instead).
        ctrl = data.StructLayout({"valid": 1, "first": 1, "last_chunk": 1, "end": 1, "last": 1,
                                  "first_in_block": 1, "row": idx, "col": idx})

        def stage(name):
            return Signal(ctrl, name=name)

        # ---- stage B registers (the pair's S_int and where it goes) -----------------------
        b_valid = Signal()
        b_s = Signal(signed(self.sint_bits))
        b_row = Signal(idx)
        b_col = Signal(idx)
        b_last = Signal()
        flip = 1 << (self.sint_bits - 1)
        b_key = Signal(self.sint_bits)    # b_s ^ flip: see the block importances
        b_first = Signal()                # the first pair of its block in its block row

        # ---- block importances of the current block row, and the output buffer ----------
        bi = [Signal(self.sint_bits, name=f"bi{i}") for i in range(nbc)]       # as keys
        b_hit = Signal(nbc)               # stage B's block, one-hot (0 with no result)
        emit_bi = [Signal(self.sint_bits, name=f"emit_bi{i}") for i in range(nbc)]
        emit_busy = Signal()
        emit_idx = Signal(range(nbc))
        emit_max = Signal(range(nbc))
        emit_last_row = Signal()
        hi = Signal(self.hi_bits)
        hi_fresh = Signal()               # hi holds the last head's sum
        h_valid = Signal()                # |S_int| of stage B, one cycle on
        h_abs = Signal(self.sint_bits)
        done = Signal()
        b_close = Signal()                # a block row's end is in stage B
        b_load, load_sel = Signal(), Signal()   # the output buffer loads (two copies)

        # stage 1: the chunk's integer parts, registered after the row buffers' read
        c1 = stage("ctrl1")
        ctrls = [c1]

        def int_part(x):
            return x[F:].as_signed() if F else x

        def pick(rd, lane):
            elems = [int_part(Value.cast(rd.data[ch * L + lane])) for ch in range(chunks)]
            return Array(elems)[chunk] if chunks > 1 else elems[0]

        products = []
        c2 = stage("ctrl2")
        ctrls.append(c2)
        for lane in range(L):
            qa = Signal(signed(self.int_bits), name=f"lane{lane}_q")
            ka = Signal(signed(self.int_bits), name=f"lane{lane}_k")
            # stage 2: the products, registered (I x I: LUTs, not a DSP)
            prod = Signal(signed(2 * self.int_bits), name=f"lane{lane}_prod")
            m.d.sync += [qa.eq(pick(self.q_rd, lane)), ka.eq(pick(self.k_rd, lane)),
                         prod.eq(lut_multiply(qa, ka))]
            products.append(prod)
        m.d.sync += c2.eq(c1)

        # stages 3...: sums of groups of SUM_GROUP terms, registered, until one is left
        terms = products
        level = 0
        while len(terms) > 1:
            level += 1
            groups = []
            for j in range(0, len(terms), SUM_GROUP):
                total = tree_sum(terms[j:j + SUM_GROUP])
                group = Signal(signed(min(len(Value.cast(total)), self.sint_bits)),
                               name=f"sum{level}_{j // SUM_GROUP}")
                m.d.sync += group.eq(total)
                groups.append(group)
            terms = groups
            c = stage(f"ctrl{len(ctrls) + 1}")
            m.d.sync += c.eq(ctrls[-1])
            ctrls.append(c)
        partial, c_sum = terms[0], ctrls[-1]

        # last stage: the chunk's sum added to the pair's earlier chunks; a pair's last
        # chunk fills the stage B registers
        if chunks > 1:
            acc = Signal(signed(self.sint_bits))
            dot = Mux(c_sum.first, partial, acc + partial)
            with m.If(c_sum.valid):
                m.d.sync += acc.eq(dot)
        else:
            dot = partial
        dot_s = Signal(signed(self.sint_bits))      # (sign-extended for the key)
        m.d.comb += dot_s.eq(dot)
        to_b = c_sum.valid & c_sum.last_chunk
        m.d.sync += [b_valid.eq(to_b), b_key.eq(dot_s.as_unsigned() ^ flip),
                     b_hit.eq(Mux(to_b, 1, 0) << (c_sum.col >> log_bc))]
        with m.If(to_b):
            m.d.sync += [b_s.eq(dot_s), b_row.eq(c_sum.row), b_col.eq(c_sum.col),
                         b_last.eq(c_sum.last), b_first.eq(c_sum.first_in_block)]

        # ---- the stall, and the loop -----------------------------------------------------
        # A block row's end may be issued only if its importances will find the output
        # buffer free when they are copied to it (the cycle after stage B): the
        # previous block row's are neither being sent nor still on their way (in the
        # pipeline, in stage B or being copied).
        # (in_flight is a flip-flop of its own, set one cycle ahead: the registers it
        # watches fan out widely)
        in_flight = Signal()
        stall = end_of_block_row & last_chunk & (emit_busy | in_flight)
        issue = running & ~stall
        m.d.sync += in_flight.eq(Cat(issue & end_of_block_row & last_chunk,
                                     *(c.valid & c.end for c in ctrls), b_close).any())
        m.d.comb += [
            self.busy.eq(Cat(running, *(c.valid for c in ctrls), b_valid, h_valid,
                             b_load, emit_busy).any()),
            self.hi_valid.eq(done & ~self.busy),
            self.head_importance.eq(hi),
            # a read's address: q's next row when a row ends, k's next column (or 0)
            self.q_rd.addr.eq(Mux(running, row1, 0)),
            self.k_rd.addr.eq(Mux(running & ~last_col, col1, 0)),
            self.q_rd.en.eq(0), self.k_rd.en.eq(0),
        ]
        m.d.sync += [c1.valid.eq(issue), c1.first.eq(chunk == 0), c1.last_chunk.eq(last_chunk),
                     c1.end.eq(end_of_block_row & last_chunk),
                     c1.last.eq(last_row & last_col & last_chunk), c1.row.eq(row), c1.col.eq(col),
                     c1.first_in_block.eq(first_in_block)]
        with m.If(self.start & ~self.busy):
            causal, one = self.causal, n == 1
            m.d.sync += [running.eq(1), row.eq(0), row1.eq(1), col.eq(0), col1.eq(1), chunk.eq(0),
                         n_m1.eq(n - 1), limit.eq(Mux(causal, 0, n - 1)),
                         last_col.eq(causal | one), last_row.eq(one),
                         closes.eq(closes_at(Const(0, idx), one)),
                         hi_fresh.eq(1), done.eq(0)]
            m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]   # rows 0 and 0
        with m.If(issue):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))
            with m.If(last_chunk):
                m.d.comb += self.k_rd.en.eq(1)
                with m.If(last_col):
                    # the next row's first column is never its last (causal: row + 1 > 0;
                    # full: n > 1, or this row was the last)
                    is_last = row1 == n_m1
                    m.d.sync += [row.eq(row1), row1.eq(row1 + 1), col.eq(0), col1.eq(1),
                                 limit.eq(Mux(self.causal, row1, n_m1)), last_col.eq(0),
                                 last_row.eq(is_last), closes.eq(closes_at(row1, is_last))]
                    m.d.comb += self.q_rd.en.eq(1)
                    with m.If(last_row):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += [col.eq(col1), col1.eq(col1 + 1), last_col.eq(col1 == limit)]

        # ---- stage B: block importances, head importance, monitor ---------------------
        abs_s = Mux(b_s < 0, -b_s, b_s)
        m.d.comb += [self.s_valid.eq(b_valid), self.s_row.eq(b_row), self.s_col.eq(b_col),
                     self.s_int.eq(b_s)]
        # A block's importance is updated by its own logic: its one-hot hit, the pair's
        # "first in its block" flag (worked out at issue) and one comparison with b_s.
        # The importances are kept as keys, S_int with its sign bit flipped, which
        # order as unsigned numbers as S_int does as signed ones: "bi < key" is then
        # the carry out of one chain, with no sign or zero test after it.
        # The cycle after a block row's end was in stage B, b_load, the output buffer
        # copies the importances (the stall saw to it that the buffer is free then)
        # while the next block row starts afresh. Sending shifts the buffer towards
        # emit_bi0, the payload. Its clock enable and its data select fan out to every
        # one of its flip-flops, so each comes from a flip-flop of its own: b_load for
        # the enable, load_sel (the same value, kept apart) for the select.
        m.d.sync += [b_close.eq(to_b & c_sum.end), b_load.eq(b_close),
                     load_sel.eq(b_close | (load_sel & ~b_load))]
        shift = self.o_block.valid & self.o_block.ready
        # `~emit_busy` never stops a copy (the stall rule freed the buffer before the
        # block row's end was issued); it makes "o_block holds while stalled" hold in
        # every state, reachable or not, so k-induction proves it (hdp_rtl/formal); it
        # costs no LUT level: the enable is one LUT of b_load, emit_busy and ready
        copy = b_load & ~emit_busy
        for i in range(nbc):
            with m.If(b_hit[i] & (b_first | (bi[i] < b_key))):
                m.d.sync += bi[i].eq(b_key)
            with m.If(copy | shift):
                m.d.sync += emit_bi[i].eq(Mux(load_sel, bi[i],
                                              emit_bi[i + 1] if i + 1 < nbc else 0))
        # the head importance adds |S_int| one cycle on (b_s fans out to every block)
        m.d.sync += [h_valid.eq(b_valid), h_abs.eq(abs_s)]
        with m.If(h_valid):
            # (the head's first term replaces the last head's sum: no clear at start,
            # whose enable reaches far enough already)
            m.d.sync += [hi.eq(Mux(hi_fresh, 0, hi) + h_abs), hi_fresh.eq(0)]
        with m.If(b_close):
            with m.If(~emit_busy):        # never false here, as for `copy`
                # the block row's last row is its longest: its last block is the last
                m.d.sync += [emit_idx.eq(0), emit_max.eq(b_col >> log_bc),
                             emit_last_row.eq(b_last)]
            with m.If(b_last):
                m.d.sync += done.eq(1)
        with m.If(copy):
            m.d.sync += emit_busy.eq(1)

        # ---- the output buffer's sender ------------------------------------------------
        m.d.comb += [
            self.o_block.valid.eq(emit_busy),
            self.o_block.payload.bi.eq(emit_bi[0] ^ flip),
            self.o_block.payload.col.eq(emit_idx),
            self.o_block.payload.last.eq(emit_idx == emit_max),
            self.o_block.payload.last_row.eq(emit_last_row),
        ]
        with m.If(self.o_block.valid & self.o_block.ready):
            m.d.sync += emit_idx.eq(emit_idx + 1)
            with m.If(emit_idx == emit_max):
                m.d.sync += emit_busy.eq(0)
        return m
