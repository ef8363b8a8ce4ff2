"""Formal harness of :class:`~hdp_rtl.rtl.softmax.Softmax`: its stream rules; its rows and
beats inside, proven by k-induction; every score beat out once, in order, with ``col``
and ``last`` (BMC)."""
from types import SimpleNamespace

from amaranth.hdl import Array, Const, Elaboratable, Mux, Signal

from ..rtl.softmax import Softmax
from .common import (Assert, Assume, Cover, UpDown, any_const, any_seq, drive_any,
                     harness_module, memory_words, open_submodule, stream_rules)
from .order import Tracked

__all__ = ["SoftmaxHarness", "SoftmaxContract", "softmax_beats"]


class SoftmaxContract:
    """What the softmax's environment (the MAC array) must guarantee for
    :class:`SoftmaxHarness`'s properties: ``Assume`` in the unit's proof, ``Assert``
    where it sits in the top (``top_head_contracts``).

    - ``i_score``: stream rules (valid and payload held until taken);
    - rows of at most ``seq_max`` beats (``last`` on the ``seq_max``-th beat at the latest).

    ``score_scale`` is free in the proof (the beats do not depend on it). Also counts the
    handshake (``fire``) and the beats of the row in progress (``in_row``).
    """

    def __init__(self, m, dut, *, kind, name="sm"):
        i = dut.i_score
        self.fire = stream_rules(m, i.valid, i.ready, i.payload, output=kind is Assert,
                                 name=f"{name}_i_score")
        self.in_row = in_row = Signal(range(dut.seq_max + 1), name=f"{name}_score_row_beats")
        with m.If(self.fire):
            m.d.sync += in_row.eq(in_row + 1)
            with m.If(i.payload.last):
                m.d.sync += in_row.eq(0)
        m.d.comb += kind(~i.valid | (in_row != dut.seq_max - 1) | i.payload.last,
                         f"{name}: rows of at most seq_max beats")


class SoftmaxHarness(Elaboratable):
    """Input ``i_score`` (its contract, :class:`SoftmaxContract`, assumed), output
    ``o_prob`` (asserted: stream rules).

    With ``beats``: no more rows and beats are inside than the two score banks, the
    ``EXP_BANKS`` exps banks and the normalise credit (pipeline and output FIFO) hold;
    no output beat without an input beat; with ``order`` (BMC: any beat followed,
    :class:`.order.Tracked`, without the invariants that would make it inductive), every
    input beat leaves exactly once, in order, with ``col`` and ``last`` copied.

    With ``invariants`` (for k-induction, without ``order``): invariants over the
    softmax's state (``Softmax.state``) make the counts inductive: the beats and rows
    inside are where the unit holds them (the output FIFO's register and words, the
    normalise pipeline, the rest of the row being normalised, the complete exps banks,
    the one being written, the exponential pipeline, the rest of X's row, the full
    score banks, the one being filled); the banks' flags (``busy``, ``summed``,
    ``divided``, ``full``) and pointers as the rows between them say; each
    exponential-pipeline beat's index in its row (a ghost register travelling along);
    the normalise credit and the FIFO's pointers. The order is not proven this way
    (``docs/formal.md``, Limits: the solver does not finish the step).
    """

    def __init__(self, config, *, beats: bool = False, order: bool = True,
                 invariants: bool = False, unit=Softmax, free_reset: bool = False):
        self.config = config
        self.free_reset = free_reset     # the reset free in every cycle (common.harness_module)
        self.beats = beats
        self.order = order               # the in-order check (BMC only, see Limits)
        self.invariants = invariants     # the state invariants (for k-induction)
        self.unit = unit                 # (a mutant, in tests)

    def elaborate(self, platform):
        m = harness_module(free_reset=self.free_reset)
        cfg = self.config
        dut = self.unit.from_config(cfg)
        # elaborated here, so that its internal state (dut.state) can be read below
        m.submodules.dut = unit = dut.elaborate(platform)
        dut._MustUse__silence = True
        i, o = dut.i_score, dut.o_prob
        scale = any_seq if self.beats else any_const
        m.d.comb += dut.score_scale.eq(scale(len(dut.score_scale)))
        drive_any(m, i.valid, i.payload, o.ready)
        c = SoftmaxContract(m, dut, kind=Assume)
        fire_out = stream_rules(m, o.valid, o.ready, o.payload, output=True, name="o_prob")
        m.d.comb += Cover(fire_out & o.payload.last, "a row of probabilities sent")
        if self.beats:
            softmax_beats(m, unit, dut, c, fire_out, platform, order=self.order,
                          invariants=self.invariants)
        return m


