"""SpAtten's importances of a head, for the host's cascade (issue 12): what each key
received and how large the head's output was.

Bit-exact with :func:`golden.spatten.token_importance` (the column sums of the
probability codes over the kept pairs) and :func:`golden.spatten.head_importance_out`
(the sum of the output codes' magnitudes).
"""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..regmap import key_importance_bits, out_importance_bits
from ..widths import index_bits
from .arith import registered_sum
from .bram import bram, registered_read_port

__all__ = ["ImportanceUnit"]


class ImportanceUnit(wiring.Component):
    """Accumulates each key's probability and the head's output magnitude.

    Watches two links of the core without holding them up: the probabilities taken by
    the MAC array (``prob_*``, one a cycle at most, the kept pairs only) and the output
    chunks it sends (``chunk_*``). A key's sum lives in a block-RAM word, updated by a
    read-add-write three cycles long; an update whose word is still being written by
    one of the two updates before it takes their sum instead of the RAM's (forwarding),
    so probabilities may come every cycle, in any column order.

    ``start`` clears the head's output sum and starts a sweep that writes 0 to the
    words of keys ``0 .. seq_len - 1``, one a cycle. No probability can come before the
    sweep ends: every row's first probability needs the integer pass over all of K,
    whose ``seq_len`` rows take at least ``seq_len`` input beats.

    While the core is idle (``busy`` low) the RAM's read port reads the word of
    ``key_index`` (the host's register) for ``key_importance``, a cycle after the index
    was set; while it runs, and for keys from ``seq_len`` on, ``key_importance`` reads 0.

    Parameters
    ----------
    seq_max, prob_bits, out_bits, mac_lanes, key_bits, out_imp_bits : int
        From the config: key_bits and out_imp_bits as :func:`hdp_rtl.regmap.key_importance_bits`
        and :func:`hdp_rtl.regmap.out_importance_bits` (the registers' widths).

    Members
    -------
    start : In(1)
        A head starts (one pulse).
    seq_len : In(range(seq_max + 1))
        The head's tokens (latched by the register file's start).
    busy : In(1)
        The core runs a head.
    prob_valid : In(1)
        A probability is taken this cycle; ``prob_col`` its key, ``prob`` its code.
    chunk_valid : In(1)
        An output chunk is sent this cycle; ``chunk_out`` its ``mac_lanes`` codes.
    key_index : In(range(seq_max))
        The key whose importance the host reads.
    key_importance : Out(key_bits)
        The importance of the key ``key_index`` was a cycle before (0 while ``busy``,
        and for keys ``>= seq_len``).
    out_importance : Out(out_imp_bits)
        The head's output importance, final :meth:`out_latency` cycles after the last
        output chunk.
    """

    def __init__(self, *, seq_max: int, prob_bits: int, out_bits: int, mac_lanes: int,
                 key_bits: int, out_imp_bits: int):
        self.seq_max, self.mac_lanes = seq_max, mac_lanes
        self.key_bits, self.out_imp_bits = key_bits, out_imp_bits
        self.seq_bits = index_bits(seq_max)
        super().__init__({
            "start": In(1), "seq_len": In(range(seq_max + 1)), "busy": In(1),
            "prob_valid": In(1), "prob_col": In(self.seq_bits), "prob": In(prob_bits + 1),
            "chunk_valid": In(1),
            "chunk_out": In(data.ArrayLayout(signed(out_bits), mac_lanes)),
            "key_index": In(self.seq_bits),
            "key_importance": Out(key_bits), "out_importance": Out(out_imp_bits),
        })

    def out_latency(self) -> int:
        """Cycles from an output chunk to its magnitudes in ``out_importance``: the
        chunk's register, the magnitudes' register, the sum's stages, the total's
        register."""
        stages, terms = 0, self.mac_lanes
        while terms > 1:
            terms, stages = -(-terms // 4), stages + 1
        return 3 + stages

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, prob_bits=config.prob_bits,
                   out_bits=config.out_bits, mac_lanes=config.mac_lanes,
                   key_bits=key_importance_bits(config),
                   out_imp_bits=out_importance_bits(config))

    def elaborate(self, platform):
        m = Module()
        self._keys(m)
        self._output(m)
        return m

    def _keys(self, m):
        sums = bram(m, "sums", shape=self.key_bits, depth=self.seq_max)
        wr = sums.write_port()
        rd = registered_read_port(m, sums, name="sums_rd")
        m.d.comb += rd.en.eq(1)

        # the sweep: 0 into the words of the head's keys, one a cycle from the start
        sweeping = Signal()
        sweep_addr = Signal(self.seq_bits)
        with m.If(self.start):
            m.d.sync += [sweeping.eq(self.seq_len != 0), sweep_addr.eq(0)]
        with m.Elif(sweeping):
            m.d.sync += [sweep_addr.eq(sweep_addr + 1),
                         sweeping.eq(sweep_addr + 1 != self.seq_len)]

        # stage 1: the word read; stage 2: the word copied (the RAM's clock-to-out stays
        # off the adder), then the sum written. w1 / w2: the updates written one and two
        # cycles before, whose words the stage-2 read could not see yet.
        v1, c1, p1 = Signal(), Signal(self.seq_bits), Signal.like(self.prob)
        v2, c2, p2 = Signal(), Signal(self.seq_bits), Signal.like(self.prob)
        word2 = Signal(self.key_bits)
        w1_sum = Signal(self.key_bits)
        w2_sum = Signal(self.key_bits)
        w1_valid, w1_col = Signal(), Signal(self.seq_bits)
        from_w1, from_w2 = Signal(), Signal()      # stage 2 takes w1's / w2's sum
        new = Signal(self.key_bits)
        m.d.comb += rd.addr.eq(Mux(self.busy, self.prob_col, self.key_index))
        m.d.sync += [v1.eq(self.prob_valid), c1.eq(self.prob_col), p1.eq(self.prob),
                     v2.eq(v1), c2.eq(c1), p2.eq(p1), word2.eq(rd.data),
                     # the update now in stage 2 is written next cycle: w1 when c1 reaches
                     # stage 2; the one written this cycle (w1 now) becomes w2 then
                     from_w1.eq(v2 & (c2 == c1)), from_w2.eq(w1_valid & (w1_col == c1)),
                     w1_valid.eq(v2), w1_col.eq(c2), w1_sum.eq(new), w2_sum.eq(w1_sum)]
        base = Mux(from_w1, w1_sum, Mux(from_w2, w2_sum, word2))
        m.d.comb += new.eq(base + p2)
        m.d.comb += [wr.addr.eq(Mux(sweeping, sweep_addr, c2)),
                     wr.data.eq(Mux(sweeping, 0, new)), wr.en.eq(sweeping | v2)]
        # (keys >= seq_len hold an older head's sums: they read 0)
        outside = Signal()
        m.d.sync += outside.eq(self.key_index >= self.seq_len)
        m.d.comb += self.key_importance.eq(Mux(self.busy | outside, 0, rd.data))

    def _output(self, m):
        # the chunk registered first: the MAC array saturates it combinationally, and
        # that plus |out|'s carry chain was the default core's critical path (9.80 ns,
        # docs/fpga.md, build 7); then |out| of each lane registered (a chunk not sent
        # counts 0), their sum over registered groups of 4 (a 16-term sum in one cycle
        # was 13 LUT levels), then the running total
        chunk = Signal(self.chunk_out.shape(), name="chunk_r")
        chunk_valid = Signal(name="chunk_valid_r")
        m.d.sync += [chunk.eq(self.chunk_out), chunk_valid.eq(self.chunk_valid)]
        mags = []
        for lane in range(self.mac_lanes):
            out = chunk[lane]
            mag = Signal(len(out), name=f"mag{lane}")
            m.d.sync += mag.eq(Mux(chunk_valid, Mux(out < 0, -out, out), 0))
            mags.append(mag)
        chunk_sum, _ = registered_sum(m, mags, group=4, name="mag_sum")
        total = Signal(self.out_imp_bits)
        with m.If(self.start):
            m.d.sync += total.eq(0)
        with m.Else():
            m.d.sync += total.eq(total + chunk_sum)
        m.d.comb += self.out_importance.eq(total)
