"""Head scorer: integer scores, block importances and head importance (spec steps 1-3)."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply, tree_sum
from .bram import bram, registered_read_port
from .layouts import block_layout
from .outqueue import credit_room, output_queue
from .rowmem import RowReadSignature, word_addr

__all__ = ["HeadScorer", "SUM_GROUP"]

#: Products summed in one registered group (three adder levels of a few bits); the
#: groups' sums are summed in groups again, registered, until one sum is left.
SUM_GROUP = 8


def sum_levels(lanes: int) -> int:
    """Registered stages that sum ``lanes`` products in groups of ``SUM_GROUP``."""
    levels = 0
    while lanes > 1:
        lanes, levels = -(-lanes // SUM_GROUP), levels + 1
    return levels


class HeadScorer(wiring.Component):
    """Runs the pair loop of one head on the integer parts of Q and K.

    For every valid pair (``r, c < seq_len`` and, when ``causal``, ``c <= r``), block
    row by block row, row by row, column by column, the pair score ``S_int = sum_d
    qi*ki`` is computed with ``int_lanes`` ``I x I`` multipliers, ``head_dim /
    int_lanes`` cycles a pair; with ``unbiased`` it is the selection score ``S_sel =
    sum_d (2*qi + 1)*ki`` instead (``golden.selection_scores``: each lane multiplies
    ``(I + 1) x I`` with the new low bit of ``2*qi + 1`` constant, and the sums keep
    their widths). Below, ``S_int`` names whichever of the two the unit computes.
    A block's importance is the max of ``S_int`` over its valid pairs; it is final
    once its pairs in its block row's last row (the longest row) are done, and it is
    sent on ``o_block`` then, while that row goes on: block importances stream out as
    the pairs are computed, with no copy of a block row and no wait at its end.
    ``head_importance`` is ``sum |S_int|``.

    Pipelined for the clock: the loop issues one chunk of ``int_lanes`` elements a
    cycle; the integer parts of the words read (a copy of the block RAMs' read data),
    the chunk's integer parts (after the chunk multiplexer), the products, the sums of
    groups of ``SUM_GROUP`` products (then of groups of those sums, until one is left:
    ``levels`` = ceil(log_SUM_GROUP(int_lanes)) stages) and the pair's ``S_int`` (stage
    B, after the sum over its chunks) are each registered, with the pair's row, column
    and flags alongside. So a pair's ``S_int`` reaches stage B (``s_valid``)
    ``4 + levels`` cycles after its last chunk was issued (6 in the default preset, 5
    in ``edge``). Stage B keeps the running max of the current
    block's pairs in the current row; stage M, the cycle after the block's last pair
    in the row, merges it with the block's max over the block row's earlier rows (a
    memory of one entry per block column, only when ``block_rows > 1``) and stores
    the result, or in the block row's last row sends it: into an output register with
    a FIFO behind it, ``queue_depth`` places in all. ``|S_int|`` is added to the head
    importance one cycle after stage B.

    The pipeline never stops: a pair that completes a block in a block row's last row
    is issued (its last chunk) only while one of the ``queue_depth`` places is
    unclaimed, so back-pressure on ``o_block`` acts only on the loop and changes no
    result. ``queue_depth`` covers the blocks in flight, so while ``o_block`` takes a
    block each cycle one is offered, the loop never waits.

    Parameters
    ----------
    seq_max, head_dim, int_bits, frac_bits, int_lanes, block_rows, block_cols : int
        As in :class:`~hdp_rtl.config.HDPConfig`.

    channel_skip : bool
        ``HDPConfig.channel_pruning`` (with more than one chunk): build ``last_chunk_at``,
        the run-time number of chunks a pair runs.
    unbiased : bool
        ``HDPConfig.unbiased_selection``: compute ``S_sel`` instead of ``S_int``.

    With ``channel_skip`` a pair runs the chunks ``0 .. last_chunk_at`` only (the
    channel mask's kept channels fill the first chunks: the chunks after them hold
    zeros of Q and K, whose products are 0, ``(2*0 + 1)*0`` included):
    ``last_chunk_at + 1`` cycles a pair instead of ``head_dim / int_lanes``, the same
    results.

    Attributes
    ----------
    queue_depth : int
        Places for blocks on their way out (output register and FIFO):
        ``ceil((7 + levels) / chunks) + 1``, the cycles from a block's issue to its
        place given back, plus one for a cycle of back-pressure (default 10, edge 2);
        with ``channel_skip`` for pairs of one chunk (``chunks`` = 1).

    Members
    -------
    start : In(1)
        A pulse while idle starts a head.
    seq_len, causal : In
        Run-time registers, stable from start until ``busy`` falls.
    q_rows : In(range(seq_max + 1))
        Rows of Q in the row buffer (non-decreasing while busy; K is all in at start, and
        so is Q's row 0). Q arrives while the loop runs: row ``r`` is read (at the end of
        row ``r - 1``) only once ``q_rows > r``.
    busy : Out(1)
        High while the loop runs, anything is in the pipeline, or a block waits to be
        sent.
    q_rd, k_rd : In(RowReadSignature)
        Row-buffer read ports (one cycle latency), read only at a start and while the
        loop runs. With rows of several words (``word_elems < head_dim``) a pair reads
        its Q and K words one by one, each in the cycle before its first chunk issues.
    o_block : Out(stream.Signature(block_layout))
        The valid blocks of each block row in column order.
    head_importance : Out(hi_bits)
    hi_valid : Out(1)
        High from the end of a head (``busy`` low) until the next start.
    s_valid, s_row, s_col, s_int : Out
        Monitor: one pulse per computed pair (no handshake), ``4 + levels`` cycles
        after the pair's last chunk was issued.
    last_chunk_at : In(range(chunks))
        With ``channel_skip``: a pair's last chunk (run-time), stable during a head.

    Throughput: ``head_dim / int_lanes`` cycles a valid pair, with no bubble between
    pairs, rows or block rows while ``o_block`` keeps up and Q's rows come in time (a
    row of the integer pass takes longer than a row of input, except causal rows near
    the top, which may wait for Q; a causal head's first row waits one cycle).
    """

    def __init__(self, *, seq_max: int, head_dim: int, int_bits: int, frac_bits: int,
                 int_lanes: int, block_rows: int, block_cols: int,
                 word_elems: int | None = None, channel_skip: bool = False,
                 unbiased: bool = False):
        self.seq_max, self.head_dim = seq_max, head_dim
        self.word_elems = word_elems = word_elems or head_dim
        if word_elems % int_lanes or head_dim % word_elems:
            raise ValueError(f"word_elems must be a multiple of int_lanes ({int_lanes}) "
                             f"and divide head_dim ({head_dim}), not {word_elems}")
        self.int_bits, self.frac_bits = int_bits, frac_bits
        self.int_lanes, self.block_rows, self.block_cols = int_lanes, block_rows, block_cols
        self.block_col_count = W.ceil_div(seq_max, block_cols)
        self.block_col_bits = W.index_bits(self.block_col_count)
        self.unbiased = unbiased
        self.sint_bits = W.sint_bits(int_bits=int_bits, head_dim=head_dim, unbiased=unbiased)
        chunks = head_dim // int_lanes
        self.channel_skip = channel_skip = channel_skip and chunks > 1
        # a block's place: claimed at issue, its block written 5 + levels cycles on,
        # sent a cycle later at best, the place usable again the cycle after that
        # (pairs of one chunk at the fewest with channel_skip)
        self.queue_depth = W.ceil_div(7 + sum_levels(int_lanes),
                                      1 if channel_skip else chunks) + 1
        seq_bits = W.index_bits(seq_max)
        self.hi_bits = W.hi_bits(int_bits=int_bits, head_dim=head_dim, seq_max=seq_max,
                                 unbiased=unbiased)
        data_bits = int_bits + frac_bits
        super().__init__({
            "start": In(1), "busy": Out(1),
            "seq_len": In(W.bits_for(seq_max)), "causal": In(1),
            "q_rows": In(range(seq_max + 1)),
            "q_rd": In(RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=data_bits,
                                        word_elems=word_elems)),
            "k_rd": In(RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=data_bits,
                                        word_elems=word_elems)),
            "o_block": Out(stream.Signature(block_layout(sint_bits=self.sint_bits,
                                                         block_col_bits=self.block_col_bits))),
            "head_importance": Out(self.hi_bits), "hi_valid": Out(1),
            "s_valid": Out(1), "s_row": Out(seq_bits), "s_col": Out(seq_bits),
            "s_int": Out(signed(self.sint_bits)),
            **({"last_chunk_at": In(range(chunks), init=chunks - 1)} if channel_skip else {}),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, int_bits=config.int_bits,
                   frac_bits=config.frac_bits, int_lanes=config.int_lanes,
                   block_rows=config.block_rows, block_cols=config.block_cols,
                   word_elems=config.row_word_elems, channel_skip=config.channel_pruning,
                   unbiased=config.unbiased_selection)

    def elaborate(self, platform):
        m = Module()
        L, F = self.int_lanes, self.frac_bits
        chunks = self.head_dim // L
        words = self.head_dim // self.word_elems
        per_word = self.word_elems // L           # chunks in a row-buffer word
        log_pw = per_word.bit_length() - 1
        log_bc = self.block_cols.bit_length() - 1
        log_br = self.block_rows.bit_length() - 1
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
        last_chunk = chunk == (self.last_chunk_at if self.channel_skip else chunks - 1)
        end_of_block_row = last_col & closes

        # The pair is its block's first (last) in this row; the block is fresh in this
        # block row: block C's first pair in a block row (first row R0) is in column
        # C*Bc of row R0, or, when causal and C*Bc > R0, of row C*Bc (the first that
        # reaches it).
        blk_first = (col[:log_bc] == 0) if log_bc else Const(1)
        blk_last = (col[:log_bc].all() | last_col) if log_bc else Const(1)
        fresh = blk_first & (((row[:log_br] == 0) if log_br else 1) |
                             (self.causal & (row == col)))
        # the pair completes a block that is sent (it takes a place in the queue)
        sends = last_chunk & blk_last & closes

        def closes_at(r, is_last):
            return is_last | r[:log_br].all() if log_br else 1

        # ---- the pipeline: operands -> products -> sums of groups -> ... -> stage B -------
        # One chunk a stage; each stage's control (a delay line, no enables: the
        # pipeline never stops, the loop stalls at issue instead).
        ctrl = data.StructLayout({"valid": 1, "first": 1, "last_chunk": 1, "end": 1, "last": 1,
                                  "fresh": 1, "blk_first": 1, "blk_last": 1, "closes": 1,
                                  "final": 1, "row": idx, "col": idx})

        def stage(name):
            return Signal(ctrl, name=name)

        # stage 0: the integer parts of the words read, copied as they leave the block
        # RAMs (no output register there): the copy sits by the RAMs, and the route to
        # the lanes, across the device, starts from a flip-flop (the RAM's 5.6 ns
        # clock-to-out plus that route was the default core's critical path)
        c0 = stage("ctrl0")
        ctrls = [c0]

        def int_part(x):
            return x[F:].as_signed() if F else x

        def copy(rd, t):
            word = Signal(data.ArrayLayout(signed(self.int_bits), self.word_elems),
                          name=f"{t}_word")
            m.d.sync += [word[e].eq(int_part(Value.cast(rd.data[e])))
                         for e in range(self.word_elems)]
            return word

        q_word, k_word = copy(self.q_rd, "q"), copy(self.k_rd, "k")
        sel = Signal(max(1, log_pw))      # the chunk's place in its word, a stage behind
        if per_word > 1:
            m.d.sync += sel.eq(chunk[:log_pw])

        def pick(word, lane):
            # the chunk in the word read for it (the whole row with one-word rows)
            elems = [word[ch * L + lane] for ch in range(per_word)]
            return Array(elems)[sel] if per_word > 1 else elems[0]

        # stage 1: the chunk's integer parts; stage 2: the products (I x I: LUTs, not a DSP)
        c1, c2 = stage("ctrl1"), stage("ctrl2")
        ctrls += [c1, c2]
        products = []
        for lane in range(L):
            qa = Signal(signed(self.int_bits), name=f"lane{lane}_q")
            ka = Signal(signed(self.int_bits), name=f"lane{lane}_k")
            # (2*qa + 1)*ka, like qa*ka, fits 2I signed bits: |2qa+1| <= 2**I - 1
            # (widths.pair_score_max)
            prod = Signal(signed(2 * self.int_bits), name=f"lane{lane}_prod")
            qf = Cat(Const(1, 1), qa).as_signed() if self.unbiased else qa
            m.d.sync += [qa.eq(pick(q_word, lane)), ka.eq(pick(k_word, lane)),
                         prod.eq(lut_multiply(qf, ka))]
            products.append(prod)
        m.d.sync += [c1.eq(c0), c2.eq(c1)]

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
        b_valid = Signal()
        b = stage("ctrl_b")               # the pair in stage B (meaningful with b_valid)
        b_s = Signal(signed(self.sint_bits))
        # Block importances are kept as keys, S_int with its sign bit flipped, which
        # order as unsigned numbers as S_int does as signed ones: "x < key" is then the
        # carry out of one chain, with no sign or zero test after it.
        flip = 1 << (self.sint_bits - 1)
        b_key = Signal(self.sint_bits)
        m.d.sync += [b_valid.eq(to_b), b_key.eq(dot_s.as_unsigned() ^ flip)]
        with m.If(to_b):
            m.d.sync += [b_s.eq(dot_s), b.eq(c_sum)]

        # ---- the stall, and the loop -----------------------------------------------------
        # A pair that sends a block is issued only while a place in the output queue is
        # unclaimed; the place comes back when the block is handed on.
        room = Signal()
        # A row's last pair (whose last chunk reads the next row of Q) waits until that
        # row is in. q_next is registered a cycle behind q_rows and row1, never
        # optimistic: q_rows only grows, row1 changes only at a row's end and the next
        # row's first pair is never its last; after a start it is cleared for a cycle.
        q_next = Signal()
        wait_q = last_chunk & last_col & ~last_row & ~q_next
        issue = running & ~(sends & ~room) & ~wait_q
        m.d.sync += q_next.eq((self.q_rows > row1) & ~(self.start & ~self.busy))
        m.d.comb += room.eq(credit_room(m, self.queue_depth, take=issue & sends,
                                        give=self.o_block.valid & self.o_block.ready,
                                        name="block"))
        if words == 1:
            m.d.comb += [
                # a read's address: q's next row when a row ends, k's next column (or 0)
                self.q_rd.addr.eq(Mux(running, row1, 0)),
                self.k_rd.addr.eq(Mux(running & ~last_col, col1, 0)),
            ]
        else:
            # a pair's next word (its first chunk issues next), or at its last chunk the
            # next pair's first word: q's next row when a row ends, k's next column (or 0)
            word_end = chunk[:log_pw].all() if per_word > 1 else Const(1)
            next_word = Mux(running & ~last_chunk, (chunk >> log_pw) + 1, 0)
            q_row = Mux(running, Mux(last_chunk & last_col, row1, row), 0)
            k_col = Mux(running, Mux(last_chunk, Mux(last_col, 0, col1), col), 0)
            m.d.comb += [self.q_rd.addr.eq(word_addr(q_row, next_word, words=words)),
                         self.k_rd.addr.eq(word_addr(k_col, next_word, words=words))]
        m.d.comb += [self.q_rd.en.eq(0), self.k_rd.en.eq(0)]
        m.d.sync += [c0.valid.eq(issue), c0.first.eq(chunk == 0), c0.last_chunk.eq(last_chunk),
                     c0.end.eq(end_of_block_row & last_chunk),
                     c0.last.eq(last_row & last_col & last_chunk), c0.row.eq(row), c0.col.eq(col),
                     c0.fresh.eq(fresh), c0.blk_first.eq(blk_first), c0.blk_last.eq(blk_last),
                     c0.closes.eq(closes), c0.final.eq(last_row)]
        hi_fresh = Signal()               # hi holds the last head's sum
        done = Signal()
        with m.If(self.start & ~self.busy):
            causal, one = self.causal, n == 1
            m.d.sync += [running.eq(1), row.eq(0), row1.eq(1), col.eq(0), col1.eq(1), chunk.eq(0),
                         n_m1.eq(n - 1), limit.eq(Mux(causal, 0, n - 1)),
                         last_col.eq(causal | one), last_row.eq(one),
                         closes.eq(closes_at(Const(0, idx), one)),
                         hi_fresh.eq(1), done.eq(0)]
        # rows 0 and 0 are read at a start unless the loop runs: not gated by busy, whose
        # wide OR would lie between the output FIFO and every row-buffer block RAM's
        # enable (the whole core's deepest path). A start that comes while the pipeline
        # drains is ignored; its read is harmless, as the last pair took its rows.
        with m.If(self.start & ~running):
            m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]
        with m.If(issue):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))
            if words > 1:
                with m.If(word_end & ~last_chunk):
                    m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]
                with m.If(last_chunk & ~last_col):
                    m.d.comb += self.q_rd.en.eq(1)     # the row's word 0 again
            with m.If(last_chunk):
                m.d.comb += self.k_rd.en.eq(1)
                with m.If(last_col):
                    # the next row's first column is never its last (causal: row + 1 > 0;
                    # full: n > 1, or this row was the last)
                    is_last = row1 == n_m1
                    m.d.sync += [row.eq(row1), row1.eq(row1 + 1), col.eq(0), col1.eq(1),
                                 limit.eq(Mux(self.causal, row1, n_m1)), last_col.eq(0),
                                 last_row.eq(is_last), closes.eq(closes_at(row1, is_last))]
                    m.d.comb += self.q_rd.en.eq(~last_row)    # (no row after the last)
                    with m.If(last_row):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += [col.eq(col1), col1.eq(col1 + 1), last_col.eq(col1 == limit)]

        # ---- stage B: the block's max in this row, head importance, monitor -------------
        m.d.comb += [self.s_valid.eq(b_valid), self.s_row.eq(b.row), self.s_col.eq(b.col),
                     self.s_int.eq(b_s)]
        run = Signal(self.sint_bits)      # the block's max key over its pairs in this row
        run_fresh = Signal()              # the block is fresh in this block row
        with m.If(b_valid):
            with m.If(b.blk_first | (run < b_key)):
                m.d.sync += run.eq(b_key)
            with m.If(b.blk_first):
                m.d.sync += run_fresh.eq(b.fresh)

        # ---- stage M: the block's row max merged with its earlier rows; kept or sent ----
        m_valid, m_send, m_end, m_final = Signal(), Signal(), Signal(), Signal()
        m_blk = Signal(self.block_col_bits)
        m.d.sync += m_valid.eq(b_valid & b.blk_last)
        with m.If(b_valid & b.blk_last):
            m.d.sync += [m_blk.eq(b.col >> log_bc), m_send.eq(b.closes), m_end.eq(b.end),
                         m_final.eq(b.final)]
        if self.block_rows > 1:
            merged = self._earlier_rows(m, c_sum, b, run, run_fresh,
                                        m_valid & ~m_send, m_blk, log_bc)
        else:
            merged = run                  # every row is a block row: nothing to merge
        block = Signal.like(self.o_block.payload)
        m.d.comb += [block.bi.eq(merged ^ flip), block.col.eq(m_blk), block.last.eq(m_end),
                     block.last_row.eq(m_final)]
        queued = output_queue(m, self.o_block, m_valid & m_send, block, self.queue_depth,
                              "block")

        # the head importance adds |S_int| one cycle after stage B
        h_valid = Signal()
        h_abs = Signal(self.sint_bits)
        hi = Signal(self.hi_bits)
        m.d.sync += [h_valid.eq(b_valid), h_abs.eq(Mux(b_s < 0, -b_s, b_s))]
        with m.If(h_valid):
            # (the head's first term replaces the last head's sum: no clear at start,
            # whose enable reaches far enough already)
            m.d.sync += [hi.eq(Mux(hi_fresh, 0, hi) + h_abs), hi_fresh.eq(0)]
        with m.If(b_valid & b.last):
            m.d.sync += done.eq(1)
        m.d.comb += [
            self.busy.eq(Cat(running, *(c.valid for c in ctrls), b_valid, h_valid, m_valid,
                             queued).any()),
            self.hi_valid.eq(done & ~self.busy),
            self.head_importance.eq(hi),
        ]
        return m

    def _earlier_rows(self, m, c_sum, b, run, run_fresh, store, m_blk, log_bc):
        """A block's max over the block row's rows so far: one memory entry per block
        column, read for the pair in ``c_sum`` (its block's entry reaches stage B a
        cycle later, registered as ``old`` for stage M) and written by stage M
        (``store``). A write the read could not see yet, the one of the same cycle or
        of the cycle before, is forwarded. Returns stage M's merged max."""
        w = self.sint_bits
        # (a read that meets a write is forwarded: its word is never used, bram.py)
        mem = bram(m, "block_rows_max", shape=w, depth=self.block_col_count)
        wr, rd = mem.write_port(), registered_read_port(m, mem, name="block_rows_max_rd")
        old = Signal(w)                   # the block's max over its earlier rows (stage M)
        merged = Signal(w)
        last_blk, last_val, last_store = Signal.like(m_blk), Signal(w), Signal()
        b_blk = b.col >> log_bc
        m.d.comb += [rd.addr.eq(c_sum.col >> log_bc),
                     merged.eq(Mux(run_fresh | (old < run), run, old)),
                     wr.addr.eq(m_blk), wr.data.eq(merged), wr.en.eq(store)]
        m.d.sync += [last_store.eq(store), last_blk.eq(m_blk), last_val.eq(merged),
                     old.eq(Mux(store & (m_blk == b_blk), merged,
                                Mux(last_store & (last_blk == b_blk), last_val, rd.data)))]
        return merged
