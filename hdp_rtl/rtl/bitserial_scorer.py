"""Bit-serial integer scorer with LeOPArd's early termination (issue 13 item 1).

A unit on its own: not instantiated by the top (``hdp_rtl/rtl/top.py``) and not in
``hdp_rtl.generate.UNITS``; its integration behind the head scorer is later work.
Golden model: :func:`golden.leopard.bitserial_scores`.
"""
from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .outqueue import credit_room, output_queue

__all__ = ["BitSerialScorer", "SUM_GROUP", "pair_in_layout", "result_layout"]

#: Terms summed in one registered group of the plane's adder trees (three adder levels),
#: as the head scorer's ``SUM_GROUP``.
SUM_GROUP = 8


def _kept_sum(m, terms, name: str):
    """The sum of unsigned ``terms`` as a balanced tree of two-input adds, each add's
    result a net of its own (``keep``). Without it yosys (``alumacc``) merges the tree
    into one multi-operand adder and maps it as a carry-save tree in LUTs: for 8 terms
    of 4 bits 9 LUT levels (11.3 ns estimated on ECP5, 310 LUT cells); each add on its
    own carry chain is 7.4 ns and 32 LUT4 + 22 CCU2C."""
    terms, k = [Value.cast(t) for t in terms], 0
    while len(terms) > 1:
        sums = []
        for i in range(0, len(terms) - 1, 2):
            total = terms[i] + terms[i + 1]
            net = Signal(len(total), name=f"{name}_add{k}", attrs={"keep": 1})
            m.d.comb += net.eq(total)
            sums.append(net)
            k += 1
        terms = sums + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def _registered_sum(m, terms, *, group: int, name: str):
    """``arith.registered_sum`` with :func:`_kept_sum` groups: each stage sums groups of
    ``group`` terms into registers until one sum is left. Returns ``(sum, stages)``."""
    terms, stages = [Value.cast(t) for t in terms], 0
    while len(terms) > 1:
        sums = []
        for j in range(0, len(terms), group):
            total = _kept_sum(m, terms[j:j + group], f"{name}_{stages + 1}_{j // group}")
            reg = Signal(len(total), name=f"{name}_{stages + 1}_{j // group}")
            m.d.sync += reg.eq(total)
            sums.append(reg)
        terms, stages = sums, stages + 1
    return terms[0], stages


def pair_in_layout(*, head_dim: int, data_bits: int, seq_bits: int) -> data.StructLayout:
    """One pair to score: its Q and K rows (``head_dim`` signed ``data_bits``-bit
    elements, as the row buffers hold them; only the integer parts are used) and its
    row and column (carried to the result)."""
    row = data.ArrayLayout(signed(data_bits), head_dim)
    return data.StructLayout({"q": row, "k": row, "row": unsigned(seq_bits),
                              "col": unsigned(seq_bits)})


def result_layout(*, int_bits: int, sint_bits: int, seq_bits: int) -> data.StructLayout:
    """One pair's outcome: ``terminated`` (stopped early: its bound fell below the
    threshold, so ``S_int < threshold``), ``planes`` (K bit-planes processed, 1 ..
    ``int_bits``), ``s_int`` (the exact integer score when not terminated, else 0),
    ``keep`` (``s_int >= threshold``; 0 when terminated)."""
    return data.StructLayout({"row": unsigned(seq_bits), "col": unsigned(seq_bits),
                              "terminated": 1, "keep": 1,
                              "planes": unsigned(W.bits_for(int_bits)),
                              "s_int": signed(sint_bits)})


def ring_stages(head_dim: int) -> int:
    """Registers around the ring: the slot register, ``levels`` registered stages of
    the adder trees (groups of ``SUM_GROUP``, none for one element) and the decision."""
    levels, terms = 0, head_dim
    while terms > 1:
        terms, levels = W.ceil_div(terms, SUM_GROUP), levels + 1
    return levels + 2


