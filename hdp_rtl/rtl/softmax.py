"""Softmax unit (spec step 6): row max, exp2 by table and shift, sum, reciprocal, normalise."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .layouts import prob_layout, score_layout

__all__ = ["Softmax"]


class Softmax(wiring.Component):
    """Fixed-point softmax of each row of kept scores, bit-exact to ``golden.softmax_rows``.

    A row's scores are stored while its maximum is tracked (bank A); a second bank lets
    the next row stream in while this one is processed: an exponential pass
    (``e = T[u mod 2^L] >> (u >> L)`` with ``u = round((max - S) * score_scale /
    2^(scale_frac - L))``, summing), a divider for ``floor(2^recip_shift / sum)`` (one
    radix-2 step, then radix-4 steps: three compare-subtracts in parallel) and a
    normalise pass that streams the probabilities out in input order.

    Both passes are pipelined for timing (ECP5: >= 100 MHz). The exponential pass is a
    fixed-latency pipeline of ``EXP_DEPTH`` register stages behind each read (RAM read,
    score, ``z``, partial products, two adder levels, table and shift amount, ``e``),
    tracked by a valid shift register. The normalise pass (RAM read, ``e`` and ``col``,
    partial products of ``e * recip``, sum; rounded into an output FIFO of
    ``FIFO_DEPTH``) issues a read only while in-flight plus queued beats leave a FIFO
    slot, so back-pressure on ``o_prob`` never drops or reorders a beat. A bank is freed
    when its last normalise read is issued, and the next row's exponential pass starts
    in the same cycle.

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
        Run-time register, stable during a head (registered inside: a change takes
        effect a cycle later).
    i_score : In(stream.Signature(score_layout))
        The kept pairs of one row, ``last`` on its final pair; rows follow each other.
    o_prob : Out(stream.Signature(prob_layout))
        One probability per input beat, same order, ``col`` and ``last`` copied.
    row_sum, row_sum_valid : Out
        Monitor: each row's sum of exponentials (one-cycle pulse, no handshake).

    Throughput: a row of ``k`` pairs is taken in ``k`` cycles; processing takes
    ``k + EXP_DEPTH`` (exponentials; 8) + ``ceil((recip_bits - 1) / 2) + 1`` (divider;
    12 at the default preset) + ``k`` (normalise reads, without back-pressure) cycles,
    i.e. ``2k + 20`` a row at the default preset (``2k + recip_bits + 4`` = ``2k + 27``
    before pipelining), and overlaps the arrival of the next row. The last probability
    leaves ``5`` cycles after its read; from a row's first score to its last
    probability: ``3k + 26`` cycles at the default preset when idle.
    """

    EXP_DEPTH = 8    # exponential pipeline: register stages from an issued read to e
    FIFO_DEPTH = 8   # output FIFO; also the normalise credit (in flight + queued)

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
        # read ports always enabled: each read's data is captured into a register the
        # cycle after its issue (tagged by a valid bit of the pass that issued it)
        scores = memory.Memory(shape=self.score_bits + self.seq_bits, depth=depth, init=[])
        exps = memory.Memory(shape=E + 1, depth=depth, init=[])
        m.submodules.scores, m.submodules.exps = scores, exps
        s_wr, s_rd = scores.write_port(), scores.read_port()
        e_wr, e_rd = exps.write_port(), exps.read_port()

        # ---- receiver: fills bank `wbank`, tracking count and max ----------------------
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

        # ---- processor: exponentials, divider, normalise on bank `pbank` ------------------
        pbank = Signal()
        n_last = Signal(range(self.seq_max))     # the row's last index and max, latched at start
        mx = Signal(signed(self.score_bits))
        idx = Signal(range(self.seq_max + 1))
        at_last = idx == n_last
        issuing = Signal()                       # EXP: reads still to issue
        scale = Signal(self.scale_bits)
        m.d.sync += scale.eq(self.score_scale)
        m.d.comb += [s_rd.addr.eq(bank_addr(pbank, idx)), e_rd.addr.eq(bank_addr(pbank, idx))]
        s_score = s_rd.data[:self.score_bits].as_signed()
        s_col = s_rd.data[self.score_bits:]

        # -- exponential pipeline (fixed latency, no back-pressure: a valid shift register)
        # issue (address) | RAM read | s_q | z | partial products | x, y | prod | table,
        # shift | e -> sum and exps write
        ev = Signal(self.EXP_DEPTH)                # ev[i]: stage i holds a valid beat
        elast = Signal(self.EXP_DEPTH)
        e_issue, e_issue_last = Signal(), Signal()
        m.d.sync += [ev.eq(Cat(e_issue, ev[:-1])), elast.eq(Cat(e_issue_last, elast[:-1]))]
        s_q = Signal(signed(self.score_bits))
        z = Signal(self.score_bits + 1)
        m.d.sync += [s_q.eq(s_score), z.eq(mx - s_q)]
        prod = self._pipelined_product(m, z, scale)           # 3 stages after z
        sh = self.scale_frac - L
        ub = len(prod) - max(sh, 0) + 1
        if sh > 0:
            # u = round(prod / 2^sh) = (prod >> sh) + prod[sh - 1]; e = 0 once u >> L > E,
            # i.e. once prod >> (sh - 1) >= 2 ((E + 1) << L) - 1
            u = Signal(ub)
            m.d.comb += u.eq((prod >> sh) + prod[sh - 1])
            zero = (prod >> (sh - 1)) >= (((E + 1) << L) << 1) - 1
        else:
            u = prod << -sh
            zero = (u >> L) > E
        table = Array(Const(v, E + 1) for v in self.exp_table)
        t_q = Signal(E + 1)
        t_sh = Signal(range(E + 1))
        t_zero = Signal()
        e_q = Signal(E + 1)
        m.d.sync += [t_q.eq(table[u[:L]]), t_sh.eq(u[L:][:len(t_sh)]), t_zero.eq(zero),
                     e_q.eq(Mux(t_zero, 0, t_q >> t_sh))]
        total = Signal(self.sum_bits)
        write_idx = Signal(range(self.seq_max + 1))
        e_done = ev[-1]
        m.d.comb += [e_wr.addr.eq(bank_addr(pbank, write_idx)), e_wr.data.eq(e_q),
                     e_wr.en.eq(e_done), self.row_sum.eq(total)]
        with m.If(e_done):
            m.d.sync += [total.eq(total + e_q), write_idx.eq(write_idx + 1)]

        # -- divider: floor(2^recip_shift / total); one radix-2 step, then radix-4 steps
        s4 = -(-(self.recip_bits - 1) // 2)
        qbits = 1 + 2 * s4
        a = E - 1 + self.recip_bits - qbits            # first remainder 2^a < 2^E <= total
        assert 0 <= a < E
        rem = Signal(self.sum_bits)
        quot = Signal(qbits)
        t3 = Signal(self.sum_bits + 2)
        step = Signal(range(s4 + 1))
        quot_v = quot[:self.recip_bits]   # < 2^(recip_bits - 1): the top bits are 0
        # (the normalise pipeline reads quot 2 cycles after its last issue; the next row's
        # divider starts EXP_DEPTH + 1 cycles after that issue at the earliest)

        # -- normalise pipeline (credited): issue | RAM read | e, col | partial products |
        # sum -> FIFO (rounded) -> o_prob
        fifo = SyncFIFO(width=len(self.o_prob.payload.as_value()), depth=self.FIFO_DEPTH)
        m.submodules.fifo = fifo
        reserved = Signal(range(self.FIFO_DEPTH + 1))   # in flight + in the FIFO
        n_issue, n_issue_last = Signal(), Signal()
        nv = Signal(4)
        nlast = Signal(4)
        m.d.sync += [nv.eq(Cat(n_issue, nv[:-1])), nlast.eq(Cat(n_issue_last, nlast[:-1]))]
        ne_q = Signal(E + 1)
        col = [Signal(self.seq_bits, name=f"col{i}") for i in range(3)]
        m.d.sync += [ne_q.eq(e_rd.data), col[0].eq(s_col), col[1].eq(col[0]), col[2].eq(col[1])]
        psum = self._pipelined_product(m, ne_q, quot_v, stages=2)  # 2 stages after ne_q
        rs = E + G
        p = (psum >> rs) + psum[rs - 1]                  # round(e * recip / 2^(E+G))
        wdata = Signal(self.o_prob.payload.shape())
        m.d.comb += [wdata.prob.eq(p), wdata.col.eq(col[2]), wdata.last.eq(nlast[3]),
                     fifo.w_data.eq(wdata), fifo.w_en.eq(nv[3]),
                     self.o_prob.valid.eq(fifo.r_rdy), self.o_prob.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o_prob.ready)]
        pop = fifo.r_rdy & self.o_prob.ready
        credit = reserved < self.FIFO_DEPTH
        m.d.sync += reserved.eq(reserved + (n_issue & ~pop) - (pop & ~n_issue))

        def start(bank):                   # latch a full bank's row and begin its EXP pass
            return [idx.eq(0), issuing.eq(1), write_idx.eq(0), total.eq(0),
                    n_last.eq(last_idx[bank]), mx.eq(row_max[bank])]

        with m.FSM():
            with m.State("WAIT"):
                with m.If(full.bit_select(pbank, 1)):
                    m.d.sync += start(pbank)
                    m.next = "EXP"
            with m.State("EXP"):              # issue reads; the pipeline sums behind
                with m.If(issuing):
                    m.d.comb += [e_issue.eq(1), e_issue_last.eq(at_last)]
                    m.d.sync += [idx.eq(idx + 1), issuing.eq(~at_last)]
                with m.If(e_done & elast[-1]):    # the row's last exponential is summed now
                    m.d.sync += step.eq(0)
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):           # division of 2**recip_shift by total
                m.d.comb += self.row_sum_valid.eq(step == 0)
                with m.If(step == 0):         # radix 2 from the constant remainder 2^a
                    first = Const(1 << (a + 1), self.sum_bits + 1)
                    ge = first >= total
                    m.d.sync += [rem.eq(Mux(ge, first - total, first)), quot.eq(ge),
                                 t3.eq(total + (total << 1))]
                with m.Else():                # radix 4: three compare-subtracts in parallel
                    sh4 = Cat(Const(0, 2), rem)
                    d = [sh4 - total, sh4 - (total << 1), sh4 - t3]
                    ds = []
                    for j, dj in enumerate(d):
                        sj = Signal(signed(self.sum_bits + 3), name=f"d{j + 1}")
                        m.d.comb += sj.eq(dj)
                        ds.append(sj)
                    ok = [~sj[-1] for sj in ds]
                    with m.If(ok[2]):
                        m.d.sync += [rem.eq(ds[2]), quot.eq(Cat(Const(3, 2), quot))]
                    with m.Elif(ok[1]):
                        m.d.sync += [rem.eq(ds[1]), quot.eq(Cat(Const(2, 2), quot))]
                    with m.Elif(ok[0]):
                        m.d.sync += [rem.eq(ds[0]), quot.eq(Cat(Const(1, 2), quot))]
                    with m.Else():
                        m.d.sync += [rem.eq(sh4), quot.eq(Cat(Const(0, 2), quot))]
                m.d.sync += step.eq(step + 1)
                with m.If(step == s4):
                    m.d.sync += idx.eq(0)
                    m.next = "NORMALISE"
            with m.State("NORMALISE"):        # issue reads while the FIFO has credit
                with m.If(credit):
                    m.d.comb += [n_issue.eq(1), n_issue_last.eq(at_last)]
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(at_last):       # all read: free the bank; the pipeline drains
                        nb = ~pbank
                        m.d.sync += [full.bit_select(pbank, 1).eq(0), pbank.eq(nb)]
                        with m.If(full.bit_select(nb, 1)):
                            m.d.sync += start(nb)
                            m.next = "EXP"
                        with m.Else():
                            m.next = "WAIT"
        return m

    def _pipelined_product(self, m, a, b, stages=3):
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
