"""The Q, K and V row buffers and the one owner of their shared read ports."""
from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from ..regmap import TENSOR_CODE
from .bram import bram, registered_read_port
from .rowmem import RowReadSignature, row_layout, word_addr
from .unpacker import word_write_layout

__all__ = ["RowStore"]


class RowStore(wiring.Component):
    """Three row memories (``seq_max`` rows of ``head_dim / word_elems`` words each, see
    ``rowmem``) with one write port, fed by ``i_word``, and one read port each.

    The Q and K read ports are shared by the integer pass (the head scorer) and the
    attention pass (the MAC array); ``int_phase`` gives them to the first. Each client
    sees an ordinary one-cycle-latency read port while it owns it: ``data`` is the row
    it addressed in the last cycle it had ``en`` high, provided the other client did not
    read in between (a read by the client that does not own the port reads the owner's
    address). The sequencer never runs both passes at once, and the MAC array
    reads its Q row with every pair, so neither keeps a row across a hand-over.

    Parameters
    ----------
    seq_max, head_dim, data_bits : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    word_elems : int
        ``HDPConfig.row_word_elems`` (default: a whole row).

    Members
    -------
    i_word : In(stream.Signature(word_write_layout))
        Always ready.
    int_phase : In(1)
        The integer-pass ports own Q and K (combinational: takes effect this cycle).
    q_int, k_int : Out(RowReadSignature)
        The integer pass's ports.
    q_mac, k_mac, v_mac : Out(RowReadSignature)
        The attention pass's ports.
    """

    def __init__(self, *, seq_max: int, head_dim: int, data_bits: int,
                 word_elems: int | None = None):
        self.seq_max, self.head_dim, self.data_bits = seq_max, head_dim, data_bits
        self.word_elems = word_elems = word_elems or head_dim
        self.words = head_dim // word_elems
        port = RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=data_bits,
                                word_elems=word_elems)
        seq_bits = W.index_bits(seq_max)
        super().__init__({
            "i_word": In(stream.Signature(word_write_layout(
                seq_bits=seq_bits, words=self.words, word_elems=word_elems,
                data_bits=data_bits))),
            "int_phase": In(1),
            "q_int": Out(port), "k_int": Out(port),
            "q_mac": Out(port), "k_mac": Out(port), "v_mac": Out(port),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, data_bits=config.data_bits,
                   word_elems=config.row_word_elems)

    def elaborate(self, platform):
        m = Module()
        words = row_layout(head_dim=self.word_elems, data_bits=self.data_bits)
        beat = self.i_word.payload
        m.d.comb += self.i_word.ready.eq(1)
        for t in "qkv":
            # no read of a row in the cycle it is written (bram.py): the integer pass
            # reads K once all of it is in and Q row r once q_rows > r, both counted a
            # cycle after the write; the attention pass starts after V's last row
            mem = bram(m, f"{t}_buf", shape=words, depth=self.seq_max * self.words)
            wr, rd = mem.write_port(), registered_read_port(m, mem, name=f"{t}_rd")
            m.d.comb += [wr.addr.eq(word_addr(beat.row, beat.word, words=self.words)),
                         wr.data.eq(beat.data),
                         wr.en.eq(self.i_word.valid & (beat.tensor == TENSOR_CODE[t]))]
            if t == "v":
                wiring.connect(m, wiring.flipped(self.v_mac), rd)
                continue
            ours, theirs = getattr(self, f"{t}_int"), getattr(self, f"{t}_mac")
            m.d.comb += [rd.addr.eq(Mux(self.int_phase, ours.addr, theirs.addr)),
                         # (an OR, not a mux: only the owner reads, and the enable
                         # reaches every block RAM of the buffer a LUT level sooner)
                         rd.en.eq(ours.en | theirs.en),
                         ours.data.eq(rd.data), theirs.data.eq(rd.data)]
        return m