class BitSerialScorer(wiring.Component):
    """Integer scores ``S_int = sum_d qi*ki`` one K bit-plane a cycle, MSB first, with
    LeOPArd's early termination against a threshold.

    For each pair taken on ``i_pair`` the unit walks K's ``I = int_bits`` bit-planes
    from the MSB down, all ``head_dim`` elements of a plane in one step, with adders
    only (no multiplier). After ``j`` planes the exact upper bound on the pair's score
    (``golden.leopard``: the partial sum plus the most the remaining planes can add) is
    ``B_j``; the pair stops after plane ``j < I`` as soon as ``B_j < threshold``
    (``terminated``: its ``S_int`` is below the threshold too), or after all ``I``
    planes with ``S_int = B_I`` exact. Bit-exact with
    :func:`golden.leopard.bitserial_scores`.

    **Arithmetic.** With ``w = |qi|``, ``s = (qi > 0)`` and ``Pos = sum_d s w``, a step
    on plane ``t`` sums ``T_t = sum_d w (b_t XOR s)``: the elements whose K bit differs
    from "set where ``qi > 0``" (for the MSB plane ``T = Pos - P_MSB``, for the others
    ``T = Pos - P_t``, ``P_t = sum_d qi b_t``). Then ``B_1 = 2^(I-1) T_{I-1} - Pos`` and
    ``B_j = B_{j-1} - 2^(I-j) T_{I-j}``. The compare is one addition a step on
    ``H_j = floor((B_j - threshold) / 2^(I-j))``, negative exactly when ``B_j <
    threshold``: ``H_1 = T_{I-1} + floor(L / 2^(I-1))`` with ``L = -(Pos + threshold)``,
    and ``H_j = 2 H_{j-1} + l_{I-j} - T_{I-j}`` (``l_t`` bit ``t`` of ``L``, the bits the
    floor dropped, shifted back in one a step); ``H_I = S_int - threshold``. ``Pos`` is
    a second adder tree, used on a pair's first step.

    **Ring.** A pair's next plane cannot wait for its previous plane's decision (the
    adder trees are ``stages - 2`` registered stages deep), so ``stages`` pairs are in
    flight at once, each one step along a ring of registers: the slot register (the
    pair's ``|qi|``, signs, remaining K planes, ``H``), the trees' registered group
    sums (the pair's state alongside) and the decision register, whose pair goes round
    again with its next plane or, done, leaves its result and frees the slot for the
    next pair of ``i_pair``. The ring never stops: a pair is taken only while a place
    for its result is free (credits), so back-pressure on ``o_result`` holds only
    ``i_pair``. Every cycle the ring processes one plane of some pair, so a pair costs
    ``planes`` cycles of the ring; results leave in the order pairs finish (a short
    pair overtakes a long one), tagged with their row and column.

    Parameters
    ----------
    seq_max : int
        Largest sequence length: the width of ``row`` and ``col``.
    head_dim : int
        ``d``: elements of a Q or K row, all added in one step.
    int_bits, frac_bits : int
        ``I`` (at least 2) and ``F`` of the ``B = I + F``-bit elements; only the integer
        parts ``x >> F`` are used.

    Attributes
    ----------
    sint_bits : int
        Signed width of ``S_int`` and of ``threshold``.
    stages : int
        ``ring_stages(head_dim)``: pairs in flight, and the cycles between two planes
        of one pair (2 at ``head_dim`` 1, 3 at 2 to 8, 4 at 16 to 64, 5 above).
    queue_depth : int
        Places for results (output register and FIFO): ``stages + 2``.

    Members
    -------
    threshold : In(signed(sint_bits))
        ``score_threshold``: a run-time register, stable from the cycle a pair is
        offered until ``busy`` falls.
    i_pair : In(stream.Signature(pair_in_layout))
        Pairs to score: Q and K rows with their row and column.
    o_result : Out(stream.Signature(result_layout))
        One result per pair, in completion order.
    busy : Out(1)
        A pair is in the ring or a result waits.

    Cycles: a pair taken in cycle ``t`` that processes ``p`` planes has its result in
    the output register at ``t + stages * p + 1``; with ``i_pair`` always valid and
    ``o_result`` always ready, each slot takes a new pair the cycle its pair is done,
    so ``n`` pairs take ``sum(planes)`` cycles plus the drain of the last ones.
    """

    def __init__(self, *, seq_max: int, head_dim: int, int_bits: int, frac_bits: int):
        if int_bits < 2:
            raise ValueError(f"int_bits must be >= 2, not {int_bits}")
        self.seq_max, self.head_dim = seq_max, head_dim
        self.int_bits, self.frac_bits = int_bits, frac_bits
        self.sint_bits = W.sint_bits(int_bits=int_bits, head_dim=head_dim)
        self.seq_bits = W.index_bits(seq_max)
        self.stages = ring_stages(head_dim)
        self.queue_depth = self.stages + 2
        super().__init__({
            "threshold": In(signed(self.sint_bits)),
            "i_pair": In(stream.Signature(pair_in_layout(
                head_dim=head_dim, data_bits=int_bits + frac_bits, seq_bits=self.seq_bits))),
            "o_result": Out(stream.Signature(result_layout(
                int_bits=int_bits, sint_bits=self.sint_bits, seq_bits=self.seq_bits))),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, config):
        """The scorer of ``config``'s heads: ``seq_max``, ``head_dim``, ``int_bits``,
        ``frac_bits``."""
        return cls(seq_max=config.seq_max, head_dim=config.head_dim,
                   int_bits=config.int_bits, frac_bits=config.frac_bits)

    def elaborate(self, platform):
        m = Module()
        d, I, F = self.head_dim, self.int_bits, self.frac_bits
        sb = self.sint_bits
        # Widths: |B_j| <= d 2^(2I-2) <= 2^(sb-2) and |threshold| <= 2^(sb-1), so
        # B_j - threshold, H_j (its floor over a power of two) and L = -(Pos +
        # threshold) all fit sb + 1 signed bits. H_I = S_int - threshold.
        hb = sb + 1
        # The pair's state as it goes round. ``w``/``s``: |qi| and qi > 0; ``kp[0]``:
        # the K plane of this step (the MSB plane first); ``planes``: planes done;
        # ``h``: H after them; ``lbits``: the bits of L still to shift into H (the next
        # one on top); ``first``: no plane done yet. Only the stages' valid flags and
        # the ring's controls are reset; the state registers are not (``reset_less``).
        state = data.StructLayout({
            "first": 1, "planes": unsigned(W.bits_for(I)),
            "w": data.ArrayLayout(unsigned(I), d), "s": unsigned(d),
            "kp": data.ArrayLayout(unsigned(d), I),
            "h": signed(hb), "lbits": unsigned(I - 1),
            "row": unsigned(self.seq_bits), "col": unsigned(self.seq_bits),
        })

        # ---- the slot register and the terms: straight from its flip-flops -------------
        r0 = Signal(state, name="slot", reset_less=True)
        t_terms = [r0.w[i] & (r0.kp[0][i] ^ r0.s[i]).replicate(I) for i in range(d)]
        pos_terms = [r0.w[i][:I - 1] & r0.s[i].replicate(I - 1) for i in range(d)]

        # ---- the adder trees: registered groups of SUM_GROUP, the state alongside --------
        t_sum, levels = _registered_sum(m, t_terms, group=SUM_GROUP, name="tsum")
        pos, levels_pos = _registered_sum(m, pos_terms, group=SUM_GROUP, name="pos")
        assert levels == levels_pos == self.stages - 2
        ring, valids = [r0], [Signal(name="slot_valid")]
        for level in range(levels):
            ring.append(Signal(state, name=f"ring{level + 1}", reset_less=True))
            valids.append(Signal(name=f"ring{level + 1}_valid"))
            m.d.sync += [ring[-1].eq(ring[-2]), valids[-1].eq(valids[-2])]
        st, st_valid = ring[-1], valids[-1]

        # ---- the decision: H_j, and whether the pair is done --------------------------
        # -threshold, registered (stable while busy; a pair reaches this stage at
        # least a cycle after it is taken)
        neg_thr = Signal(signed(hb), reset_less=True)
        m.d.sync += neg_thr.eq(-self.threshold)
        lval = Signal(signed(hb))
        m.d.comb += lval.eq(neg_thr - pos)
        h_new = Signal(signed(hb))
        m.d.comb += h_new.eq(Mux(st.first, (lval >> (I - 1)) + t_sum,
                                 Cat(st.lbits[I - 2], st.h).as_signed() - t_sum))
        last = st.planes == I - 1
        stop = h_new[-1]                                     # H < 0: B_j < threshold

        rl = Signal(state, name="decided", reset_less=True)
        rl_valid, term = Signal(name="decided_valid"), Signal(reset_less=True)
        recirc, emit = Signal(), Signal()                   # (registered: the ring's controls)
        m.d.sync += [
            rl_valid.eq(st_valid), rl.first.eq(0), rl.planes.eq(st.planes + 1),
            rl.w.eq(st.w), rl.s.eq(st.s), rl.kp.eq(st.kp.as_value() >> d),
            rl.h.eq(h_new),
            rl.lbits.eq(Mux(st.first, lval[:I - 1], st.lbits << 1)[:I - 1]),
            rl.row.eq(st.row), rl.col.eq(st.col),
            term.eq(stop & ~last),
            recirc.eq(st_valid & ~last & ~stop), emit.eq(st_valid & (last | stop)),
        ]

        # ---- round again, or a new pair --------------------------------------------------
        room = Signal()
        taken = self.i_pair.valid & self.i_pair.ready
        m.d.comb += self.i_pair.ready.eq(~recirc & room)
        beat = self.i_pair.payload
        new = Signal(state)
        for i in range(d):
            qi = Value.cast(beat.q[i])[F:].as_signed()
            ki = Value.cast(beat.k[i])[F:]
            m.d.comb += [new.w[i].eq(Mux(qi[-1], -qi, qi)[:I]), new.s[i].eq(~qi[-1] & qi.any())]
            for p in range(I):
                m.d.comb += new.kp[p][i].eq(ki[I - 1 - p])
        m.d.comb += [new.first.eq(1), new.planes.eq(0), new.h.eq(0),
                     new.lbits.eq(0), new.row.eq(beat.row), new.col.eq(beat.col)]
        m.d.sync += [r0.eq(Mux(recirc, rl, new)), valids[0].eq(recirc | taken)]

        # ---- results: a place reserved for each pair taken -------------------------------
        out = self.o_result
        m.d.comb += room.eq(credit_room(m, self.queue_depth, take=taken,
                                        give=out.valid & out.ready, name="result"))
        res = Signal.like(out.payload)
        s_int = Signal(signed(hb))
        m.d.comb += [s_int.eq(rl.h + self.threshold),
                     res.row.eq(rl.row), res.col.eq(rl.col), res.terminated.eq(term),
                     res.keep.eq(~rl.h[-1]), res.planes.eq(rl.planes),
                     res.s_int.eq(Mux(term, 0, s_int[:sb]))]
        queued = output_queue(m, out, emit, res, self.queue_depth, "result")
        m.d.comb += self.busy.eq(Cat(*valids, rl_valid, queued).any())
        return m
