"""Formal harness of :class:`~hdp_rtl.rtl.pair_generator.PairGenerator`: its rows, in
order and at most N a head, proven by k-induction."""
from amaranth.hdl import Cat, Const, Elaboratable, Mux, Signal

from ..rtl.arith import count_equals, lowest_set_onehot, onehot_index
from ..rtl.pair_generator import PairGenerator
from .common import (Assert, Assume, Cover, UpDown, any_const, any_seq, drive_any,
                     harness_module, reset_midway_flag, stream_rules)

__all__ = ["PairGeneratorHarness", "PairGeneratorContract", "PairGeneratorGuarantee"]


class PairGeneratorContract:
    """What the pair generator's environment must guarantee for
    :class:`PairGeneratorHarness`'s properties: ``Assume`` in the unit's proof, ``Assert``
    where it sits in the top (``top_head``). ``n`` and ``causal`` are the head's; the
    harness drives ``seq_len`` and ``causal`` itself when ``kind`` is ``Assume``.

    - ``start`` at most once; ``seq_len`` = N and ``causal`` held from the cycle after it;
    - ``go`` at most once, after the start;
    - ``row_done`` only for a row sent (a zero row or a row's last pair) and not yet done;
      a zero row's may come in the cycle it is taken.

    ``control`` (default ``kind``) is the kind of the clauses on ``start``, ``go``,
    ``seq_len`` and ``causal`` alone (the sequencer's and the register file's,
    ``top_control``): ``Assume`` in the datapath chain's proof, which asserts the rest.

    Also counts the rows sent (``row``) and done (``done``). What the generator
    guarantees in return is :class:`PairGeneratorGuarantee`.
    """

    def __init__(self, m, dut, *, n, causal, kind, control=None, name="pg"):
        control = kind if control is None else control   # the start, go, seq_len, causal clauses
        seq_max = dut.seq_max
        self.started = started = Signal(name=f"{name}_started")
        with m.If(dut.start):
            m.d.sync += started.eq(1)
        self.went = went = Signal(name=f"{name}_went")
        with m.If(dut.go):
            m.d.sync += went.eq(1)
        zero, pair = dut.o_zero_row, dut.o_pair
        self.zfire = zfire = Signal(name=f"{name}_zero_fire")
        self.pfire = pfire = Signal(name=f"{name}_pair_fire")
        m.d.comb += [zfire.eq(zero.valid & zero.ready), pfire.eq(pair.valid & pair.ready)]
        self.row = UpDown(m, up=zfire | (pfire & pair.payload.last), down=0, max=seq_max,
                          name=f"{name}_rows_sent")
        self.done = UpDown(m, up=dut.row_done, down=0, max=seq_max, name=f"{name}_rows_done")
        m.d.comb += [
            control(~(dut.start & started), f"{name}: one start"),
            control(~dut.go | (started & ~went), f"{name}: go once, after the start"),
            kind(~dut.row_done | (self.done.value < self.row.value + zfire),
                 f"{name}: row_done only for a row sent and not done"),
        ]
        if control is Assert:
            m.d.comb += [
                control(~started | (dut.seq_len == n), f"{name}: seq_len = N from after start"),
                control(~started | (dut.causal == causal),
                        f"{name}: causal held from after start"),
            ]


