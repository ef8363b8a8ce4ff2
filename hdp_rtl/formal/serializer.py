"""Formal harness of :class:`~hdp_rtl.rtl.serializer.OutputSerializer`: the beats and
``tlast`` of a head on ``m_axis``, proven by k-induction (assume-guarantee: the rows the
serializer receives are assumed, see :class:`SerializerHarness`)."""
from amaranth.hdl import Cat, Elaboratable, Mux, Signal

from ..rtl.serializer import OutputSerializer
from .common import (Assert, Assume, Cover, UpDown, any_const, any_seq, drive_any, harness_module,
                     packet_beats, reset_midway_flag, stream_rules)

__all__ = ["SerializerHarness", "SerializerContract", "serializer_for", "serializer_invariants"]


def serializer_for(config, **overrides):
    """The serializer of ``config`` (its ``from_config`` arguments), with ``overrides``."""
    kwargs = dict(seq_max=config.seq_max, head_dim=config.head_dim, out_bits=config.out_bits,
                  axis_elems=config.axis_elems, out_lane_bits=config.out_lane_bits,
                  mac_lanes=config.mac_lanes, buffers=config.out_row_buffers)
    kwargs.update(overrides)
    return kwargs


class SerializerContract:
    """What the serializer's environment (the MAC array, the pair generator, the register
    file and the sequencer) must guarantee for :class:`SerializerHarness`'s properties:
    ``kind`` is ``Assume`` in the unit's proof and ``Assert`` where the serializer sits in
    the top (``top_head``), which makes the pair an assume-guarantee proof. ``n`` is the
    head's N; the harness drives ``seq_len`` itself when ``kind`` is ``Assume``.
    ``control`` (default ``kind``) is the kind of the clauses on ``start``, ``stop`` and
    ``seq_len`` alone, which the sequencer and the register file guarantee
    (``top_control``): ``Assume`` in the datapath chain's proof, which asserts the rest.

    - ``start`` at most once; ``seq_len`` = N from the cycle after it; ``stop`` low;
    - no row before the cycle after ``start`` (``i_chunk``, ``i_zero_row``);
    - ``i_chunk``: rows of ``head_dim / mac_lanes`` chunks, ``last`` on the last one only;
      a row's chunk only while fewer than ``buffers`` rows sent are not freed on
      ``row_free`` (the MAC array's row credits);
    - ``i_zero_row``: stream rules (valid and row held until taken);
    - at most N rows a head: computed rows (last chunks) + zero rows taken <= N.
    """

    def __init__(self, m, dut, *, n, kind, control=None, name="ser"):
        control = kind if control is None else control   # the start, stop and seq_len clauses
        seq_max, buffers = dut.seq_max, dut.buffers
        chunks = dut.head_dim // dut.lanes
        chunk, zero = dut.i_chunk, dut.i_zero_row
        self.started = started = Signal(name=f"{name}_started")     # from the cycle after start
        self.started2 = started2 = Signal(name=f"{name}_started2")  # from the second cycle after
        with m.If(dut.start):
            m.d.sync += started.eq(1)
        m.d.sync += started2.eq(started)
        self.chunk_end = chunk_end = Signal(name=f"{name}_chunk_row_end")
        m.d.comb += chunk_end.eq(chunk.valid & chunk.payload.last)
        self.zero_fire = zero_fire = stream_rules(m, zero.valid, zero.ready, zero.payload,
                                                  output=kind is Assert, name=f"{name}_i_zero_row")
        self.in_row = in_row = Signal(range(chunks), name=f"{name}_chunks_of_row")
        with m.If(chunk.valid):
            m.d.sync += in_row.eq(in_row + 1)
            with m.If(chunk.payload.last):
                m.d.sync += in_row.eq(0)
        self.held = UpDown(m, up=chunk_end, down=dut.row_free, max=buffers,
                           name=f"{name}_rows_not_freed")
        self.computed = UpDown(m, up=chunk_end, down=0, max=seq_max,
                               name=f"{name}_computed_rows_in")
        self.zeros = UpDown(m, up=zero_fire, down=0, max=seq_max, name=f"{name}_zero_rows_in")
        self.rows_in = rows_in = self.computed.value + self.zeros.value
        m.d.comb += [
            control(~(dut.start & started), f"{name}: one start"),
            control(~dut.stop, f"{name}: no stop"),
            kind(~(chunk.valid | zero.valid) | started, f"{name}: no row before the start"),
            kind(~chunk.valid | (chunk.payload.last == (in_row == chunks - 1)),
                 f"{name}: i_chunk rows of head_dim / mac_lanes chunks"),
            kind(~chunk.valid | (self.held.value < buffers), f"{name}: a row only on a credit"),
            kind(rows_in + chunk_end + zero_fire <= n, f"{name}: at most N rows a head"),
        ]
        if control is Assert:
            m.d.comb += control(~started | (dut.seq_len == n),
                                f"{name}: seq_len = N from the cycle after start")