def softmax_beats(m, unit, dut, c, fire_out, platform, *, order, invariants):
    """:class:`SoftmaxHarness`'s ``beats`` properties (with ``order``: the in-order
    check; with ``invariants``: the state invariants) for the softmax ``dut`` (elaborated
    by the harness as ``unit``), its contract ``c`` and output handshake ``fire_out``;
    also used by the datapath chain's proof (``chain.py``). Returns the harness's
    counters of the rows and beats inside (``rows``, ``beats``)."""
    i, o = dut.i_score, dut.o_prob
    seq_max, NB = dut.seq_max, dut.EXP_BANKS
    # a row is in a score bank (received, until its last exponential read), in an
    # exps bank (from its exponential pass to its last normalise read) or, after
    # that, has a beat in the normalise pipeline or the FIFO (at most FIFO_DEPTH)
    banks = 2 + NB
    max_rows = banks + dut.FIFO_DEPTH
    max_beats = banks * seq_max + dut.FIFO_DEPTH
    rows = UpDown(m, up=c.fire & i.payload.last, down=fire_out & o.payload.last,
                  max=max_rows, name="rows_inside")
    beats = UpDown(m, up=c.fire, down=fire_out, max=max_beats, name="beats_inside")
    m.d.comb += [
        Assert(rows.value <= max_rows, "no more rows inside than banks and credit hold"),
        Assert(beats.value <= max_beats, "no more beats inside than fit"),
        Assert(~o.valid | (beats.value != 0), "no output beat without an input beat"),
    ]
    if order:
        cl = len(o.payload.col) + 1
        Tracked(m, fire_in=c.fire, in_data=i.payload.as_value()[-cl:], fire_out=fire_out,
                out_data=o.payload.as_value()[-cl:], inside=beats.value,
                max_inside=max_beats, name="col_last")
    # rows overlap: a row sent while the next two are complete inside
    m.d.comb += Cover(fire_out & o.payload.last & (rows.value == 3),
                      "a row sent while the next two are complete inside")
    if invariants:
        _invariants(m, unit, dut, c, rows, beats, platform)
    return SimpleNamespace(rows=rows, beats=beats)


