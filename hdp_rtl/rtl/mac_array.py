"""MAC array with the approximation unit (spec steps 5 and 7)."""
from amaranth.hdl import Array, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply, tree_sum
from .layouts import out_row_layout, pair_layout, prob_layout, score_layout
from .rowmem import RowReadSignature

__all__ = ["MacArray", "SUM_GROUP"]

#: Lanes summed in one registered group: the lane term (product less the
#: approximation) and a 4-term tree are three adder levels (ECP5: about 3 ns an adder
#: level); the sum of the groups is registered in turn.
SUM_GROUP = 4


class MacArray(wiring.Component):
    """``mac_lanes`` lanes shared by the scores of kept pairs and by ``P x V``.

    Each operation (a kept pair's score, or one probability times a V row) takes
    ``head_dim / mac_lanes`` cycles, one chunk of ``mac_lanes`` elements a cycle; the
    row it needs is read in the last cycle of the operation before, so operations
    follow each other without a bubble. When both inputs have work they alternate.

    Pipelined for the clock: operands, products (in the DSP's output register), the
    sums of groups of ``SUM_GROUP`` lanes and then the sum of the groups are each
    registered, so a score leaves 5 cycles after its last chunk was issued (its output
    register filled from the running sum of its chunks) and an output row 4. The pipeline stands still as a whole only while a stage holds a
    result for a full output register.

    Each lane has one hard multiplier, ``q x k`` for a score and ``p x v`` for P x V:
    ``q.k`` is the exact score ``S_int*2^2F + (qi.kf + qf.ki)*2^F + qf.kf``. With
    ``approx_enable`` the approximation unit subtracts ``qf.kf``, an ``F x F`` product
    built in LUTs (:func:`~.arith.lut_multiply`), which gives the spec's approximate
    score. So a lane costs one DSP whatever the mode; the approximation changes the
    result, not the multiplier count.
    P x V accumulates ``head_dim`` sums of ``p * v``; a row's last probability
    releases ``round(acc / 2^out_shift)``, saturated to ``out_bits``.

    Parameters
    ----------
    seq_max, head_dim, int_bits, frac_bits, mac_lanes, prob_bits, out_bits, out_frac : int
        As in :class:`~hdp_rtl.config.HDPConfig`.

    Members
    -------
    approx_enable : In(1)
        Run-time register, stable during a head.
    q_rd, k_rd, v_rd : In(RowReadSignature)
        Row-buffer read ports (one cycle latency).
    i_pair : In(stream.Signature(pair_layout))
        Kept pairs ``(row, col)``; ``last`` ends a row.
    o_score : Out(stream.Signature(score_layout))
        Each pair's score, ``col`` and ``last`` copied.
    i_prob : In(stream.Signature(prob_layout))
        The probabilities of a row's kept pairs; ``last`` ends the row.
    o_out : Out(stream.Signature(out_row_layout))
        One output row per input row.
    busy_mac : Out(1)
        High in each cycle the lanes do useful work.

    Every pair reads its Q and K rows (in the cycle the pair is taken), so the array
    keeps no row across operations and may share its read ports with another unit
    between heads.
    """

    def __init__(self, *, seq_max: int, head_dim: int, int_bits: int, frac_bits: int,
                 mac_lanes: int, prob_bits: int, out_bits: int, out_frac: int):
        self.seq_max, self.head_dim = seq_max, head_dim
        self.I, self.F, self.B = int_bits, frac_bits, int_bits + frac_bits
        self.lanes, self.P = mac_lanes, prob_bits
        self.out_bits = out_bits
        self.out_shift = W.out_shift(frac_bits=frac_bits, prob_bits=prob_bits, out_frac=out_frac)
        self.seq_bits = W.index_bits(seq_max)
        self.score_bits = W.score_bits(data_bits=self.B, head_dim=head_dim)
        self.acc_bits = W.pv_acc_bits(prob_bits=prob_bits, data_bits=self.B, seq_max=seq_max)
        rd = RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=self.B)
        super().__init__({
            "approx_enable": In(1),
            "q_rd": In(rd), "k_rd": In(rd), "v_rd": In(rd),
            "i_pair": In(stream.Signature(pair_layout(seq_bits=self.seq_bits))),
            "o_score": Out(stream.Signature(score_layout(score_bits=self.score_bits,
                                                         seq_bits=self.seq_bits))),
            "i_prob": In(stream.Signature(prob_layout(prob_value_bits=prob_bits + 1,
                                                      seq_bits=self.seq_bits))),
            "o_out": Out(stream.Signature(out_row_layout(out_bits=out_bits, head_dim=head_dim))),
            "busy_mac": Out(1),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, int_bits=config.int_bits,
                   frac_bits=config.frac_bits, mac_lanes=config.mac_lanes,
                   prob_bits=config.prob_bits, out_bits=config.out_bits, out_frac=config.out_frac)

    def elaborate(self, platform):
        m = Module()
        L, F, d = self.lanes, self.F, self.head_dim
        chunks = d // L
        sh = self.out_shift
        top = (1 << (self.out_bits - 1)) - 1

        # ---- output registers (the pipeline's last stage) ------------------------------
        s_valid = Signal()
        s_payload = Signal.like(self.o_score.payload)
        o_valid = Signal()
        o_payload = Signal.like(self.o_out.payload)
        m.d.comb += [self.o_score.valid.eq(s_valid), self.o_score.payload.eq(s_payload),
                     self.o_out.valid.eq(o_valid), self.o_out.payload.eq(o_payload)]
        s_free = ~s_valid | self.o_score.ready
        o_free = ~o_valid | self.o_out.ready
        with m.If(self.o_score.valid & self.o_score.ready):
            m.d.sync += s_valid.eq(0)
        with m.If(self.o_out.valid & self.o_out.ready):
            m.d.sync += o_valid.eq(0)

        # ---- the pipeline: issue -> operands -> products -> sums -> outputs ----------------
        # Each stage holds one chunk of one operation. The whole pipeline stands still
        # while its last stage has a result for an output register that is still full.
        ctrl = data.StructLayout({"valid": 1, "is_pv": 1, "chunk": range(max(2, chunks)),
                                  "last_chunk": 1, "col": self.seq_bits, "last": 1})
        s1, s2, s3, s4 = (Signal(ctrl, name=f"ctrl{i}") for i in (1, 2, 3, 4))
        stall = ((s3.valid & s3.is_pv & s3.last_chunk & s3.last & ~o_free) |
                 (s4.valid & ~s4.is_pv & s4.last_chunk & ~s_free))
        move = ~stall

        # issue stage: the operation whose rows were read, one chunk a cycle
        active = Signal()
        is_pv = Signal()
        op_col = Signal(self.seq_bits)
        op_last = Signal()
        op_p = Signal(self.P + 1)
        chunk = Signal(range(max(2, chunks)))
        last_chunk = chunk == chunks - 1
        working = active & move
        advance = ~active | (last_chunk & move)
        m.d.comb += self.busy_mac.eq(working)

        last_was_pv = Signal()       # alternate when both inputs wait
        pick_pv = self.i_prob.valid & (~self.i_pair.valid | ~last_was_pv)
        pick_pair = self.i_pair.valid & ~pick_pv
        pair = self.i_pair.payload
        prob = self.i_prob.payload
        m.d.comb += [
            self.i_prob.ready.eq(advance & pick_pv), self.i_pair.ready.eq(advance & pick_pair),
            self.q_rd.addr.eq(pair.row), self.k_rd.addr.eq(pair.col), self.v_rd.addr.eq(prob.col),
            self.q_rd.en.eq(0), self.k_rd.en.eq(0), self.v_rd.en.eq(0),
        ]
        with m.If(working):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))
        with m.If(advance):
            m.d.sync += active.eq(pick_pv | pick_pair)
            with m.If(pick_pv):
                m.d.comb += self.v_rd.en.eq(1)
                m.d.sync += [is_pv.eq(1), op_col.eq(prob.col), op_last.eq(prob.last),
                             op_p.eq(prob.prob), last_was_pv.eq(1)]
            with m.Elif(pick_pair):
                m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]
                m.d.sync += [is_pv.eq(0), op_col.eq(pair.col), op_last.eq(pair.last),
                             last_was_pv.eq(0)]

        def pick(row, lane):
            elems = [Value.cast(row[ch * L + lane]) for ch in range(chunks)]
            return Array(elems)[chunk] if chunks > 1 else elems[0]

        # stage 1: the chunk's operands, registered after the row buffers' read
        # stage 2: the products, registered (a DSP's output register)
        a_shape, b_shape = signed(max(self.B, self.P + 2)), signed(self.B)
        products, fines = [], []
        with m.If(move):
            m.d.sync += [s1.valid.eq(working), s1.is_pv.eq(is_pv), s1.chunk.eq(chunk),
                         s1.last_chunk.eq(last_chunk), s1.col.eq(op_col), s1.last.eq(op_last),
                         s2.eq(s1), s3.eq(s2), s4.eq(s3)]
        for lane in range(L):
            q = pick(self.q_rd.data, lane)
            k = pick(self.k_rd.data, lane)
            v = pick(self.v_rd.data, lane)
            # the lane's one hard multiplier, shared: q x k (the exact score term) for a
            # score, p x v for P x V
            a = Signal(a_shape, name=f"lane{lane}_a")
            b = Signal(b_shape, name=f"lane{lane}_b")
            prod = Signal(signed(len(a) + len(b)), name=f"lane{lane}_prod")
            products.append(prod)
            with m.If(move):
                m.d.sync += [a.eq(Mux(is_pv, op_p, q)), b.eq(Mux(is_pv, v, k)), prod.eq(a * b)]
            if F:
                # the approximation unit drops qf x kf from q x k = qi.ki 2^2F +
                # (qi.kf + qf.ki) 2^F + qf.kf: an F x F product, small enough for LUTs
                qf, kf = Signal(F, name=f"lane{lane}_qf"), Signal(F, name=f"lane{lane}_kf")
                fine = Signal(2 * F, name=f"lane{lane}_fine")
                fines.append(fine)
                with m.If(move):
                    m.d.sync += [qf.eq(Value.cast(q)[:F]), kf.eq(Value.cast(k)[:F]),
                                 fine.eq(lut_multiply(qf, kf))]

        # stage 3, scores: the sums of groups of SUM_GROUP lanes, registered
        terms = [p - Mux(self.approx_enable, f, 0) for p, f in zip(products, fines)] \
            if F else products
        groups = [Signal(signed(self.score_bits), name=f"group{j}")
                  for j in range(-(-L // SUM_GROUP))]
        with m.If(move):
            for j, group in enumerate(groups):
                m.d.sync += group.eq(tree_sum(terms[j * SUM_GROUP:(j + 1) * SUM_GROUP]))
        # stage 4, scores: the sum of the groups, registered
        partial = Signal(signed(self.score_bits))
        with m.If(move):
            m.d.sync += partial.eq(tree_sum(groups))
        # stage 3, P x V: acc[ch * L + lane] takes lane `lane` in chunk `ch`; a group's
        # first chunk of a row overwrites it (the last row's sums are read one cycle on)
        acc = [Signal(signed(self.acc_bits), name=f"acc{i}") for i in range(d)]
        fresh = Signal(chunks, init=(1 << chunks) - 1)
        pv_in = s2.valid & s2.is_pv & move
        for ch in range(chunks):
            hit = (s2.chunk == ch) if chunks > 1 else 1
            with m.If(pv_in & hit):
                for lane in range(L):
                    i = ch * L + lane
                    m.d.sync += acc[i].eq(Mux(fresh[ch], 0, acc[i]) + products[lane])
                m.d.sync += fresh[ch].eq(s2.last)

        # stage 5, scores: the chunk's sum added to the pair's earlier chunks; the score
        # of the operation's last chunk goes to the output register
        with m.If(move & s4.valid & ~s4.is_pv):
            if chunks > 1:
                s_acc = Signal(signed(self.score_bits))
                total = Mux(s4.chunk == 0, partial, s_acc + partial)
                m.d.sync += s_acc.eq(total)
            else:
                total = partial
            with m.If(s4.last_chunk):
                m.d.sync += [s_valid.eq(1), s_payload.score.eq(total),
                             s_payload.col.eq(s4.col), s_payload.last.eq(s4.last)]
        # stage 4, P x V: a finished output row (read the cycle after its last update)
        with m.If(move & s3.valid & s3.is_pv & s3.last_chunk & s3.last):
            m.d.sync += o_valid.eq(1)
            for i in range(d):
                rounded = (acc[i] + (1 << (sh - 1))) >> sh if sh else acc[i]
                m.d.sync += o_payload.out[i].eq(
                    Mux(rounded > top, top, Mux(rounded < -top - 1, -top - 1, rounded)))
        return m