class PairGeneratorGuarantee:
    """What the pair generator guarantees its consumers (the MAC array, the serializer),
    given its contract ``c`` (:class:`PairGeneratorContract`): ``Assert`` in its
    k-induction proof (``pair_generator_rows``), ``Assume`` where the datapath chain's
    proof (``chain_beats``) stands in for the generator. Every clause at a cycle depends
    only on the generator's registers and on its inputs in earlier cycles (its outputs
    are registers, ``row_done`` is registered before use), which makes that use sound.

    - ``o_pair`` and ``o_zero_row``: stream rules, never both valid;
    - nothing before ``go``; only rows < N;
    - the rows leave in order 0, 1, ..., each as one zero row or as pairs carrying its
      index, a zero row never inside a row of pairs;
    - a row's pairs in strictly increasing column order, every column < N, and a pair in
      column N - 1 ends its row (so a row has at most N pairs);
    - at most ``rows_in_flight`` rows started (a pair or a zero row sent) and not done.

    Also keeps ``in_row`` (a pair of the row sent, not its last) and ``prev_col`` (the
    column of the last pair sent).
    """

    def __init__(self, m, dut, c, *, n, kind, name="pg"):
        output = kind is Assert
        zero, pair = dut.o_zero_row, dut.o_pair
        stream_rules(m, zero.valid, zero.ready, zero.payload, output=output,
                     name=f"{name}_o_zero_row")
        stream_rules(m, pair.valid, pair.ready, pair.payload, output=output,
                     name=f"{name}_o_pair")
        self.in_row = in_row = Signal(name=f"{name}_inside_a_row")
        self.prev_col = prev_col = Signal.like(pair.payload.col, name=f"{name}_prev_col")
        with m.If(c.pfire):
            m.d.sync += [in_row.eq(~pair.payload.last), prev_col.eq(pair.payload.col)]
        m.d.comb += kind(~(zero.valid & pair.valid), f"{name}: a zero row or a pair at a time")
        with m.If(zero.valid | pair.valid):
            m.d.comb += [kind(c.went, f"{name}: nothing before go"),
                         kind(c.row.value < n, f"{name}: only rows < N")]
        with m.If(zero.valid):
            m.d.comb += [kind(zero.payload.row == c.row.value, f"{name}: zero rows in row order"),
                         kind(~in_row, f"{name}: no zero row inside a row of pairs")]
        with m.If(pair.valid):
            m.d.comb += [
                kind(pair.payload.row == c.row.value, f"{name}: pairs in row order"),
                kind(~in_row | (pair.payload.col > prev_col),
                     f"{name}: a row's pairs in increasing column order"),
                kind(pair.payload.col < n, f"{name}: columns < N"),
                kind((pair.payload.col != n - 1) | pair.payload.last,
                     f"{name}: a pair in column N - 1 ends its row"),
            ]
        m.d.comb += kind(c.row.value + in_row <= c.done.value + dut.rows_in_flight,
                         f"{name}: at most rows_in_flight rows started and not done")


