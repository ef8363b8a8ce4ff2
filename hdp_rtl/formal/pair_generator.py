"""Formal harness of :class:`~hdp_rtl.rtl.pair_generator.PairGenerator`: its rows, in
order and at most N a head, proven by k-induction."""
from amaranth.hdl import Elaboratable, Mux, Signal

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

    - ``o_pair`` and ``o_zero_row``: stream rules;
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
    one ``last`` (a zero row never inside a row of pairs), and only rows < N; at most
    ``rows_in_flight`` rows started (a pair or zero row sent) and not done.

    Invariants over the generator's state (``PairGenerator.state``) make it inductive:
    the rows issued (``prow``) = rows sent + rows ending in the output queue + the row
    scanned + the row in preparation; the row indices along the queue, the scan and the
    preparation; the credits = ``rows_in_flight`` - rows loaded and not done.

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
        zero, pair = dut.o_zero_row, dut.o_pair
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
