"""Softmax unit (spec step 6): row max, exp2 by table and shift, sum, reciprocal, normalise."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .layouts import prob_layout, score_layout

__all__ = ["Softmax"]


class Softmax(wiring.Component):
    """Fixed-point softmax of each row of kept scores, bit-exact to ``golden.softmax_rows``.

    A row's scores are stored while its maximum is tracked (bank A); a second bank lets
    the next row stream in while this one is processed: an exponential pass
    (``e = T[u mod 2^L] >> (u >> L)`` with ``u = round((max - S) * score_scale /
    2^(scale_frac - L))``, summing), a restoring divider for ``floor(2^recip_shift /
    sum)`` (``recip_bits`` cycles) and a normalise pass that streams the
    probabilities out in input order.

    Parameters
    ----------
    seq_max, score_bits, exp_lut_bits, exp_bits, prob_bits, recip_guard_bits,
    score_scale_bits, score_scale_frac : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    exp_table : list of int
        ``golden.exp_table(config)``: ``2**exp_lut_bits`` entries.

    Members
    -------
    score_scale : In(score_scale_bits)
        Run-time register, stable during a head.
    i_score : In(stream.Signature(score_layout))
        The kept pairs of one row, ``last`` on its final pair; rows follow each other.
    o_prob : Out(stream.Signature(prob_layout))
        One probability per input beat, same order, ``col`` and ``last`` copied.
    row_sum, row_sum_valid : Out
        Monitor: each row's sum of exponentials (one-cycle pulse, no handshake).

    Throughput: a row of ``k`` pairs is taken in ``k`` cycles; processing takes
    ``k + 2`` (exponentials) + ``recip_bits + 1`` (divider) + ``k + 2`` (normalise,
    without back-pressure) cycles and overlaps the arrival of the next row.
    """

    def __init__(self, *, seq_max: int, score_bits: int, exp_lut_bits: int, exp_bits: int,
                 prob_bits: int, recip_guard_bits: int, score_scale_bits: int,
                 score_scale_frac: int, exp_table):
        self.seq_max, self.score_bits = seq_max, score_bits
        self.L, self.E, self.P, self.G = exp_lut_bits, exp_bits, prob_bits, recip_guard_bits
        self.scale_bits, self.scale_frac = score_scale_bits, score_scale_frac
        self.exp_table = [int(x) for x in exp_table]
        assert len(self.exp_table) == 1 << exp_lut_bits
        self.seq_bits = W.index_bits(seq_max)
        self.sum_bits = W.exp_sum_bits(seq_max=seq_max, exp_bits=exp_bits)
        self.recip_bits = W.recip_bits(prob_bits=prob_bits, recip_guard_bits=recip_guard_bits)
        super().__init__({
            "score_scale": In(score_scale_bits),
            "i_score": In(stream.Signature(score_layout(score_bits=score_bits, seq_bits=self.seq_bits))),
            "o_prob": Out(stream.Signature(prob_layout(prob_value_bits=prob_bits + 1,
                                                       seq_bits=self.seq_bits))),
            "row_sum": Out(self.sum_bits), "row_sum_valid": Out(1),
        })

    @classmethod
    def from_config(cls, config):
        from golden import exp_table
        return cls(seq_max=config.seq_max, score_bits=config.score_bits,
                   exp_lut_bits=config.exp_lut_bits, exp_bits=config.exp_bits,
                   prob_bits=config.prob_bits, recip_guard_bits=config.recip_guard_bits,
                   score_scale_bits=config.score_scale_bits,
                   score_scale_frac=config.score_scale_frac, exp_table=exp_table(config))

    def elaborate(self, platform):
        m = Module()
        E, L, G = self.E, self.L, self.G
        # two banks, the bank the address MSB: a bank is 2**seq_bits deep even when
        # seq_max is not a power of two
        depth = 2 << self.seq_bits
        bank_addr = lambda bank, i: Cat(i[:self.seq_bits], bank)  # noqa: E731
        scores = memory.Memory(shape=self.score_bits + self.seq_bits, depth=depth, init=[])
        exps = memory.Memory(shape=E + 1, depth=depth, init=[])
        m.submodules.scores, m.submodules.exps = scores, exps
        s_wr, s_rd = scores.write_port(), scores.read_port()
        e_wr, e_rd = exps.write_port(), exps.read_port()

        # ---- receiver: fills bank `wbank`, tracking count and max ----------------------
        full = Signal(2)
        count = Array(Signal(range(self.seq_max + 1), name=f"count{b}") for b in range(2))
        row_max = Array(Signal(signed(self.score_bits), name=f"max{b}") for b in range(2))
        wbank = Signal()
        wcount = Signal(range(self.seq_max + 1))
        wmax = Signal(signed(self.score_bits))
        beat = self.i_score.payload
        m.d.comb += [
            self.i_score.ready.eq(~full.bit_select(wbank, 1)),
            s_wr.addr.eq(bank_addr(wbank, wcount)), s_wr.data.eq(Cat(beat.score, beat.col)),
            s_wr.en.eq(self.i_score.valid & self.i_score.ready),
        ]
        new_max = Mux((wcount == 0) | (beat.score > wmax), beat.score, wmax)
        with m.If(self.i_score.valid & self.i_score.ready):
            with m.If(beat.last):
                m.d.sync += [wcount.eq(0), count[wbank].eq(wcount + 1), row_max[wbank].eq(new_max),
                             full.bit_select(wbank, 1).eq(1), wbank.eq(~wbank)]
            with m.Else():
                m.d.sync += [wcount.eq(wcount + 1), wmax.eq(new_max)]

        # ---- processor: exponentials, divider, normalise on bank `pbank` ------------------
        pbank = Signal()
        n = count[pbank]
        mx = row_max[pbank]
        idx = Signal(range(self.seq_max + 1))
        rvalid = Signal()                         # a read issued last cycle: data valid now
        rlast = Signal()
        s_score = s_rd.data[:self.score_bits].as_signed()
        s_col = s_rd.data[self.score_bits:]

        # exponential of the score being read
        z = Signal(self.score_bits + 1)
        m.d.comb += z.eq(mx - s_score)
        prod = z * self.score_scale
        sh = self.scale_frac - L
        u = (prod + (1 << (sh - 1))) >> sh if sh > 0 else prod << -sh
        u_int = u >> L
        u_frac = u[:L]
        table = Array(Const(v, E + 1) for v in self.exp_table)
        e_val = Signal(E + 1)
        m.d.comb += e_val.eq(Mux(u_int > E, 0, table[u_frac] >> u_int[:(E + 1).bit_length()]))

        total = Signal(self.sum_bits)
        rem = Signal(self.sum_bits + 1)
        quot = Signal(self.recip_bits)
        step = Signal(range(self.recip_bits + 1))
        write_idx = Signal(range(self.seq_max + 1))

        # output register of the normalise pass
        o_valid = Signal()
        o_payload = Signal.like(self.o_prob.payload)
        m.d.comb += [self.o_prob.valid.eq(o_valid), self.o_prob.payload.eq(o_payload)]
        can_load = ~o_valid | self.o_prob.ready
        with m.If(self.o_prob.valid & self.o_prob.ready):
            m.d.sync += o_valid.eq(0)

        m.d.comb += [s_rd.addr.eq(bank_addr(pbank, idx)), e_rd.addr.eq(bank_addr(pbank, idx)),
                     s_rd.en.eq(0), e_rd.en.eq(0),
                     e_wr.addr.eq(bank_addr(pbank, write_idx)), e_wr.data.eq(e_val),
                     self.row_sum.eq(total)]
        with m.FSM():
            with m.State("WAIT"):
                with m.If(full.bit_select(pbank, 1)):
                    m.d.sync += [idx.eq(0), write_idx.eq(0), total.eq(0), rvalid.eq(0)]
                    m.next = "EXP"
            with m.State("EXP"):              # read score idx; exponential of idx-1
                with m.If(idx < n):
                    m.d.comb += s_rd.en.eq(1)
                    m.d.sync += idx.eq(idx + 1)
                m.d.sync += rvalid.eq(idx < n)
                with m.If(rvalid):
                    m.d.comb += e_wr.en.eq(1)
                    m.d.sync += [total.eq(total + e_val), write_idx.eq(write_idx + 1)]
                with m.If(~rvalid & (idx == n)):
                    m.d.sync += [rem.eq(1 << (E - 1)), quot.eq(0), step.eq(0)]
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):           # restoring division of 2**recip_shift by total
                m.d.comb += self.row_sum_valid.eq(step == 0)
                shifted = Cat(Const(0, 1), rem)
                with m.If(shifted >= total):
                    m.d.sync += [rem.eq(shifted - total), quot.eq(Cat(Const(1, 1), quot))]
                with m.Else():
                    m.d.sync += [rem.eq(shifted), quot.eq(Cat(Const(0, 1), quot))]
                m.d.sync += step.eq(step + 1)
                with m.If(step == self.recip_bits - 1):
                    m.d.sync += [idx.eq(0), rvalid.eq(0)]
                    m.next = "NORMALISE"
            with m.State("NORMALISE"):        # stream p = round(e * recip / 2^(E+G))
                p = (e_rd.data * quot + (1 << (E + G - 1))) >> (E + G)
                consume = rvalid & can_load
                with m.If(consume):
                    m.d.sync += [o_valid.eq(1), o_payload.prob.eq(p), o_payload.col.eq(s_col),
                                 o_payload.last.eq(rlast)]
                issue = (idx < n) & (~rvalid | consume)
                with m.If(issue):
                    m.d.comb += [s_rd.en.eq(1), e_rd.en.eq(1)]
                    m.d.sync += [idx.eq(idx + 1), rvalid.eq(1), rlast.eq(idx == n - 1)]
                with m.Elif(consume):
                    m.d.sync += rvalid.eq(0)
                with m.If(consume & rlast):
                    m.d.sync += [full.bit_select(pbank, 1).eq(0), pbank.eq(~pbank)]
                    m.next = "WAIT"
        return m