class PairGeneratorHarness(Elaboratable):
    """One head: ``start`` once (any cycle), ``seq_len`` = N (any 1..seq_max) from the
    cycle after it, ``causal`` any; any masks at any time (their values and number do
    not matter to the rows); ``go`` once, any cycle after the start, with any
    ``prune_head``; any back-pressure on ``o_pair`` and ``o_zero_row``; ``row_done``
    (assumed) only for a row sent and not yet done (a zero row's in the cycle it is
    taken, as the serializer gives it).

    Asserted: ``o_pair`` and ``o_zero_row`` stream rules; nothing before ``go``; the rows
    leave in order, 0, 1, ..., each as one zero row or as pairs of its index ending with
    one ``last`` (a zero row never inside a row of pairs), and only rows < N; a row's
    pairs in increasing column order, columns < N, a pair in column N - 1 the last of
    its row; at most ``rows_in_flight`` rows started (a pair or zero row sent) and not
    done (:class:`PairGeneratorGuarantee`).

    Invariants over the generator's state (``PairGenerator.state``) make it inductive:
    the rows issued (``prow``) = rows sent + rows ending in the output queue + the row
    scanned + the row in preparation; the row indices along the queue, the scan and the
    preparation; the credits = ``rows_in_flight`` - rows loaded and not done; and the
    columns (:meth:`_column_invariants`): the queued pairs' and the scan's next column
    in increasing order after the row's previous pair, each at most its row's limit
    (its diagonal when causal, else N - 1) and a row's last when at it; the scanned
    row's kept blocks (``kept``, ``cur``, ``nxt``, ``pick``, ``later``) at or below the
    limit block and in segment order; ``limit_kept``, ``limit_lo`` and the preparation
    stages' registers what they say of their row.

    With ``free_reset``, the solver also drives the reset in every cycle (mid-head too):
    the generator, the contract and the harness's counters restart together, and every
    property above holds for the head since the last reset (N and ``causal`` the same
    for every head).
    """

    def __init__(self, config, *, rows_in_flight: int = 6, cover_rows: int = 4,
                 unit=PairGenerator, free_reset: bool = False, **overrides):
        self.config = config
        self.free_reset = free_reset
        self.unit = unit                 # (a mutant, in tests)
        self.rows_in_flight = rows_in_flight
        self.cover_rows = cover_rows     # the covered head's N (at most seq_max)
        # seq_max, block_rows, block_cols: instead of the config's
        self.params = dict(seq_max=config.seq_max, block_rows=config.block_rows,
                           block_cols=config.block_cols, rows_in_flight=rows_in_flight)
        self.params.update(overrides)

    def elaborate(self, platform):
        m = harness_module(free_reset=self.free_reset)
        dut = self.unit(**self.params)
        m.submodules.dut = dut.elaborate(platform)
        dut._MustUse__silence = True
        st = dut.state
        R = self.rows_in_flight
        seq_max = self.params["seq_max"]

        n = Signal(len(dut.seq_len), name="n")
        causal = Signal(name="causal")
        m.d.comb += [n.eq(any_const(len(n))), causal.eq(any_const(1))]
        m.d.comb += Assume((n >= 1) & (n <= seq_max), "N in 1..seq_max")
        drive_any(m, dut.start, dut.i_mask.valid, dut.i_mask.payload, dut.go, dut.prune_head,
                  dut.o_pair.ready, dut.o_zero_row.ready, dut.row_done)
        c = PairGeneratorContract(m, dut, n=n, causal=causal, kind=Assume)
        # seq_len and causal: the head's from the cycle after start, free before
        m.d.comb += [dut.seq_len.eq(Mux(c.started, n, any_seq(len(n)))),
                     dut.causal.eq(Mux(c.started, causal, any_seq(1)))]
        started, went = c.started, c.went
        pair = dut.o_pair
        zfire, pfire, row, done = c.zfire, c.pfire, c.row, c.done
        row_end = zfire | (pfire & pair.payload.last)
        g = PairGeneratorGuarantee(m, dut, c, n=n, kind=Assert)
        in_row = g.in_row

        # ---- invariants over the generator's state (for the induction) -------------------
        head, second, count = st["head"], st["second"], st["out_count"]
        head_ends = head.zero | head.last
        second_ends = second.zero | second.last
        q_end = Signal(range(3), name="queue_row_ends")
        m.d.comb += q_end.eq(Mux(count != 0, head_ends, 0) + Mux(count == 2, second_ends, 0))
        scan, prep = st["scanning"], st["prep_busy"]
        loaded = row.value + q_end + scan
        pipe = [st["p1_valid"], st["p2_valid"], st["p3_valid"], st["hold_valid"]]
        m.d.comb += [
            Assert(count <= 2, "inv: queue count"),
            Assert(st["out_space"] == (count != 2), "inv: out_space"),
            Assert(st["idle"] == ~scan, "inv: idle = not scanning"),
            Assert((count == 0) | (head.row == row.value), "inv: queue head is the next row"),
            Assert((count != 2) | (second.row == head.row + head_ends), "inv: queue second"),
            Assert((count != 1) | head_ends | (scan & (st["srow"] == head.row)),
                   "inv: a queued row's pairs continue in the scan"),
            Assert((count != 2) | second_ends | (scan & (st["srow"] == second.row)),
                   "inv: a queued row's pairs continue in the scan (second)"),
            Assert((count != 2) | head_ends | ~second.zero,
                   "inv: no zero entry after a row's pair that is not its last"),
            Assert(~(head.zero & head.last) & ~(second.zero & second.last),
                   "inv: a zero entry is no pair"),
            Assert(~in_row | (count != 0) | scan, "inv: a row under way is queued or scanned"),
            Assert(~in_row | (count == 0) | ~head.zero, "inv: no zero row inside a row"),
            Assert(~scan | (st["srow"] == row.value + q_end), "inv: the scanned row"),
            Assert(prep == (pipe[0] | pipe[1] | pipe[2] | pipe[3]), "inv: prep_busy"),
            Assert(sum(pipe) <= 1, "inv: one row in preparation"),
            Assert(~prep | (st["row1"] == loaded), "inv: the row in preparation"),
            Assert(st["prow"] == loaded + prep, "inv: rows issued"),
            Assert(st["prow"] <= n, "inv: at most N rows issued"),
            Assert(~st["walking"] | (st["prow"] < n), "inv: walking only with rows left"),
            Assert(went | ((st["prow"] == 0) & ~st["walking"] & ~prep & ~scan & (count == 0)),
                   "inv: idle before go"),
            Assert(~went | (st["credits"] + loaded == R + done.value - st["row_done"]),
                   "inv: credits"),
            Assert(~went | (st["has_credit"] == (st["credits"] != 0)), "inv: has_credit"),
            Assert(~went | started, "inv: go after the start"),
            Assert(done.value <= row.value, "inv: done <= sent"),
            Assert(~st["row_done"] | (done.value != 0), "inv: a registered row_done was done"),
        ]
        self._column_invariants(m, dut, st, n=n, causal=causal, g=g, count=count,
                                head_ends=head_ends, second_ends=second_ends, pipe=pipe)

        zeros = UpDown(m, up=zfire, down=0, max=seq_max, name="zero_rows_sent")
        rows = min(seq_max, self.cover_rows)
        if self.free_reset:
            midway = reset_midway_flag(m, went & (row.value < n))
            m.d.comb += Cover(row_end & (row.value == n - 1) & midway & (n == rows),
                              f"a head of {rows} rows sent after a reset in the middle of one")
            return m
        m.d.comb += [
            Cover(row_end & (row.value == n - 1) & (n == rows) & (zeros.value != 0) & ~zfire,
                  f"a head of {rows} rows sent, zero rows and rows of pairs"),
            Cover(pfire & pair.payload.last & in_row & (n == rows),
                  "a row of several pairs sent"),
        ]
        return m

    @staticmethod
    def _column_invariants(m, dut, st, *, n, causal, g, count, head_ends, second_ends, pipe):
        """The invariants over the columns (for the guarantee's column clauses): every
        kept block of a row at or below its limit block (the block of column ``r`` when
        causal, else of N - 1), which is its highest kept block; the scan's next column
        above every column sent or queued of its row and at most the limit; the queue's
        pairs in increasing column order, each at most its row's limit and the last one
        of its row when at it; the preparation stages' registers what they say of the
        row being prepared."""
        log_bc = dut.block_cols.bit_length() - 1
        seg_w, seg_count = dut.segment_bits, dut.segment_count
        padded = seg_w * seg_count
        log_seg = seg_w.bit_length() - 1
        head, second = st["head"], st["second"]
        scan, prep = st["scanning"], st["prep_busy"]
        in_row, prev_col = g.in_row, g.prev_col

        def limit_of(r):                 # the row's last column (causal: its diagonal)
            return Mux(causal, r, n - 1)

        def le_blocks(limit):            # the blocks at or below the limit's (padded bits)
            lb = limit >> log_bc
            return Cat(*(lb >= i for i in range(padded)))

        def seg(bits, j):
            return bits[j * seg_w:(j + 1) * seg_w]

        def seg_sel(bits, idx):          # segment idx of bits, 0 when out of range
            out = Const(0, seg_w)
            for j in range(seg_count):
                out = Mux(idx == j, seg(bits, j), out)
            return out

        def seg_ones(bits):
            return Cat(*(count_equals(seg(bits, j), 1) for j in range(seg_count)))

        def at_most_one(bits):
            return count_equals(bits, 0) | count_equals(bits, 1)

        # ---- the preparation stages (one row at a time: the existing invariants) ------
        p1, p2, p3, hold = pipe
        limit1, row1, pruned = st["limit1"], st["row1"], st["pruned"]
        seg_after1, seg_at1, lo_upto1 = st["seg_after1"], st["seg_at1"], st["lo_upto1"]
        upto = Cat(*(seg_after1[j] | (seg_at1[j] & lo_upto1[k])
                     for j in range(seg_count) for k in range(seg_w)))
        mask2, kept3, seg_any3 = st["mask2"], st["kept3"], st["seg_any3"]
        lb1 = limit1 >> log_bc
        first4, second4, left4 = st["first4"], st["second4"], st["left4"]
        m.d.comb += [
            Assert(~prep | (limit1 == limit_of(row1)), "inv: the prepared row's limit"),
            Assert(~prep | (upto == Mux(pruned, 0, le_blocks(limit1))),
                   "inv: the prepared row's blocks up to its limit (none when pruned)"),
        ]
        with m.If(p3 | hold):
            m.d.comb += [
                Assert(kept3 == (mask2 & upto), "inv: kept3 = the mask up to the limit"),
                Assert(st["limit_kept3"] == mask2.bit_select(lb1, 1),
                       "inv: limit_kept3 = the limit block's mask bit"),
                Assert(seg_any3 == Cat(*(seg(kept3, j).any() for j in range(seg_count))),
                       "inv: seg_any3 = the segments with a kept block"),
            ]
        with m.If(hold):
            m.d.comb += [
                Assert(first4 == lowest_set_onehot(seg_any3), "inv: first4"),
                Assert(second4 == lowest_set_onehot(seg_any3 & ~first4), "inv: second4"),
                Assert(left4 == (seg_any3 & ~first4 & ~second4), "inv: left4"),
                Assert(st["empty4"] == ~seg_any3.any(), "inv: empty4"),
                Assert(st["seg_one4"] == seg_ones(kept3), "inv: seg_one4"),
            ]

        # ---- the scan ------------------------------------------------------------------
        kept, cur, nxt = st["kept"], st["cur"], st["nxt"]
        cur_seg, nxt_seg, nxt_valid = st["cur_seg"], st["nxt_seg"], st["nxt_valid"]
        pick, later, srow = st["pick"], st["later"], st["srow"]
        limit = Signal.like(limit1, name="scan_limit")
        m.d.comb += limit.eq(limit_of(srow))
        lb = limit >> log_bc
        low = lowest_set_onehot(cur)
        block = Cat(onehot_index(low, log_seg), cur_seg) if seg_count > 1 else \
            onehot_index(low, log_seg)
        next_col = Signal(len(limit1) + 1, name="scan_next_col")
        m.d.comb += next_col.eq(Cat(st["col_lo"], block) if log_bc else block)
        with m.If(scan):
            m.d.comb += [
                Assert((kept & ~le_blocks(limit)) == 0,
                       "inv: the scanned row's kept blocks at or below its limit block"),
                Assert(st["limit_kept"] == kept.bit_select(lb, 1),
                       "inv: limit_kept = the limit block is kept"),
                Assert(cur != 0, "inv: a block left in the current segment"),
                Assert((cur & ~seg_sel(kept, cur_seg)) == 0,
                       "inv: cur = kept blocks of segment cur_seg"),
                Assert(st["single"] == count_equals(cur, 1), "inv: single"),
                Assert(st["seg_one"] == seg_ones(kept), "inv: seg_one"),
                Assert(~nxt_valid | ((nxt_seg > cur_seg) & (nxt != 0) &
                                     (nxt == seg_sel(kept, nxt_seg))),
                       "inv: nxt = a later kept segment"),
                Assert(~nxt_valid | (st["nxt_single"] == count_equals(nxt, 1)),
                       "inv: nxt_single"),
                Assert(at_most_one(pick), "inv: pick one-hot or none"),
                Assert(next_col <= limit, "inv: the scan's next column at most the limit"),
            ]
            if log_bc:
                m.d.comb += Assert(st["limit_lo"] == limit[:log_bc],
                                   "inv: limit_lo = the limit's column in its block")
            for j in range(seg_count):
                m.d.comb += [
                    Assert(~pick[j] | (nxt_valid & (nxt_seg < j) & (seg(kept, j) != 0)),
                           f"inv: pick[{j}] a kept segment after nxt"),
                    Assert(~later[j] | (pick[:j].any() & (seg(kept, j) != 0)),
                           f"inv: later[{j}] a kept segment after pick"),
                ]

        # ---- the columns of the queue and the scan, in each row ------------------------
        def pair_ok(e):
            lim = limit_of(e.row)
            return e.zero | ((e.col <= lim) & ((e.col != lim) | e.last))
        m.d.comb += [
            Assert((count == 0) | pair_ok(head), "inv: queue head's column at most its limit"),
            Assert((count != 2) | pair_ok(second),
                   "inv: queue second's column at most its limit"),
            Assert(~in_row | (count == 0) | (head.col > prev_col),
                   "inv: queue head's column after the row's previous"),
            Assert((count != 2) | head_ends | (second.col > head.col),
                   "inv: queue second's column after the head's"),
            Assert(~scan | (count != 1) | head_ends | (next_col > head.col),
                   "inv: the scan's next column after the queued head's"),
            Assert(~scan | (count != 2) | second_ends | (next_col > second.col),
                   "inv: the scan's next column after the queued second's"),
            Assert(~in_row | (count != 0) | (next_col > prev_col),
                   "inv: the scan's next column after the row's previous"),
        ]
