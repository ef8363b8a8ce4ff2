"""Softmax unit (spec step 6): row max, exp2 by table and shift, sum, reciprocal, normalise,
rows overlapping (exponentials, divider, normalise on three different rows)."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply
from .bram import bram, registered_read_port
from .bram_fifo import BramFIFO
from .layouts import prob_layout, score_layout

__all__ = ["Softmax"]


class Softmax(wiring.Component):
    """Fixed-point softmax of each row of kept scores, bit-exact to ``golden.softmax_rows``.

    Four stages, each working on a different row, rows in order:

    - receiver: a row's scores (and ``col``) are stored in one of two score banks while
      its maximum is tracked;
    - exponential pass: reads a full score bank, ``e = T[u mod 2^L] >> (u >> L)`` with
      ``u = round((max - S) * score_scale / 2^(scale_frac - L))``, writes ``e`` and
      ``col`` into one of ``EXP_BANKS`` exps banks and sums; the score bank is freed at
      its last read and the next row's reads follow without a gap;
    - divider: ``floor(2^recip_shift / sum)`` (one radix-2 step, then radix-4 steps:
      three compare-subtracts in parallel), from a register holding the next row's sum
      (loaded from its exps bank, or straight from the adder when it is next in order);
      the reciprocal is kept with its exps bank;
    - normalise pass: streams the probabilities out in input order, starting on a row
      as the divider completes it when idle; the exps bank is freed at its last read and
      the next row's reads follow without a gap.

    So row ``r`` can be normalised while row ``r + 1`` is in the divider and row ``r +
    2`` in its exponential pass: a row costs ``max(k, divider)`` cycles in steady state
    instead of the sum of the three.

    Both passes are pipelined for timing (ECP5: >= 100 MHz). The exponential pass is a
    fixed-latency pipeline of ``EXP_DEPTH`` register stages behind each read (RAM read,
    score, ``z``, four stages of ``z * score_scale`` (:meth:`_exp_product`: operands,
    two 15 x 15 products, their copies, their sum, for the presets), table and shift amount, ``e``),
    tracked by a valid shift register; the row's max and each beat's ``col`` travel
    along. The normalise pass (RAM read, ``e`` and ``col``, partial products of ``e *
    recip`` (:meth:`_norm_product`), sum; rounded into an output FIFO of
    ``FIFO_DEPTH`` in block RAM, :class:`~.bram_fifo.BramFIFO`; the row's reciprocal
    travels along) issues a read only while in-flight plus queued beats leave a FIFO
    slot, so back-pressure on ``o_prob`` never drops or reorders a beat.

    Parameters
    ----------
    seq_max, score_bits, exp_lut_bits, exp_bits, prob_bits, recip_guard_bits,
    score_scale_bits, score_scale_frac : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    exp_table : list of int
        ``golden.exp_table(config)``: ``2**exp_lut_bits`` entries.

    Attributes
    ----------
    EXP_DEPTH : int
        Register stages of the exponential pipeline, from an issued read to ``e`` (8).
    FIFO_DEPTH : int
        Output FIFO depth; also the normalise credit (in flight + queued) (8).
    EXP_BANKS : int
        Banks of exponentials (4, a power of two): rows between the start of their
        exponential pass and their last normalise read. Each is ``2**seq_bits`` entries
        of ``exp_bits + 1 + seq_bits`` bits; the score memory has 2 banks of
        ``score_bits + seq_bits`` bits.
    DSP_BITS : int
        Operand width of a product piece (16: one iCE40 SB_MAC16, one ECP5 MULT18X18D).
    LUT_PIECE_BITS : int
        A top piece of ``recip`` this narrow (3) is multiplied in LUTs.

    Members
    -------
    score_scale : In(score_scale_bits)
        Run-time register, stable during a head (registered inside: a change takes
        effect two cycles later, before a score can reach the product).
    i_score : In(stream.Signature(score_layout))
        The kept pairs of one row, ``last`` on its final pair; rows follow each other.
    o_prob : Out(stream.Signature(prob_layout))
        One probability per input beat, same order, ``col`` and ``last`` copied.
    row_sum, row_sum_valid : Out
        Monitor: each row's sum of exponentials (one-cycle pulse, no handshake), rows in
        order, the cycle after the divider takes it.
    row_max, row_max_valid : Out
        Monitor: each row's largest probability (one-cycle pulse, no handshake), rows in
        order, 2 cycles after the divider's last step for the row, before the row's
        first probability leaves. The row's largest score has ``z = 0``, so its
        exponential is ``T[0] = 2**exp_bits``, the row's largest, and its probability
        ``round(2**exp_bits * recip / 2**(exp_bits + guard)) = round(recip / 2**guard)``
        is the row's largest (``p`` does not fall as ``e`` grows): computed from the
        reciprocal alone, with no pass over the row and no multiplier.

    Throughput: a row of ``k`` pairs is taken in ``k`` cycles; the exponential pass
    reads it in ``k`` cycles (``EXP_DEPTH`` more until its sum), the divider takes
    ``ceil((recip_bits - 1) / 2) + 1`` cycles (12 at the default preset) and the
    normalise pass ``k`` (without back-pressure), all overlapping other rows: in steady
    state a row leaves every ``max(k + 1, 12)`` cycles or better at the default preset
    (``k`` or ``k + 1`` for long rows: the two score banks; ``2k + 20`` before the rows
    overlapped). From a row's first score to its last probability: ``3k + 28`` cycles at
    the default preset when idle (``3k + ceil((recip_bits - 1) / 2) + 17``: the divider's
    ``+ 1`` and ``EXP_DEPTH`` 9).
    """

    EXP_DEPTH = 9    # exponential pipeline: register stages from an issued read to e
    FIFO_DEPTH = 8   # output FIFO; also the normalise credit (in flight + queued)
    EXP_BANKS = 4    # banks of exponentials (rows between EXP start and last NORM read)
    DSP_BITS = 16    # a product piece: one iCE40 SB_MAC16 (16 x 16), ECP5 MULT18X18D
    LUT_PIECE_BITS = 3   # a narrower top piece of e * recip is added in LUTs

    def __init__(self, *, seq_max: int, score_bits: int, exp_lut_bits: int, exp_bits: int,
                 prob_bits: int, recip_guard_bits: int, score_scale_bits: int,
                 score_scale_frac: int, exp_table):
        self.seq_max, self.score_bits = seq_max, score_bits
        self.L, self.E, self.P, self.G = exp_lut_bits, exp_bits, prob_bits, recip_guard_bits
        self.scale_bits, self.scale_frac = score_scale_bits, score_scale_frac
        self.exp_table = [int(x) for x in exp_table]
        assert len(self.exp_table) == 1 << exp_lut_bits
        # (row_max: the row's largest score gets T[0], which must be 1.0)
        assert self.exp_table[0] == 1 << exp_bits, "T[0] must be 2**exp_bits"
        self.seq_bits = W.index_bits(seq_max)
        self.sum_bits = W.exp_sum_bits(seq_max=seq_max, exp_bits=exp_bits)
        self.recip_bits = W.recip_bits(prob_bits=prob_bits, recip_guard_bits=recip_guard_bits)
        super().__init__({
            "score_scale": In(score_scale_bits),
            "i_score": In(stream.Signature(score_layout(score_bits=score_bits, seq_bits=self.seq_bits))),
            "o_prob": Out(stream.Signature(prob_layout(prob_value_bits=prob_bits + 1,
                                                       seq_bits=self.seq_bits))),
            "row_sum": Out(self.sum_bits), "row_sum_valid": Out(1),
            "row_max": Out(prob_bits + 1), "row_max_valid": Out(1),
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
        NB = self.EXP_BANKS
        nb_bits = (NB - 1).bit_length()
        assert NB == 1 << nb_bits, "EXP_BANKS: a power of two (the bank pointers wrap)"
        # the bank is the address MSBs: a bank is 2**seq_bits deep even when seq_max is
        # not a power of two
        bank_addr = lambda bank, i: Cat(i[:self.seq_bits], bank)  # noqa: E731
        # scores (score, col): 2 banks, the receiver's and the exponential pass's;
        # exps (e, col): EXP_BANKS banks, a row's from its exponential pass to its last
        # normalise read. Read ports always enabled: each read's data is captured into a
        # register the cycle after its issue (tagged by a valid bit of the pass that
        # issued it)
        # No read meets a write (bram.py): a score bank is read once full and written
        # again only after its last read; an exps bank is written again only by a row
        # that starts after the bank's last normalise read.
        scores = bram(m, "scores", shape=self.score_bits + self.seq_bits,
                      depth=2 << self.seq_bits)
        exps = bram(m, "exps", shape=E + 1 + self.seq_bits, depth=NB << self.seq_bits)
        s_wr, s_rd = scores.write_port(), registered_read_port(m, scores, name="scores_rd")
        e_wr, e_rd = exps.write_port(), registered_read_port(m, exps, name="exps_rd")

        # ---- receiver: fills score bank `wbank`, tracking count and max -----------------
        full = Signal(2)
        last_idx = Array(Signal(range(self.seq_max), name=f"last_idx{b}") for b in range(2))
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
                m.d.sync += [wcount.eq(0), last_idx[wbank].eq(wcount), row_max[wbank].eq(new_max),
                             full.bit_select(wbank, 1).eq(1), wbank.eq(~wbank)]
            with m.Else():
                m.d.sync += [wcount.eq(wcount + 1), wmax.eq(new_max)]

        # ---- exps banks: each row holds one from its EXP start to its last normalise
        # read; every stage takes the rows in order (pointers mod EXP_BANKS)
        busy = Signal(NB)                        # allocated (EXP start .. last NORM read)
        summed = Signal(NB)                      # its sum waits for the divider
        divided = Signal(NB)                     # its reciprocal waits for NORM
        sums = Array(Signal(self.sum_bits, name=f"sum{b}") for b in range(NB))
        recips = Array(Signal(self.recip_bits, name=f"recip{b}") for b in range(NB))
        e_last = Array(Signal(range(self.seq_max), name=f"e_last{b}") for b in range(NB))

        # ---- stage X: exponential pass issue (score bank `xbank` -> exps bank `xeb`) ----
        x_active = Signal()
        xbank = Signal()                         # being read, or the next when idle
        xeb = Signal(nb_bits)                    # its exps bank, or the next when idle
        x_idx = Signal(range(self.seq_max + 1))
        x_last = Signal(range(self.seq_max))     # the row's last index and max, latched
        mx = Signal(signed(self.score_bits))
        scale = Signal(self.scale_bits)
        m.d.sync += scale.eq(self.score_scale)
        m.d.comb += s_rd.addr.eq(bank_addr(xbank, x_idx))
        s_score = s_rd.data[:self.score_bits].as_signed()
        s_col = s_rd.data[self.score_bits:]
        e_issue = x_active                       # a read a cycle while active
        x_fin = x_active & (x_idx == x_last)
        nxb = Mux(x_active, ~xbank, xbank)
        nxeb = Signal(nb_bits)
        m.d.comb += nxeb.eq(Mux(x_active, xeb + 1, xeb))
        x_start = (~x_active | x_fin) & full.bit_select(nxb, 1) & ~busy.bit_select(nxeb, 1)
        with m.If(e_issue):
            m.d.sync += x_idx.eq(x_idx + 1)
        with m.If(x_fin):                        # all read: free the score bank
            m.d.sync += [full.bit_select(xbank, 1).eq(0), x_active.eq(0), xbank.eq(~xbank),
                         xeb.eq(xeb + 1)]
        with m.If(x_start):                      # latch the next full bank's row
            m.d.sync += [x_active.eq(1), x_idx.eq(0), x_last.eq(last_idx[nxb]),
                         mx.eq(row_max[nxb]), xbank.eq(nxb), xeb.eq(nxeb),
                         busy.bit_select(nxeb, 1).eq(1)]

        # -- exponential pipeline (fixed latency, no back-pressure: a valid shift register)
        # issue (address) | RAM read | s_q | z | partial products | x, y | prod | table,
        # shift | e -> sum and exps write. Rows follow each other in it without a gap:
        # the row's max and col travel along (mx_d, col_d)
        ev = Signal(self.EXP_DEPTH)                # ev[i]: stage i holds a valid beat
        elast = Signal(self.EXP_DEPTH)
        m.d.sync += [ev.eq(Cat(e_issue, ev[:-1])), elast.eq(Cat(x_fin, elast[:-1]))]
        mx_d = [Signal(signed(self.score_bits), name=f"mx_d{i}") for i in range(2)]
        col_d = [Signal(self.seq_bits, name=f"col_d{i}") for i in range(self.EXP_DEPTH - 1)]
        m.d.sync += [mx_d[0].eq(mx), mx_d[1].eq(mx_d[0]), col_d[0].eq(s_col)]
        m.d.sync += [col_d[i].eq(col_d[i - 1]) for i in range(1, len(col_d))]
        s_q = Signal(signed(self.score_bits))
        z = Signal(self.score_bits + 1)
        m.d.sync += [s_q.eq(s_score), z.eq(mx_d[1] - s_q)]
        sh = self.scale_frac - L
        # e = 0 exactly when z * score_scale >= zero_at: below it the product must be
        # exact, above it only that it is
        if sh > 0:
            zero_at = ((((E + 1) << L) << 1) - 1) << (sh - 1)
        else:
            zero_at = -(-((E + 1) << L) >> -sh)
        prod, past = self._exp_product(m, z, scale, zero_at)  # 4 stages after z
        ub = len(prod) - max(sh, 0) + 1
        if sh > 0:
            # u = round(prod / 2^sh) = (prod >> sh) + prod[sh - 1]; e = 0 once u >> L > E,
            # i.e. once prod >> (sh - 1) >= 2 ((E + 1) << L) - 1
            u = Signal(ub)
            m.d.comb += u.eq((prod >> sh) + prod[sh - 1])
            zero = past | ((prod >> (sh - 1)) >= (((E + 1) << L) << 1) - 1)
        else:
            u = prod << -sh
            zero = past | ((u >> L) > E)
        table = Array(Const(v, E + 1) for v in self.exp_table)
        # (data registers with no reset: ev says when they hold a value; a reset, or the
        # abort's flush, on e_q's clear put the reset port three LUTs from it)
        t_q = Signal(E + 1, reset_less=True)
        t_sh = Signal(range(E + 1), reset_less=True)
        t_zero = Signal(reset_less=True)
        e_q = Signal(E + 1, reset_less=True)
        m.d.sync += [t_q.eq(table[u[:L]]), t_sh.eq(u[L:][:len(t_sh)]), t_zero.eq(zero),
                     e_q.eq(Mux(t_zero, 0, t_q >> t_sh))]
        # -- write side: exps bank `web`, the row's running sum `total`
        total = Signal(self.sum_bits)
        web = Signal(nb_bits)
        write_idx = Signal(range(self.seq_max + 1))
        e_done = ev[-1]
        total_next = Signal(self.sum_bits)
        sum_byp = Signal()                       # the sum goes straight to the divider
        m.d.comb += total_next.eq(total + e_q)
        m.d.comb += [e_wr.addr.eq(bank_addr(web, write_idx)), e_wr.data.eq(Cat(e_q, col_d[-1])),
                     e_wr.en.eq(e_done)]
        with m.If(e_done):
            with m.If(elast[-1]):             # the row's last exponential: its sum is final
                m.d.sync += [sums[web].eq(total_next), e_last[web].eq(write_idx),
                             summed.bit_select(web, 1).eq(~sum_byp), total.eq(0),
                             write_idx.eq(0), web.eq(web + 1)]
            with m.Else():
                m.d.sync += [total.eq(total_next), write_idx.eq(write_idx + 1)]

        # ---- stage D: divider, floor(2^recip_shift / sum), rows in order (exps bank
        # `deb`); the next row's sum waits in a register (`pf`, taken from the banks in
        # order at `pfb`: no bank mux in front of the divider); one radix-2 step (from
        # `pf`), then radix-4 steps (from `dtotal`)
        s4 = -(-(self.recip_bits - 1) // 2)
        qbits = 1 + 2 * s4
        a = E - 1 + self.recip_bits - qbits            # first remainder 2^a < 2^E <= total
        assert 0 <= a < E
        pf = Signal(self.sum_bits)
        pf_v = Signal()
        pfb = Signal(nb_bits)
        d_busy = Signal()
        d_done = Signal()                        # the last step of a row
        n_start_byp = Signal()                   # ... and NORM starts on it (see below)
        deb = Signal(nb_bits)
        dtotal = Signal(self.sum_bits)
        rem = Signal(self.sum_bits)
        quot = Signal(qbits)
        t3 = Signal(self.sum_bits + 2)
        step = Signal(range(s4 + 1))
        sum_valid = Signal()
        d_take = ~d_busy & pf_v
        pf_free = ~pf_v | d_take
        # the next sum in order is the one being completed: no pass through its bank
        m.d.comb += sum_byp.eq(pf_free & e_done & elast[-1] & (pfb == web))
        with m.If(pf_free & summed.bit_select(pfb, 1)):
            m.d.sync += [pf.eq(sums[pfb]), pf_v.eq(1), summed.bit_select(pfb, 1).eq(0),
                         pfb.eq(pfb + 1)]
        with m.Elif(sum_byp):
            m.d.sync += [pf.eq(total_next), pf_v.eq(1), pfb.eq(pfb + 1)]
        with m.Elif(d_take):
            m.d.sync += pf_v.eq(0)
        m.d.sync += sum_valid.eq(d_take)
        m.d.comb += [self.row_sum.eq(dtotal), self.row_sum_valid.eq(sum_valid)]
        with m.If(~d_busy):
            with m.If(pf_v):                      # radix 2 from the constant remainder 2^a
                first = Const(1 << (a + 1), self.sum_bits + 1)
                ge = first >= pf
                m.d.sync += [rem.eq(Mux(ge, first - pf, first)), quot.eq(ge),
                             t3.eq(pf + (pf << 1)), dtotal.eq(pf), d_busy.eq(1), step.eq(1)]
        with m.Else():                            # radix 4: three compare-subtracts in parallel
            sh4 = Cat(Const(0, 2), rem)
            d = [sh4 - dtotal, sh4 - (dtotal << 1), sh4 - t3]
            ds = []
            for j, dj in enumerate(d):
                sj = Signal(signed(self.sum_bits + 3), name=f"d{j + 1}")
                m.d.comb += sj.eq(dj)
                ds.append(sj)
            # ok[2] implies ok[1] implies ok[0] (the divisor is positive): the digit is
            # ok[0] + ok[1] + ok[2], and the remainder a balanced 4-way mux on ok[1]
            ok = [~sj[-1] for sj in ds]
            nquot = Signal(qbits)
            m.d.comb += nquot.eq(Cat(ok[2] | (ok[0] & ~ok[1]), ok[1], quot))
            m.d.sync += rem.eq(Mux(ok[1], Mux(ok[2], ds[2], ds[1]), Mux(ok[0], ds[0], sh4)))
            m.d.sync += [quot.eq(nquot), step.eq(step + 1)]
            with m.If(step == s4):                # done: the reciprocal waits for NORM
                # < 2^(recip_bits - 1): the top bits are 0 (unless NORM starts on it now)
                m.d.comb += d_done.eq(1)
                m.d.sync += [recips[deb].eq(nquot[:self.recip_bits]),
                             divided.bit_select(deb, 1).eq(~n_start_byp), deb.eq(deb + 1),
                             d_busy.eq(0)]

        # ---- the row's largest probability, round(recip / 2^G) (docstring): from `quot`
        # in the cycle after the divider's last step (it holds the reciprocal then, as
        # `rec_eff` takes it), one adder, registered
        d_final = Signal()
        m.d.sync += d_final.eq(d_done)
        rq = quot[:self.recip_bits]
        m.d.sync += [self.row_max.eq((rq >> G) + rq[G - 1] if G else rq),
                     self.row_max_valid.eq(d_final)]

        # ---- stage N: normalise pass on exps bank `neb` (credited): issue | RAM read |
        # e, col | partial products | sum -> FIFO (rounded) -> o_prob
        # o_prob's valid and payload come from registers (the MAC array decides its next
        # operation on them): the FIFO's flag and its block RAM's read register
        fifo = BramFIFO(width=len(self.o_prob.payload.as_value()), depth=self.FIFO_DEPTH)
        m.submodules.fifo = fifo
        reserved = Signal(range(self.FIFO_DEPTH + 1))   # in flight + in the FIFO
        n_active = Signal()
        neb = Signal(nb_bits)                    # being read, or the next when idle
        n_idx = Signal(range(self.seq_max + 1))
        n_last = Signal(range(self.seq_max))
        n_recip = Signal(self.recip_bits)        # the row's reciprocal, latched at its start
        m.d.comb += e_rd.addr.eq(bank_addr(neb, n_idx))
        pop = fifo.r_rdy & self.o_prob.ready
        credit = reserved < self.FIFO_DEPTH
        n_issue = n_active & credit
        n_fin = n_issue & (n_idx == n_last)
        nneb = Signal(nb_bits)
        m.d.comb += nneb.eq(Mux(n_active, neb + 1, neb))
        n_free = ~n_active | n_fin
        n_start = n_free & divided.bit_select(nneb, 1)
        # or the row whose reciprocal the divider completes now: its first read is issued
        # next cycle and takes the reciprocal from `quot` (`n_from_quot`)
        m.d.comb += n_start_byp.eq(n_free & d_done & (nneb == deb))
        n_from_quot = Signal()
        rec_eff = Mux(n_from_quot, quot[:self.recip_bits], n_recip)
        m.d.sync += n_from_quot.eq(n_start_byp)
        with m.If(n_from_quot):
            m.d.sync += n_recip.eq(quot[:self.recip_bits])
        m.d.sync += reserved.eq(reserved + (n_issue & ~pop) - (pop & ~n_issue))
        with m.If(n_issue):
            m.d.sync += n_idx.eq(n_idx + 1)
        with m.If(n_fin):                        # all read: free the exps bank
            m.d.sync += [busy.bit_select(neb, 1).eq(0), n_active.eq(0), neb.eq(neb + 1)]
        with m.If(n_start):
            m.d.sync += [n_active.eq(1), n_idx.eq(0), n_last.eq(e_last[nneb]),
                         n_recip.eq(recips[nneb]), neb.eq(nneb),
                         divided.bit_select(nneb, 1).eq(0)]
        with m.Elif(n_start_byp):
            m.d.sync += [n_active.eq(1), n_idx.eq(0), n_last.eq(e_last[nneb]), neb.eq(nneb)]
        nv = Signal(4)
        nlast = Signal(4)
        m.d.sync += [nv.eq(Cat(n_issue, nv[:-1])), nlast.eq(Cat(n_fin, nlast[:-1]))]
        # the reciprocal travels along: rows follow each other without a gap
        recip_d = [Signal(self.recip_bits, name=f"recip_d{i}") for i in range(2)]
        m.d.sync += [recip_d[0].eq(rec_eff), recip_d[1].eq(recip_d[0])]
        ne_q = Signal(E + 1)
        col = [Signal(self.seq_bits, name=f"col{i}") for i in range(3)]
        m.d.sync += [ne_q.eq(e_rd.data[:E + 1]), col[0].eq(e_rd.data[E + 1:]),
                     col[1].eq(col[0]), col[2].eq(col[1])]
        psum = self._norm_product(m, ne_q, recip_d[1])  # 2 stages after ne_q
        rs = E + G
        p = (psum >> rs) + psum[rs - 1]                  # round(e * recip / 2^(E+G))
        wdata = Signal(self.o_prob.payload.shape())
        m.d.comb += [wdata.prob.eq(p), wdata.col.eq(col[2]), wdata.last.eq(nlast[3]),
                     fifo.w_data.eq(wdata), fifo.w_en.eq(nv[3]),
                     self.o_prob.valid.eq(fifo.r_rdy), self.o_prob.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o_prob.ready)]
        # the state the formal harness's invariants name (hdp_rtl/formal/softmax.py)
        self.state = dict(
            scores=scores, exps=exps, s_rd=s_rd, e_rd=e_rd, fifo=fifo,
            full=full, last_idx=last_idx, wbank=wbank, wcount=wcount,
            busy=busy, summed=summed, divided=divided, e_last=e_last,
            x_active=x_active, xbank=xbank, xeb=xeb, x_idx=x_idx, x_last=x_last,
            ev=ev, elast=elast, col_d=col_d, web=web, write_idx=write_idx,
            pf_v=pf_v, pfb=pfb, d_busy=d_busy, deb=deb, step=step,
            reserved=reserved, n_active=n_active, neb=neb, n_idx=n_idx, n_last=n_last,
            nv=nv, nlast=nlast, n_col=col)
        return m

    @classmethod
    def _exp_product(cls, m, z, scale, zero_at):
        """``(prod, past)``, registers 4 cycles after ``z``: ``past`` is high only when
        ``z * scale >= zero_at``, and when it is low ``prod`` is ``z * scale`` exactly
        (an unsigned product that is only exact below ``zero_at``: two DSPs of at most
        16 x 16 for the presets instead of four or five of a full product).

        If both operands were ``2**w`` or more, the product would be ``2**(2w)`` or more,
        past ``zero_at`` with ``w = ceil(clog2(zero_at) / 2)``. So, in ``w``-bit low
        parts (``zl``, ``sl``) and the rest (``zh``, ``shi``), ``z * scale = zl*sl +
        (zh*sl + zl*shi) 2^w + zh*shi 2^2w``, where ``zh*shi`` is nonzero only past
        ``zero_at``; below it one of ``zh``, ``shi`` is 0 and the middle term is a single
        product: ``zh*sl`` when ``shi`` is 0, ``zl*shi`` when not. ``shi == 0`` depends
        on the run-time register only (stable during a head), so a multiplexer in front
        of one multiplier picks that product. Stages: ops (``zl``; ``zh`` or ``zl``;
        the flag ``zh != 0 and shi != 0``) | the two products | their sum (a middle
        product of ``2**(clog2(zero_at) - w)`` or more is flagged instead of added).
        The products are registered twice (the first register can sit by its DSP, whose
        own registers yosys does not use), and the run-time side is copied once more for
        the same reason: a DSP placed far from both was the critical path (docs/fpga.md,
        fifth pass).
        The presets: ``w`` = 15, so 15 x 15 products (edge: ``z`` 22 bits, ``scale`` 20;
        a full product took five SB_MAC16, four MULT18X18D at the default preset).
        """
        dsp = cls.DSP_BITS
        clog = (zero_at - 1).bit_length()
        w = (clog + 1) // 2
        if len(z) <= dsp and len(scale) <= dsp:          # one product fits a DSP
            zq, p = Signal.like(z, name="z_ops"), Signal(len(z) + len(scale), name="z_prod")
            prod = Signal(len(p), name="prod_z")
            p2 = Signal(len(p), name="z_prod2")
            m.d.sync += [zq.eq(z), p.eq(zq * scale), p2.eq(p), prod.eq(p2)]
            return prod, Const(0)
        if w > dsp:                                       # no narrow operand: full product
            full = cls._pipelined_product(m, z, scale)
            prod = Signal(len(full), name="prod_z_full")
            m.d.sync += prod.eq(full)
            return prod, Const(0)
        zl, zh, sl, shi = z[:w], z[w:], scale[:w], scale[w:]
        # run-time register side (registered: stable during a head)
        shi_zero = Signal(name="scale_hi_zero")
        b0 = Signal(max(len(sl), len(shi)), name="scale_mid0")
        b = Signal(max(len(sl), len(shi)), name="scale_mid")
        sl_q = Signal(len(sl), name="scale_lo")
        m.d.sync += [shi_zero.eq(shi == 0), b0.eq(Mux(shi == 0, sl, shi)), b.eq(b0),
                     sl_q.eq(sl)]
        # ops: the low part, the middle product's z side, and zh * sh != 0
        zl_q = Signal(w, name="z_lo")
        a_q = Signal(max(w, len(zh)), name="z_mid")
        past_q = Signal(name="z_past_ops")
        m.d.sync += [zl_q.eq(zl), a_q.eq(Mux(shi_zero, zh, zl)),
                     past_q.eq(~shi_zero & (zh != 0))]
        # the two products (one DSP each)
        p_lo = Signal(w + len(sl), name="z_prod_lo")
        p_mid = Signal(len(a_q) + len(b), name="z_prod_mid")
        past_p = Signal(name="z_past_prod")
        m.d.sync += [p_lo.eq(zl_q * sl_q), p_mid.eq(a_q * b), past_p.eq(past_q)]
        p_lo2, p_mid2 = Signal.like(p_lo, name="z_prod_lo2"), Signal.like(p_mid, name="z_prod_mid2")
        past_p2 = Signal(name="z_past_prod2")
        m.d.sync += [p_lo2.eq(p_lo), p_mid2.eq(p_mid), past_p2.eq(past_p)]
        p_lo, p_mid, past_p = p_lo2, p_mid2, past_p2
        # the sum: p_lo < 2^2w, the middle term added up to 2^clog (past: flagged)
        keep = clog - w
        prod = Signal(max(len(p_lo), keep + w) + 1, name="prod_z")
        past = Signal(name="z_past")
        m.d.sync += [prod.eq(p_lo + (p_mid[:keep] << w)),
                     past.eq(past_p | (p_mid[keep:] != 0))]
        return prod, past

    @classmethod
    def _norm_product(cls, m, a, b):
        """``a * b`` (unsigned), registered 2 cycles after ``a`` and ``b``. When ``b``'s
        16-bit pieces leave a top piece of at most ``LUT_PIECE_BITS`` bits (edge: ``e``
        11 bits, ``recip`` 19 = 16 + 3), that piece's product is built in LUTs and the
        others are one DSP each; otherwise the 18-bit pieces of
        :meth:`_pipelined_product` (default: 13 x (18 + 5), two MULT18X18D). Then the
        sum of the registered partial products."""
        dsp = cls.DSP_BITS
        top = len(b) % dsp
        if len(a) > dsp or len(b) <= dsp or top == 0 or top > cls.LUT_PIECE_BITS:
            return cls._pipelined_product(m, a, b, stages=2)
        pps = []
        for i, off in enumerate(range(0, len(b), dsp)):
            piece = b[off:off + dsp]
            pp = Signal(len(a) + len(piece), name=f"pp_{a.name}_{i}")
            narrow = len(piece) <= cls.LUT_PIECE_BITS
            m.d.sync += pp.eq(lut_multiply(a, piece) if narrow else a * piece)
            pps.append((pp, off))
        out = Signal(len(a) + len(b), name=f"prod_{a.name}")
        m.d.sync += out.eq(sum(pp << o for pp, o in pps))
        return out

    @classmethod
    def _pipelined_product(cls, m, a, b, stages=3):
        """``a * b`` (unsigned) from 18-bit pieces: registered partial products (one
        DSP each), then ``stages - 1`` register levels of adds; returns the last register."""
        def pieces(x):
            return [(x[i:i + 18], i) for i in range(0, len(x), 18)]
        pa, pb = pieces(a), pieces(b)
        assert len(pa) <= 2 and len(pb) <= 2
        pps = []
        for xa, oa in pa:
            for xb, ob in pb:
                pp = Signal(len(xa) + len(xb), name=f"pp_{a.name}_{oa}_{ob}")
                m.d.sync += pp.eq(xa * xb)
                pps.append((pp, oa + ob))
        width = len(a) + len(b)
        out = Signal(width, name=f"prod_{a.name}")
        if stages == 2:
            m.d.sync += out.eq(sum(pp << o for pp, o in pps))
            return out
        assert stages == 3
        # level 1: the pieces at offsets 0 and 36 do not overlap (a concatenation), the
        # ones at 18 are added; level 2: one add
        lo = [(pp, o) for pp, o in pps if o != 18]
        mid = [pp for pp, o in pps if o == 18]
        x = Signal(width, name=f"prodx_{a.name}")
        y = Signal(width, name=f"prody_{a.name}")
        m.d.sync += [x.eq(sum(pp << o for pp, o in lo)), y.eq(sum(mid) if mid else 0)]
        m.d.sync += out.eq(x + (y << 18))
        return out