def _invariants(m, unit, dut, c, rows, beats, platform):
    """The invariants over ``dut.state`` that make the counts inductive
    (:class:`SoftmaxHarness`, ``invariants``)."""
    st = dut.state
    seq_max, sb, NB, E = dut.seq_max, dut.seq_bits, dut.EXP_BANKS, dut.E
    nb = (NB - 1).bit_length()
    depth = dut.EXP_DEPTH
    wrap = lambda v: v[:nb]   # noqa: E731 (a bank pointer, mod EXP_BANKS)
    fsub, fsig = open_submodule(unit, "fifo", platform)
    fifo = st["fifo"]
    fifo_w = Array(memory_words(fsub, fsub._named_submodules["storage"][0]))
    w_ptr, r_ptr, stored = fsig["w_ptr"], fsig["r_ptr"], fsig["stored"]

    full, last_idx, wbank, wcount = st["full"], st["last_idx"], st["wbank"], st["wcount"]
    busy, summed, divided, e_last = st["busy"], st["summed"], st["divided"], st["e_last"]
    x_active, xbank, xeb = st["x_active"], st["xbank"], st["xeb"]
    x_idx, x_last = st["x_idx"], st["x_last"]
    ev, elast, web, write_idx = st["ev"], st["elast"], st["web"], st["write_idx"]
    pf_v, pfb, d_busy, deb = st["pf_v"], st["pfb"], st["d_busy"], st["deb"]
    n_active, neb, n_idx, n_last = st["n_active"], st["neb"], st["n_idx"], st["n_last"]
    nv, nlast = st["nv"], st["nlast"]
    # ghost: each exponential-pipeline beat's index in its row (x_idx at its issue)
    gidx = [Signal(range(seq_max + 1), name=f"ghost_exp_idx{k}") for k in range(depth)]
    m.d.sync += [gidx[0].eq(x_idx)] + [gidx[k].eq(gidx[k - 1]) for k in range(1, depth)]

    popcount = lambda bits: sum(bits[k] for k in range(len(bits)))  # noqa: E731
    ndiv, nsum, nel = popcount(divided), popcount(summed), popcount(elast)
    ncomplete = ndiv + d_busy + pf_v + nsum     # exps banks written, not yet read
    nbusy = n_active + ncomplete + nel + x_active
    older_end = [Const(0)] * depth              # a row's end in an older stage
    for k in range(depth - 2, -1, -1):
        older_end[k] = older_end[k + 1] | elast[k + 1]
    other = ~xbank
    m.d.comb += [
        # the score banks: X reads the older full bank; the receiver fills the other
        Assert(~x_active | full.bit_select(xbank, 1), "inv: X reads a full bank"),
        Assert(~full.bit_select(other, 1) | full.bit_select(xbank, 1),
               "inv: the younger bank full only after the older"),
        Assert(wbank == (xbank ^ full[0] ^ full[1]), "inv: the receiver's bank"),
        Assert(~full.bit_select(wbank, 1) | (wcount == 0), "inv: no row into a full bank"),
        Assert((c.in_row == wcount) & (wcount < seq_max),
               "inv: the receiver counts the row's beats"),
        Assert(~x_active | ((x_idx <= x_last) & (x_last == last_idx[xbank])), "inv: X's row"),
        Assert(~x_active | (x_idx == 0) | (ev[0] & ~elast[0] & (gidx[0] + 1 == x_idx)),
               "inv: X's beats issued continue in the pipeline"),
        # the exps banks: rows in order from neb (normalised) to xeb (X's)
        Assert(nbusy <= NB, "inv: at most EXP_BANKS rows in exps banks"),
        Assert(deb == wrap(neb + n_active + ndiv), "inv: deb"),
        Assert(pfb == wrap(deb + d_busy + pf_v), "inv: pfb"),
        Assert(web == wrap(pfb + nsum), "inv: web"),
        Assert(xeb == wrap(web + nel), "inv: xeb"),
        Assert(~n_active | ((n_idx <= n_last) & (n_last == e_last[neb])), "inv: N's row"),
        Assert((ev != 0) | (write_idx == 0), "inv: write_idx 0 with no beat in the pipeline"),
        Assert(st["reserved"] == popcount(nv) + fifo.level, "inv: the normalise credit"),
        Assert(st["reserved"] <= dut.FIFO_DEPTH, "inv: the normalise credit's bound"),
        Assert(fifo.level == stored + fifo.r_rdy, "inv: FIFO level"),
        Assert((stored <= dut.FIFO_DEPTH) & (wrap3(w_ptr - r_ptr, fifo.depth) ==
                                             wrap3(stored, fifo.depth)), "inv: FIFO pointers"),
    ]
    for b in range(NB):
        m.d.comb += [
            Assert(busy[b] == (wrap(b - neb) < nbusy), f"inv: busy[{b}]"),
            Assert(divided[b] == (wrap(b - neb - n_active) < ndiv), f"inv: divided[{b}]"),
            Assert(summed[b] == (wrap(b - pfb) < nsum), f"inv: summed[{b}]"),
        ]
    for k in range(depth):
        nxt = (ev[k - 1] & (gidx[k - 1] == gidx[k] + 1)) if k else \
            (x_active & (x_idx == gidx[0] + 1))
        m.d.comb += [
            Assert(~elast[k] | ev[k], f"inv: elast[{k}] on a beat"),
            Assert(~ev[k] | (gidx[k] < seq_max), f"inv: exp stage {k}'s index"),
            Assert(~ev[k] | elast[k] | nxt, f"inv: exp stage {k}'s row continues"),
            Assert(~ev[k] | older_end[k]
                   | (gidx[k] == write_idx + popcount(ev[k + 1:])),
                   f"inv: exp stage {k} in the row being written"),
            Assert(~ev[k] | ~older_end[k] | (gidx[k] == 0)
                   | ((k < depth - 1) and (ev[k + 1] & ~elast[k + 1]
                                           & (gidx[k + 1] + 1 == gidx[k]))),
                   f"inv: exp stage {k}'s row began before"),
        ]
    for k in range(4):
        m.d.comb += Assert(~nlast[k] | nv[k], f"inv: nlast[{k}] on a beat")

    # ---- the beats and rows inside: where they are -----------------------------------
    fifo_lasts = sum((stored > j) & fifo_w[wrap3(r_ptr + j, fifo.depth)][-1]
                     for j in range(dut.FIFO_DEPTH))
    beats_in = (fifo.r_rdy + stored + popcount(nv) + Mux(n_active, n_last - n_idx + 1, 0)
                + sum(Mux(k < ncomplete, e_last[wrap(neb + n_active + k)] + 1, 0)
                      for k in range(NB))
                + write_idx + popcount(ev) + Mux(x_active, x_last - x_idx + 1, 0)
                + Mux(~x_active & full.bit_select(xbank, 1), last_idx[xbank] + 1, 0)
                + Mux(full.bit_select(other, 1), last_idx[other] + 1, 0) + wcount)
    # a row is counted where its last beat is (X's row: in its full score bank)
    rows_in = ((fifo.r_rdy & fifo.r_data[-1]) + fifo_lasts + popcount(nlast & nv)
               + n_active + ncomplete + nel + full[0] + full[1])
    m.d.comb += [
        Assert(beats.value == beats_in, "inv: beats inside"),
        Assert(rows.value == rows_in, "inv: rows inside"),
    ]


def wrap3(value, depth):
    """``value`` mod ``depth`` (a power of two)."""
    return value[:(depth - 1).bit_length()]
