"""Formal harness of the core's attention chain: the pair generator's rows through the
MAC array, the softmax and the MAC array again to the output serializer, composed as in
the top (:func:`~hdp_rtl.rtl.top.connect_attention`). The head's output beats and
``tlast``, and the units' input contracts inside the core, proven by k-induction."""
from amaranth.hdl import Cat, Elaboratable, Mux, Signal

from ..rtl.mac_array import MacArray
from ..rtl.pair_generator import PairGenerator
from ..rtl.serializer import OutputSerializer
from ..rtl.softmax import Softmax
from ..rtl.top import ROWS_IN_FLIGHT, connect_attention
from .common import (Assert, Assume, Cover, any_const, any_seq, drive_any, harness_module,
                     packet_beats, reset_midway_flag, stream_rules)
from .mac_array import MacArrayContract, mac_beats
from .pair_generator import PairGeneratorContract, PairGeneratorGuarantee
from .serializer import SerializerContract, serializer_invariants
from .softmax import SoftmaxContract, softmax_beats

__all__ = ["ChainHarness"]


def _elaborate(m, name, unit, platform):
    """Add ``unit`` as submodule ``name``, elaborated here (its ``state`` is read)."""
    m.submodules[name] = elaborated = unit.elaborate(platform)
    unit._MustUse__silence = True
    return elaborated