class SerializerHarness(Elaboratable):
    """One head: ``start`` once (any cycle), ``seq_len`` = N (any 1..seq_max) from the
    cycle after it (free before); ``m_axis_tready`` free, ``stop`` low (no abort, as in
    ``top_head``). ``params``: the serializer's parameters (:func:`serializer_for`).

    Assumed, what the MAC array, the pair generator and the sequencer guarantee the
    serializer (its input contract, :class:`SerializerContract`; in the core it is
    asserted by the ``top_head_contracts`` BMC):

    - no row before the start (``i_chunk``, ``i_zero_row``: nothing until the cycle after
      ``start``);
    - ``i_chunk``: rows of ``head_dim / mac_lanes`` chunks, ``last`` on the last one
      only; a row's chunks only while fewer than ``buffers`` rows sent are not freed
      (``row_free``): the MAC array's row credits;
    - ``i_zero_row``: stream rules (valid and row held until taken), any row index;
    - at most N rows a head: computed rows (last chunks) + zero rows taken <= N.

    Asserted: ``m_axis`` stream rules; no beat before the start; beat ``i`` of the head
    (counted by the harness) only for ``i < N x beats_per_row``, ``tlast`` exactly when
    ``i = N x beats_per_row - 1``; ``done`` exactly when all ``N x beats_per_row`` beats
    are sent; ``row_free`` only for a computed row received and not freed (the MAC's
    credits come back once a row); ``row_done`` once per row received (the pair
    generator's credits).

    The induction is made to hold by invariants over the serializer's own state (read
    from ``dut.state``): the rows received = rows sent + the row being sent + rows
    waiting in the RAM + a row written last cycle; rows not freed = rows waiting + a
    row written + a computed row being sent + a ``row_free`` this cycle; beats sent =
    ``rows_sent x beats_per_row + beat_idx``; ``last_beat`` and ``on_last_row`` as
    their names say.

    With ``free_reset``, the solver also drives the reset in every cycle (mid-head too):
    the serializer, the contract and the harness's counters restart together, and every
    property above holds for the head since the last reset (N is the same for every
    head; ``top_reset`` draws it anew at each reset, bounded).
    """

    def __init__(self, *, params: dict, cover_rows: int = 4, unit=OutputSerializer,
                 free_reset: bool = False):
        self.params = params
        self.cover_rows = cover_rows     # the covered heads' N (at most seq_max)
        self.unit = unit                 # (a mutant, in tests)
        self.free_reset = free_reset

    def elaborate(self, platform):
        m = harness_module(free_reset=self.free_reset)
        p = self.params
        dut = self.unit(**p)
        # elaborated here, so that its internal state (dut.state) can be read
        m.submodules.dut = dut.elaborate(platform)
        dut._MustUse__silence = True
        seq_max, bpr = p["seq_max"], dut.bpr

        # ---- the head: start once, N from the cycle after start; the rows (assumed) ---
        n = Signal(len(dut.seq_len), name="n")
        m.d.comb += [n.eq(any_const(len(n))), dut.stop.eq(0)]
        m.d.comb += Assume((n >= 1) & (n <= seq_max), "N in 1..seq_max")
        drive_any(m, dut.start, dut.i_chunk.valid, dut.i_chunk.payload, dut.i_zero_row.valid,
                  dut.i_zero_row.payload, dut.m_axis_tready)
        c = SerializerContract(m, dut, n=n, kind=Assume)
        # seq_len: N from the cycle after start (as the serializer requires), free before
        m.d.comb += dut.seq_len.eq(Mux(c.started, n, any_seq(len(n))))
        started, computed, zeros, rows_in = c.started, c.computed, c.zeros, c.rows_in

        # ---- m_axis: the head's beats ----------------------------------------------------
        fire = stream_rules(m, dut.m_axis_tvalid, dut.m_axis_tready,
                            Cat(dut.m_axis_tdata, dut.m_axis_tlast), output=True, name="m_axis")
        out_beat = packet_beats(m, fire, dut.m_axis_tvalid, dut.m_axis_tlast, started=started,
                                beats=n * bpr, max_beats=seq_max * bpr)
        serializer_invariants(m, dut, c, n=n, out_beat=out_beat)

        rows = min(seq_max, self.cover_rows)
        if self.free_reset:
            midway = reset_midway_flag(m, (rows_in != 0) & (out_beat < n * bpr))
            m.d.comb += Cover(fire & dut.m_axis_tlast & midway & (computed.value != 0),
                              "a head sent after a reset in the middle of a head")
            return m
        m.d.comb += [
            Cover(fire & dut.m_axis_tlast & (n == rows) & (zeros.value != 0)
                  & (computed.value != 0), f"a head of {rows} rows sent, zero and computed"),
            Cover(fire & dut.m_axis_tlast & (n == rows) & (zeros.value == 0),
                  f"a head of {rows} computed rows sent"),
        ]
        return m


