"""Pair generator: the keep masks of a head in, its kept pairs out (spec step 5's loop)."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import count_equals, lowest_set_onehot, onehot_index, onehot_select
from .bram import bram, registered_read_port
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
    ``o_zero_row`` instead. Pairs and zero rows leave through one two-entry queue, in
    row order.

    The walk is pipelined for 100 MHz and more on an ECP5, with no search wider than 16
    bits in a cycle. A row is prepared one row ahead of the scan, in four registered
    steps: its mask read (and the limit block ``limit >> log2(Bc)``, ``limit`` being
    ``r`` when causal, else ``seq_len - 1``, decoded), the mask registered, the blocks
    up to the limit kept and each 16-block segment's "any kept" registered, then the
    first two kept segments picked. The scan then loads the row's first kept segment
    and the next one, takes one kept block a step (the lowest one of the current
    segment) and one column a cycle, and fetches the segment after the next one while
    the current one is used, so pruned blocks and empty segments cost no cycle.

    Throughput without back-pressure: one kept pair a cycle within a row, and a row
    every ``max(4, k + 1)`` cycles for ``k`` kept pairs (a zero row every 4 cycles),
    limited by the row credits below.

    The generator starts a row only while fewer than ``rows_in_flight`` rows it started
    have not come back on ``row_done`` (the output serializer taking the row). The top
    sets it to the rows the softmax holds, ``2 + EXP_BANKS`` (6): its two score banks
    and its exponential banks. So every row in flight has a place in the softmax, and
    a score never waits for a softmax buffer that only P x V (sharing the MAC array)
    could free. Rows of very few kept pairs are bound by this: a row of one kept pair
    costs its round trip through the MAC array, softmax and P x V divided by the rows
    in flight (about 24 cycles with 2, as when the softmax held two rows; about 13 with
    4, 12 with 6).

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
        self.col_bits = W.index_bits(self.block_col_count)
        # the kept blocks are searched in segments of up to 16 (a power of two)
        self.segment_bits = min(16, 1 << (self.block_col_count - 1).bit_length())
        self.segment_count = W.ceil_div(self.block_col_count, self.segment_bits)
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
    def from_config(cls, config, *, rows_in_flight: int = 2):
        return cls(seq_max=config.seq_max, block_rows=config.block_rows,
                   block_cols=config.block_cols, rows_in_flight=rows_in_flight)

    def elaborate(self, platform):
        m = Module()
        nbc, n = self.block_col_count, self.seq_len
        log_bc = self.block_cols.bit_length() - 1
        log_br = self.block_rows.bit_length() - 1
        seg_w, seg_count = self.segment_bits, self.segment_count
        padded = seg_w * seg_count
        log_seg = seg_w.bit_length() - 1
        seg_idx_bits = max(1, (seg_count - 1).bit_length())

        # ---- the head's masks ------------------------------------------------------------
        # (read only after `go`, when every mask row is written: bram.py)
        masks = bram(m, "masks", shape=nbc, depth=self.block_row_count)
        mask_w, mask_r = masks.write_port(), registered_read_port(m, masks, name="mask_rd")
        mask_rows = Signal(range(self.block_row_count + 1))
        m.d.comb += [self.i_mask.ready.eq(1), mask_w.addr.eq(mask_rows),
                     mask_w.data.eq(self.i_mask.payload.mask), mask_w.en.eq(self.i_mask.valid)]
        with m.If(self.i_mask.valid):
            m.d.sync += mask_rows.eq(mask_rows + 1)
            with m.If(self.i_mask.payload.last_row):
                m.d.sync += self.masks_done.eq(1)
        with m.If(self.start):
            m.d.sync += [mask_rows.eq(0), self.masks_done.eq(0)]

        # ---- output queue: two entries, pairs and zero rows in row order ------------------
        entry = data.StructLayout({"row": self.seq_bits, "col": self.seq_bits, "last": 1,
                                   "zero": 1})
        # The head is a register of its own (the second entry waits behind it), not a
        # mux of two entries by a read pointer: the serializer's zero-row compare and
        # its row_done start at flip-flops.
        head = Signal(entry, name="out_head")
        second = Signal(entry, name="out_second")
        queue = dict(head=head, second=second)          # (for self.state, below)
        out_count = Signal(range(3))
        push = Signal()
        pop = Signal()
        push_data = Signal(entry)
        out_space = Signal(init=1)        # a register: the scan never waits on a port
        m.d.comb += [
            self.o_pair.valid.eq((out_count != 0) & ~head.zero),
            self.o_pair.payload.row.eq(head.row), self.o_pair.payload.col.eq(head.col),
            self.o_pair.payload.last.eq(head.last),
            self.o_zero_row.valid.eq((out_count != 0) & head.zero),
            self.o_zero_row.payload.row.eq(head.row),
            pop.eq(Mux(head.zero, self.o_zero_row.valid & self.o_zero_row.ready,
                       self.o_pair.valid & self.o_pair.ready)),
        ]
        # the head takes the push when the queue is (or becomes) otherwise empty, else
        # the second entry moves up on a pop
        with m.If(pop & (out_count == 2)):
            m.d.sync += head.eq(second)
        with m.Elif(push & ((out_count == 0) | ((out_count == 1) & pop))):
            m.d.sync += head.eq(push_data)
        with m.If(push & ((out_count == 2) | ((out_count == 1) & ~pop))):
            m.d.sync += second.eq(push_data)
        out_count_next = out_count + push - pop
        m.d.sync += [out_count.eq(out_count_next), out_space.eq(out_count_next != 2)]

        # ---- row preparation: one row ahead of the scan ------------------------------------
        # issue (cycle t): the row's mask is read, its limit block decoded; t+2: the mask
        # registered; t+3: the kept blocks up to the limit and each segment's "any kept";
        # t+4: the first two kept segments picked (one-hot). Each stage's registers are
        # written only when its row passes, so they hold the row until the next row is
        # issued, which happens no earlier than the cycle the scan loads this one.
        walking = Signal()                # rows left to issue
        pruned = Signal()
        prow = Signal(self.seq_bits + 1)  # the next row to issue
        prep_busy = Signal()              # a row is in preparation or waits to be loaded
        issue = Signal()
        load = Signal()
        m.d.comb += [issue.eq(walking & (~prep_busy | load)),
                     mask_r.addr.eq(prow >> log_br)]
        with m.If(issue):
            m.d.sync += [prow.eq(prow + 1), prep_busy.eq(1)]
            with m.If(prow == n - 1):
                m.d.sync += walking.eq(0)
        with m.Elif(load):
            m.d.sync += prep_busy.eq(0)

        p1_valid = Signal()
        p2_valid = Signal()
        p3_valid = Signal()
        hold_valid = Signal()
        m.d.sync += [p1_valid.eq(issue), p2_valid.eq(p1_valid), p3_valid.eq(p2_valid)]
        # t + 1: the limit block (the last one starting at or before the row's limit)
        # decoded in two levels, as plain logic of a few bits (a compare against each of
        # nbc constants would fan the limit out to nbc carry chains)
        row1 = Signal(self.seq_bits)
        limit1 = Signal(self.seq_bits + 1)
        seg_after1 = Signal(seg_count)    # segment j ends at or before the limit block
        seg_at1 = Signal(seg_count)       # segment j holds the limit block
        lo_upto1 = Signal(seg_w)          # within that segment, block k is at or before it
        limit_now = Mux(self.causal, prow, n - 1)
        limit_block = (limit_now >> log_bc)[:max(1, log_seg + seg_idx_bits)]
        lim_lo = limit_block[:log_seg] if log_seg else Const(0, 1)
        lim_hi = limit_block[log_seg:] if seg_count > 1 else Const(0, 1)
        with m.If(issue):
            m.d.sync += [
                row1.eq(prow), limit1.eq(limit_now),
                seg_after1.eq(Mux(pruned, 0, Cat(*(
                    Cat(*(lim_hi == v for v in range(j + 1, seg_count))).any()
                    if j + 1 < seg_count else Const(0, 1) for j in range(seg_count))))),
                seg_at1.eq(Mux(pruned, 0, Cat(*(lim_hi == j for j in range(seg_count))))),
                lo_upto1.eq(Cat(*(Cat(*(lim_lo == v for v in range(k, seg_w))).any()
                                  for k in range(seg_w)))),
            ]
        # t + 2
        mask2 = Signal(padded)
        with m.If(p1_valid):
            m.d.sync += mask2.eq(mask_r.data)
        # t + 3
        kept3 = Signal(padded)
        seg_any3 = Signal(seg_count)
        limit_kept3 = Signal()            # the limit's block is kept: the row ends at the limit
        upto = Cat(*(seg_after1[j] | (seg_at1[j] & lo_upto1[k])
                     for j in range(seg_count) for k in range(seg_w)))
        kept2 = Signal(padded)            # a signal: an expression would be emitted per use
        m.d.comb += kept2.eq(mask2 & upto)
        with m.If(p2_valid):
            m.d.sync += [kept3.eq(kept2),
                         seg_any3.eq(Cat(*(kept2[j * seg_w:(j + 1) * seg_w].any()
                                           for j in range(seg_count)))),
                         limit_kept3.eq(mask2.bit_select((limit1 >> log_bc)[:self.col_bits], 1)
                                        if nbc > 1 else mask2[0])]
        # t + 4: waits here until the scan loads it
        first4 = Signal(seg_count)
        second4 = Signal(seg_count)
        left4 = Signal(seg_count)
        empty4 = Signal()
        seg_one4 = Signal(seg_count)      # segment j holds exactly one kept block
        # kept segment i is the first, the second or a later one by the count of kept
        # segments below it (each bit its own shallow function, no chained search)
        below = [(Const(1, 1), Const(0, 1))] + [
            (count_equals(seg_any3[:i], 0), count_equals(seg_any3[:i], 1))
            for i in range(1, seg_count)]
        first = Cat(*(seg_any3[i] & below[i][0] for i in range(seg_count)))
        second = Cat(*(seg_any3[i] & below[i][1] for i in range(seg_count)))
        rest = Cat(*(seg_any3[i] & ~below[i][0] for i in range(seg_count)))
        with m.If(p3_valid):
            m.d.sync += [first4.eq(first), second4.eq(second),
                         left4.eq(rest & ~second), empty4.eq(~seg_any3.any()),
                         seg_one4.eq(Cat(*(count_equals(kept3[j * seg_w:(j + 1) * seg_w], 1)
                                           for j in range(seg_count)))),
                         hold_valid.eq(1)]
        with m.Elif(load):
            m.d.sync += hold_valid.eq(0)
        row4, limit_lo4, limit_kept4 = row1, limit1[:max(1, log_bc)], limit_kept3

        # ---- row credits -----------------------------------------------------------------
        credits = Signal(range(self.rows_in_flight + 1))
        has_credit = Signal()             # credits != 0, registered
        # row_done comes combinationally from the serializer's handshake, which our own
        # o_zero_row drives: registered here, the credit comes back a cycle later, and
        # no path runs from this unit through the serializer back into it (16.0 ns, 6
        # LUT levels, in the whole-core estimate)
        row_done = Signal()
        m.d.sync += row_done.eq(self.row_done)
        credits_next = credits + row_done - load
        m.d.sync += [credits.eq(credits_next), has_credit.eq(credits_next != 0)]

        # ---- the scan: one kept block a step, one column a cycle ----------------------------
        # `cur` holds the kept blocks left in the current segment, `nxt` the next kept
        # segment (fetched one step ahead), `left` the kept segments after it.
        scanning = Signal()
        idle = Signal(init=1)             # ~scanning, a copy that only enables the row copies
        kept = Signal(padded)
        segments = [kept[j * seg_w:(j + 1) * seg_w] for j in range(seg_count)]
        cur = Signal(seg_w)
        nxt = Signal(seg_w)
        cur_seg = Signal(seg_idx_bits)
        nxt_seg = Signal(seg_idx_bits)
        nxt_valid = Signal()
        single = Signal()                 # `cur` holds one block: the step's block ends it
        nxt_single = Signal()
        seg_one = Signal(seg_count)
        pick = Signal(seg_count)          # the kept segment after `nxt` (one-hot, or none)
        later = Signal(seg_count)         # the kept segments after `pick`
        srow = Signal(self.seq_bits)
        col_lo = Signal(max(1, log_bc))
        limit_lo = Signal(max(1, log_bc))
        limit_kept = Signal()

        m.d.comb += load.eq(hold_valid & ~scanning & has_credit & out_space)
        step = Signal()
        m.d.comb += step.eq(scanning & out_space)
        low = lowest_set_onehot(cur)
        cleared = cur & ~low
        final_block = single & ~nxt_valid
        if log_bc:
            block_end = (col_lo == (1 << log_bc) - 1) | \
                (final_block & limit_kept & (col_lo == limit_lo))
        else:
            block_end = Const(1, 1)
        block = Cat(onehot_index(low, log_seg), cur_seg) if seg_count > 1 else \
            onehot_index(low, log_seg)
        later_low = lowest_set_onehot(later)
        left4_low = lowest_set_onehot(left4)

        # the row's constants are copied whenever no row is scanned (so also when one is
        # loaded): their enable is a register, not the load condition
        with m.If(idle):
            m.d.sync += [kept.eq(kept3), srow.eq(row4), seg_one.eq(seg_one4),
                         limit_lo.eq(limit_lo4), limit_kept.eq(limit_kept4)]
        with m.If(load):
            m.d.comb += [push.eq(empty4), push_data.row.eq(row4), push_data.zero.eq(1)]
            m.d.sync += [col_lo.eq(0),
                         cur.eq(onehot_select(first4, [kept3[j * seg_w:(j + 1) * seg_w]
                                                       for j in range(seg_count)])),
                         cur_seg.eq(onehot_index(first4, seg_idx_bits)),
                         nxt.eq(onehot_select(second4, [kept3[j * seg_w:(j + 1) * seg_w]
                                                        for j in range(seg_count)])),
                         nxt_seg.eq(onehot_index(second4, seg_idx_bits)),
                         nxt_valid.eq(second4.any()),
                         single.eq((first4 & seg_one4).any()),
                         nxt_single.eq((second4 & seg_one4).any()),
                         pick.eq(left4_low), later.eq(left4 & ~left4_low),
                         scanning.eq(~empty4), idle.eq(empty4)]
        with m.Elif(step):
            m.d.comb += [push.eq(1), push_data.row.eq(srow),
                         push_data.col.eq(Cat(col_lo, block) if log_bc else block),
                         push_data.last.eq(final_block & block_end)]
            with m.If(block_end):
                m.d.sync += [col_lo.eq(0), cur.eq(cleared), single.eq(count_equals(cur, 2))]
                with m.If(single):
                    m.d.sync += [cur.eq(nxt), cur_seg.eq(nxt_seg),
                                 nxt.eq(onehot_select(pick, segments)),
                                 nxt_seg.eq(onehot_index(pick, seg_idx_bits)),
                                 nxt_valid.eq(pick.any()), single.eq(nxt_single),
                                 nxt_single.eq((pick & seg_one).any()),
                                 pick.eq(later_low), later.eq(later & ~later_low)]
                    with m.If(~nxt_valid):
                        m.d.sync += [scanning.eq(0), idle.eq(1)]
            with m.Else():
                m.d.sync += col_lo.eq(col_lo + 1)

        # ---- the walk ----------------------------------------------------------------------
        with m.If(self.go & ~walking & ~prep_busy & ~scanning):
            m.d.sync += [walking.eq(1), prow.eq(0), pruned.eq(self.prune_head),
                         credits.eq(self.rows_in_flight), has_credit.eq(1)]
        # the state the formal harness's invariants name (hdp_rtl/formal/pair_generator.py)
        self.state = dict(queue, out_count=out_count, out_space=out_space,
                          walking=walking, prow=prow, prep_busy=prep_busy, p1_valid=p1_valid,
                          p2_valid=p2_valid, p3_valid=p3_valid, hold_valid=hold_valid,
                          row1=row1, scanning=scanning, idle=idle, srow=srow, credits=credits,
                          has_credit=has_credit, row_done=row_done, pruned=pruned,
                          limit1=limit1, seg_after1=seg_after1, seg_at1=seg_at1,
                          lo_upto1=lo_upto1, mask2=mask2, kept3=kept3, seg_any3=seg_any3,
                          limit_kept3=limit_kept3, first4=first4, second4=second4,
                          left4=left4, empty4=empty4, seg_one4=seg_one4,
                          kept=kept, cur=cur, nxt=nxt, cur_seg=cur_seg, nxt_seg=nxt_seg,
                          nxt_valid=nxt_valid, single=single, nxt_single=nxt_single,
                          seg_one=seg_one, pick=pick, later=later, col_lo=col_lo,
                          limit_lo=limit_lo, limit_kept=limit_kept)
        return m
