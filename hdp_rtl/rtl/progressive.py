"""SpAtten's progressive quantization on this core (issue 12): after a head, the rows
whose largest kept probability was below ``pq_threshold``, for the host to recompute
at full precision (docs/interface.md, "Progressive quantization").

Bit-exact with :func:`golden.spatten.progressive_rows` of the head's probabilities and
kept pairs.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..regmap import PQ_ROWS_PER_WORD, pq_index_bits, pq_words
from ..widths import bits_for, index_bits
from .bram import bram, registered_read_port

__all__ = ["ProgressiveFlags"]


class ProgressiveFlags(wiring.Component):
    """Flags the rows whose largest kept probability is below a threshold.

    Watches the core without holding anything up:

    - the softmax's ``row_max`` monitor (each computed row's largest probability, rows
      in order, long before the row's outputs): ``row_max < threshold``, registered,
      goes into a queue of flags, one bit a computed row;
    - the output serializer taking rows (``row_done``, one pulse a row in row order,
      ``zero_row`` when it is a row without a kept pair, which is never flagged): each
      computed row takes the next flag from the queue. The serializer's rows give the
      row index (a count from the head's start), so the flags need no row index
      travelling with the scores. The queue holds every row between the two: at most
      ``rows_in_flight`` (the pair generator's credits, returned by ``row_done``).

    Rows come in order, so the flags are assembled 32 at a time in a word register
    (bit ``r mod 32``), copied into a block-RAM word ``r // 32`` the cycle after each
    row, and counted (``count``). The host reads word ``index`` (``flags``) a cycle
    after setting it; it reads 0 while ``busy`` and for words from ``seq_len`` on (the
    RAM keeps older heads' words there).

    Parameters
    ----------
    seq_max, prob_bits : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    rows_in_flight : int
        Rows between the pair generator and the serializer (the top's
        ``2 + Softmax.EXP_BANKS``); the flag queue holds more.

    Members
    -------
    start : In(1)
        A head starts (one pulse): row 0 is next, the count is 0.
    seq_len : In
        The head's tokens (latched by the register file's start).
    busy : In(1)
        The core runs a head.
    threshold : In(prob_bits + 1)
        ``pq_threshold`` of the head (latched by the start).
    row_max, row_max_valid : In
        The softmax's monitor: a computed row's largest probability.
    row_done, zero_row : In(1)
        The serializer took a row; ``zero_row``: it is a row without a kept pair.
    index : In(pq_index_bits)
        The word of flags the host reads.
    flags : Out(min(32, seq_max))
        Rows ``32 * index ...`` of the last head, bit ``i`` row ``32 * index + i`` (the
        value of ``index`` a cycle before).
    count : Out(bits_for(seq_max))
        The rows flagged so far (final when the head is done).
    """

    def __init__(self, *, seq_max: int, prob_bits: int, rows_in_flight: int):
        self.seq_max = seq_max
        self.seq_bits = index_bits(seq_max)
        self.words = -(-seq_max // PQ_ROWS_PER_WORD)
        self.word_bits = min(PQ_ROWS_PER_WORD, seq_max)
        self.index_bits = max(1, (self.words - 1).bit_length())
        # the queue: a power of two above the rows in flight (its pointers wrap)
        self.queue_depth = 1 << rows_in_flight.bit_length()
        assert self.queue_depth > rows_in_flight
        super().__init__({
            "start": In(1), "seq_len": In(bits_for(seq_max)), "busy": In(1),
            "threshold": In(prob_bits + 1),
            "row_max": In(prob_bits + 1), "row_max_valid": In(1),
            "row_done": In(1), "zero_row": In(1),
            "index": In(self.index_bits),
            "flags": Out(self.word_bits), "count": Out(bits_for(seq_max)),
        })

    @classmethod
    def from_config(cls, config, *, rows_in_flight: int | None = None):
        if rows_in_flight is None:
            from .softmax import Softmax
            rows_in_flight = 2 + Softmax.EXP_BANKS
        unit = cls(seq_max=config.seq_max, prob_bits=config.prob_bits,
                   rows_in_flight=rows_in_flight)
        assert unit.words == pq_words(config) and unit.index_bits == pq_index_bits(config)
        return unit

    def elaborate(self, platform):
        m = Module()
        depth = self.queue_depth
        # ---- each computed row's flag, in order, from the softmax's monitor
        flag_in = Signal()
        flag_in_valid = Signal()
        m.d.sync += [flag_in.eq(self.row_max < self.threshold),
                     flag_in_valid.eq(self.row_max_valid)]
        queue = Signal(depth)
        wp = Signal(range(depth))
        rp = Signal(range(depth))
        with m.If(flag_in_valid):
            m.d.sync += [queue.bit_select(wp, 1).eq(flag_in), wp.eq(wp + 1)]

        # ---- rows as the serializer takes them (row order), a cycle later
        done = Signal()
        zero = Signal()
        m.d.sync += [done.eq(self.row_done), zero.eq(self.row_done & self.zero_row)]
        flag = Signal()
        m.d.comb += flag.eq(~zero & queue.bit_select(rp, 1))
        row = Signal(self.seq_bits + 1)            # the next row
        lo_bits = (PQ_ROWS_PER_WORD - 1).bit_length()
        bit = row[:lo_bits]
        word = Signal(PQ_ROWS_PER_WORD)            # the flags of the current word's rows
        count = Signal.like(self.count)
        with m.If(done):
            m.d.sync += [row.eq(row + 1), rp.eq(rp + ~zero), count.eq(count + flag),
                         word.eq(Mux(bit == 0, 0, word) | (flag << bit))]

        # ---- the words: the row's word written the cycle after (from registers)
        mem = bram(m, "flags", shape=self.word_bits, depth=max(2, self.words))
        wr = mem.write_port()
        rd = registered_read_port(m, mem, name="flags_rd")
        wr_en = Signal()
        wr_addr = Signal(self.index_bits)
        m.d.sync += [wr_en.eq(done), wr_addr.eq(row[lo_bits:])]
        m.d.comb += [wr.en.eq(wr_en), wr.addr.eq(wr_addr), wr.data.eq(word[:self.word_bits])]
        with m.If(self.start):
            m.d.sync += [row.eq(0), word.eq(0), count.eq(0), wp.eq(0), rp.eq(0)]

        # ---- the host's reads (words from seq_len on hold older heads' flags: 0)
        m.d.comb += [rd.addr.eq(self.index), rd.en.eq(1)]
        outside = Signal()
        m.d.sync += outside.eq(Cat(Const(0, lo_bits), self.index) >= self.seq_len)
        m.d.comb += [self.flags.eq(Mux(self.busy | outside, 0, rd.data)),
                     self.count.eq(count)]
        return m