def serializer_invariants(m, dut, c, *, n, out_beat):
    """:class:`SerializerHarness`'s properties beyond the packet (``done``, ``row_free``,
    ``row_done``) and the invariants over ``dut.state`` that make them inductive, for
    the serializer ``dut`` (elaborated by the harness), its contract ``c``, the head's
    ``n`` and the harness's count of beats sent ``out_beat``; also used by the
    datapath chain's proof (``chain.py``). Returns the count of ``row_done`` pulses."""
    st = dut.state
    bpr, buffers = dut.bpr, dut.buffers
    seq_max = dut.seq_max
    started, started2 = c.started, c.started2
    held, rows_in, in_row = c.held, c.rows_in, c.in_row
    done_rows = UpDown(m, up=dut.row_done, down=0, max=seq_max, name="row_done_count")
    m.d.comb += [
        Assert(~started | (dut.done == (out_beat == n * bpr)), "done once every beat is sent"),
        Assert(~dut.row_free | (held.value != 0), "row_free only for a row not freed"),
        Assert(done_rows.value + st["row_written"] == rows_in,
               "row_done once per row received"),
    ]

    # ---- invariants over the serializer's state (for the induction) -------------------
    m.d.comb += [
        Assert(st["busy"] == (st["have"] | st["zero"]), "inv: busy = have | zero"),
        Assert(~(st["have"] & st["zero"]), "inv: not a computed and a zero row at once"),
        Assert(st["pending"] == (st["waiting"] != 0), "inv: pending = waiting != 0"),
        Assert(st["rows_sent"] + st["busy"] + st["waiting"] + st["row_written"] == rows_in,
               "inv: rows received = sent + being sent + waiting + just written"),
        Assert(held.value == st["waiting"] + st["row_written"] + st["have"]
               + dut.row_free, "inv: rows not freed = waiting + written + sending + freed"),
        Assert(held.value <= buffers, "inv: at most buffers rows not freed"),
        Assert((in_row == 0) | (held.value < buffers), "inv: a partial row has a credit"),
        Assert(st["beat_idx"] < bpr, "inv: beat_idx < beats_per_row"),
        Assert(st["last_beat"] == (st["beat_idx"] == bpr - 1), "inv: last_beat"),
        Assert(~st["busy"] | (st["rows_sent"] < n), "inv: no row beyond N being sent"),
        Assert(st["busy"] | (st["beat_idx"] == 0), "inv: beat_idx 0 between rows"),
        Assert(out_beat == st["rows_sent"] * bpr + st["beat_idx"],
               "inv: beats sent = rows_sent x beats_per_row + beat_idx"),
        Assert(~started2 | (st["on_last_row"] == (st["rows_sent"] == n - 1)),
               "inv: on_last_row"),
        Assert(started | (out_beat == 0), "inv: nothing sent before the start"),
        Assert(started2 | (rows_in == 0), "inv: no row until the cycle after start"),
        Assert(~started2 | started, "inv: started2 after started"),
    ]
    return done_rows