class ChainHarness(Elaboratable):
    """The MAC array, the softmax and the output serializer of ``config``, wired to each
    other and to the pair generator as in the core, for one head of N rows (N any
    1..seq_max, ``causal`` any).

    The pair generator is represented by what its own k-induction proof
    (``pair_generator_rows``) guarantees, :class:`.pair_generator.PairGeneratorGuarantee`,
    assumed on its free outputs: rows 0..N-1 in order after ``go``, each a zero row or
    pairs in increasing column order (< N, column N - 1 ends a row), at most
    ``rows_in_flight`` rows out and not done, stream rules. Sound although the
    generator's proof assumes ``row_done`` (asserted here, from the serializer): the
    generator's outputs are registers and it registers ``row_done`` before use, so a
    guarantee at a cycle depends only on ``row_done`` in the cycles before, where this
    proof has shown it (induction over the cycles).

    Assumed, as the top's control guarantees it (``top_control``): ``start`` once,
    ``go`` once after it, ``seq_len`` = N and ``causal`` held from the cycle after the
    start, the serializer's ``stop`` low (no abort). The row data, ``score_scale`` and
    ``approx_enable`` are free.

    Asserted (k-induction), with every unit's invariants and the chain's own:

    - the input contracts of the MAC array (:class:`.mac_array.MacArrayContract`), the
      softmax (:class:`.softmax.SoftmaxContract`: rows of at most ``seq_max`` scores),
      the serializer (:class:`.serializer.SerializerContract`: rows of ``head_dim /
      mac_lanes`` chunks on credits, at most N rows, none before the start) and the pair
      generator's ``row_done`` clause - the glue of the assume-guarantee proofs;
    - each unit's own properties (its proof's assertions);
    - on ``m_axis``: stream rules, no beat before the start, exactly ``N x
      beats_per_row`` beats, ``tlast`` exactly on the last.

    The chain's invariants: the rows sent by the generator are in the serializer (zero
    and computed rows received), the MAC array's P x V side, the softmax, or the MAC
    array's score side (its score places holding a row's last pair); the MAC array's
    and the serializer's counts of rows not freed and of a row's chunks agree; nothing
    is inside before ``go``; a row's scores in increasing column order from the pair
    generator's last pair through the MAC array's score places to the softmax's input,
    whose row has at most ``prev_col + 1`` beats.

    With ``invariants`` False, only the assumptions, the contracts and the ``m_axis``
    properties, and the covers: a lighter model for the cover task, whose assumptions
    are the proof's (the invariants only add assertions), so what it reaches shows that
    the proof is not vacuous.

    ``connect`` wires the units (the top's :func:`~hdp_rtl.rtl.top.connect_attention`;
    another one in tests, to see the proof fail).

    With ``free_reset``, the solver drives the reset in every cycle (mid-head too), as
    the core's ``dp_clear`` the cycle after its reset: the units, the contracts and the
    harness's counters restart together (the memories keep their words), and every
    property holds for the head since the last reset; the pair generator's guarantee is
    then ``pair_generator_rows_reset``'s, the control's ``top_control_reset``'s.
    """

    def __init__(self, config, *, invariants: bool = True, connect=connect_attention,
                 free_reset: bool = False):
        self.config = config
        self.free_reset = free_reset
        self.invariants = invariants
        self.connect = connect

    def elaborate(self, platform):
        m = harness_module(free_reset=self.free_reset)
        cfg = self.config
        # the pair generator: its ports only (its outputs free, see the guarantee)
        pairs = PairGenerator.from_config(cfg, rows_in_flight=ROWS_IN_FLIGHT)
        pairs._MustUse__silence = True
        mac, softmax = MacArray.from_config(cfg), Softmax.from_config(cfg)
        out = OutputSerializer.from_config(cfg)
        mac_unit = _elaborate(m, "mac", mac, platform)
        sm_unit = _elaborate(m, "softmax", softmax, platform)
        _elaborate(m, "serializer", out, platform)
        self.connect(m, pairs=pairs, mac=mac, softmax=softmax, out=out)

        # ---- the head, and the control (assumed: the top's control proof) ---------------
        n = Signal(len(out.seq_len), name="n")
        causal = Signal(name="causal")
        start, go = Signal(name="start"), Signal(name="go")
        m.d.comb += [n.eq(any_const(len(n))), causal.eq(any_const(1)),
                     start.eq(any_seq(1)), go.eq(any_seq(1))]
        m.d.comb += Assume((n >= 1) & (n <= cfg.seq_max), "N in 1..seq_max")
        m.d.comb += [pairs.start.eq(start), out.start.eq(start), pairs.go.eq(go),
                     out.stop.eq(0), softmax.score_scale.eq(any_seq(len(softmax.score_scale)))]
        if mac.approximation:
            m.d.comb += mac.approx_enable.eq(any_const(1))
        drive_any(m, mac.q_rd.data, mac.k_rd.data, mac.v_rd.data,
                  pairs.o_pair.valid, pairs.o_pair.payload,
                  pairs.o_zero_row.valid, pairs.o_zero_row.payload, out.m_axis_tready)
        pc = PairGeneratorContract(m, pairs, n=n, causal=causal, kind=Assert,
                                   control=Assume)
        sc = SerializerContract(m, out, n=n, kind=Assert, control=Assume)
        seq_len = Mux(sc.started, n, any_seq(len(n)))
        m.d.comb += [pairs.seq_len.eq(seq_len), out.seq_len.eq(seq_len),
                     pairs.causal.eq(Mux(pc.started, causal, any_seq(1)))]
        pg = PairGeneratorGuarantee(m, pairs, pc, n=n, kind=Assume)

        # ---- the units: contracts asserted, their own properties and invariants ---------
        mc = MacArrayContract(m, mac, kind=Assert)
        smc = SoftmaxContract(m, softmax, kind=Assert)
        fire_score = smc.fire                     # (MAC o_score -> softmax i_score)
        fire_prob = mc.fire_prob                  # (softmax o_prob -> MAC i_prob)
        if self.invariants:
            mb = mac_beats(m, mac_unit, mac, mc, fire_score, platform)
            sb = softmax_beats(m, sm_unit, softmax, smc, fire_prob, platform, order=False,
                               invariants=True)
        fire = stream_rules(m, out.m_axis_tvalid, out.m_axis_tready,
                            Cat(out.m_axis_tdata, out.m_axis_tlast), output=True, name="m_axis")
        bpr = out.bpr
        out_beat = packet_beats(m, fire, out.m_axis_tvalid, out.m_axis_tlast,
                                started=sc.started, beats=n * bpr, max_beats=cfg.seq_max * bpr)
        if self.free_reset:
            midway = reset_midway_flag(m, sc.started & (out_beat < n * bpr))
            m.d.comb += Cover(fire & out.m_axis_tlast & (sc.computed.value != 0) & midway,
                              "a head with a computed row sent after a reset mid-head")
        m.d.comb += [
            Cover(fire & out.m_axis_tlast & (sc.zeros.value == n), "a head of zero rows sent"),
            Cover(sc.chunk_end, "a computed row received by the serializer"),
            Cover(fire & out.m_axis_tlast & (sc.computed.value != 0),
                  "a head with a computed row sent"),
        ]
        if self.invariants:
            self._invariants(m, n=n, pairs=pairs, mac=mac, softmax=softmax, out=out, pc=pc,
                             pg=pg, sc=sc, mc=mc, smc=smc, mb=mb, sb=sb, out_beat=out_beat)
        return m

    def _invariants(self, m, *, n, pairs, mac, softmax, out, pc, pg, sc, mc, smc, mb, sb,
                    out_beat):
        """The serializer's own properties and invariants, and the chain's."""
        done_rows = serializer_invariants(m, out, sc, n=n, out_beat=out_beat)

        # ---- the chain's invariants --------------------------------------------------------
        entries = mb.score_entries               # the MAC array's scores, next to leave first
        col_bits = len(mac.o_score.payload.col)
        last_pairs = sum(present & data[col_bits] for present, data in entries)
        mac_empty = ((mb.pairs.value == 0) & (mb.prow.value == 0) & (mc.held.value == 0))
        m.d.comb += [
            Assert(pc.row.value == sc.zeros.value + sc.computed.value + mb.prow.value
                   + sb.rows.value + last_pairs,
                   "chain: rows sent = serializer's + P x V side's + softmax's + score side's"),
            Assert(pc.row.value <= n, "chain: at most N rows sent"),
            Assert(mc.held.value == sc.held.value, "chain: rows not freed, counted alike"),
            Assert(mb.in_row == sc.in_row, "chain: a row's chunks, counted alike"),
            Assert(done_rows.value == pc.done.value, "chain: rows done, counted alike"),
            Assert(pc.started == sc.started, "chain: started alike"),
            Assert(~pc.went | pc.started, "chain: go after the start"),
            Assert(pc.went | (mac_empty & (sb.beats.value == 0) & (sc.rows_in == 0)
                              & (pc.row.value == 0) & ~pg.in_row),
                   "chain: nothing inside before go"),
        ]
        # a row's columns increase from the pair generator's last pair, through the MAC
        # array's score places (youngest last), to the softmax's input (its row so far)
        sm_prev_col = Signal(col_bits, name="sm_prev_col")
        with m.If(smc.fire):
            m.d.sync += sm_prev_col.eq(softmax.i_score.payload.col)
        m.d.comb += Assert((smc.in_row == 0) | (smc.in_row <= sm_prev_col + 1),
                           "chain: the softmax's row so far at most prev_col + 1 beats")
        in_row, prev_col = smc.in_row != 0, sm_prev_col
        for k, (present, data) in enumerate(entries):
            col, last = data[:col_bits], data[col_bits]
            m.d.comb += Assert(~present | ((~in_row | (col > prev_col)) & (col < n)
                                           & ((col != n - 1) | last)),
                               f"chain: score place {k}: columns increase, < N, N - 1 last")
            in_row, prev_col = Mux(present, ~last, in_row), Mux(present, col, prev_col)
        m.d.comb += [
            Assert(pg.in_row == in_row, "chain: the row in progress, the generator's"),
            Assert(~pg.in_row | (pg.prev_col == prev_col), "chain: its last column"),
        ]
