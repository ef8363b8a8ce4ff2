"""Output serializer: output rows (computed, through a block RAM, or zero) to AXI4-Stream beats."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.utils import exact_log2
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .bram import bram, registered_read_port
from .layouts import out_chunk_signature
from .pair_generator import zero_row_layout
from .unpacker import axis_members

__all__ = ["OutputSerializer"]


def _sext(value, width):
    """Sign-extend a signed value to ``width`` bits."""
    v = Value.cast(value)
    return v if len(v) == width else Cat(v, v[-1].replicate(width - len(v)))


class OutputSerializer(wiring.Component):
    """Sends ``seq_len`` output rows a head on ``m_axis``, ``axis_elems`` outputs a beat in
    sign-extended ``out_lane_bits`` lanes, element 0 first, ``tlast`` on the head's last
    beat. Rows come in order from the MAC array, a chunk of ``mac_lanes`` outputs at a
    time (``i_chunk``), or, for rows with no kept pair, as a zero-row token
    (``i_zero_row``), taken only when every earlier row has been sent.

    Computed rows wait in a block RAM of ``buffers`` rows (``buffers x head_dim x
    out_bits`` bits in words of ``max(mac_lanes, axis_elems)`` outputs; with fewer
    ``mac_lanes`` than ``axis_elems`` the chunks of a word are gathered in a register
    first): no row register and no beat multiplexer over a row, whatever ``head_dim``.
    ``i_chunk`` has no ``ready``: the MAC array sends a row only on a credit, taken
    with the row's last probability and given back on ``row_free``, the cycle after
    the row's last beat was sent. The beats are read ahead from the RAM (the word of
    the next beat is in the RAM's read register when the beat before is taken), so
    rows follow each other without a gap.

    Parameters
    ----------
    seq_max, head_dim, out_bits, axis_elems, out_lane_bits, mac_lanes : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    buffers : int
        ``HDPConfig.out_row_buffers``: rows the RAM holds (1, 2 or 4).

    Members
    -------
    m_axis_tdata/tvalid/tready/tlast : AXI4-Stream master
    start : In(1)
        A head begins (``seq_len`` valid from the next cycle).
    seq_len : In
    i_chunk : In(out_chunk_signature)
        The computed rows, chunk by chunk in order, each row on a credit.
    row_free : Out(1)
        A computed row was sent: its place in the RAM is free (the MAC array's credit).
    i_zero_row : In(stream.Signature(zero_row_layout))
    row_done : Out(1)
        A row was taken: a zero row's token, or a computed row's last chunk.
    last_row_held : Out(1)
        The head's last row is being sent.
    done : Out(1)
        Every row of the head was sent (until the next ``start``).
    beat : Out(1)
        A beat was sent this cycle.
    stop : In(1)
        The head is being aborted: a beat already offered stays until taken (AXI4-Stream),
        then ``m_axis_tvalid`` falls; no new row or zero row is started. The top clears
        the serializer (reset) once ``m_axis_tvalid`` is low; a stopped head is not
        resumed.
    """

    def __init__(self, *, seq_max: int, head_dim: int, out_bits: int, axis_elems: int,
                 out_lane_bits: int, mac_lanes: int, buffers: int = 2):
        if buffers not in (1, 2, 4):
            raise ValueError(f"buffers must be 1, 2 or 4, not {buffers}")
        self.buffers = buffers
        self.seq_max, self.head_dim, self.out_bits = seq_max, head_dim, out_bits
        self.elems, self.lane, self.lanes = axis_elems, out_lane_bits, mac_lanes
        self.bpr = head_dim // axis_elems
        self.word_elems = max(mac_lanes, axis_elems)
        seq_bits = W.index_bits(seq_max)
        members = axis_members("m_axis", width=axis_elems * out_lane_bits, flow=Out)
        members.update({
            "start": In(1), "seq_len": In(W.bits_for(seq_max)),
            "i_chunk": In(out_chunk_signature(out_bits=out_bits, mac_lanes=mac_lanes)),
            "row_free": Out(1),
            "i_zero_row": In(stream.Signature(zero_row_layout(seq_bits=seq_bits))),
            "row_done": Out(1), "last_row_held": Out(1), "done": Out(1), "beat": Out(1),
            "stop": In(1),
        })
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, out_bits=config.out_bits,
                   axis_elems=config.axis_elems, out_lane_bits=config.out_lane_bits,
                   mac_lanes=config.mac_lanes, buffers=config.out_row_buffers)

    def elaborate(self, platform):
        m = Module()
        bpr, n = self.bpr, self.seq_len
        E, L, Wd = self.elems, self.lanes, self.word_elems
        sub = Wd // E                         # beats a RAM word
        group = Wd // L                       # chunks a RAM word
        row_words = self.head_dim // Wd
        depth = self.buffers * row_words      # a power of two: addresses wrap
        elem = signed(self.out_bits)
        mem = bram(m, "rows", shape=data.ArrayLayout(elem, Wd), depth=depth)
        wr = mem.write_port()
        rd = registered_read_port(m, mem, name="rows_rd")

        # ---- write side: chunks (gathered into words) at consecutive addresses ------------
        chunk = self.i_chunk
        row_written = Signal()               # a row's last word was written (last cycle)
        wr_addr = Signal(range(depth))
        m.d.sync += row_written.eq(chunk.valid & chunk.payload.last)
        if group > 1:
            gathered = Signal(data.ArrayLayout(elem, Wd - L))
            in_word = Signal(range(group))
            word_end = in_word == group - 1
            m.d.comb += wr.data.eq(Cat(gathered, chunk.payload.out))
            with m.If(chunk.valid):
                m.d.sync += in_word.eq(Mux(word_end, 0, in_word + 1))
                for g in range(group - 1):
                    with m.If(in_word == g):
                        m.d.sync += gathered.as_value().word_select(g, L * self.out_bits).eq(
                            chunk.payload.out)
        else:
            word_end = Const(1)
            m.d.comb += wr.data.eq(chunk.payload.out)
        m.d.comb += [wr.en.eq(chunk.valid & word_end), wr.addr.eq(wr_addr)]
        with m.If(wr.en):
            m.d.sync += wr_addr.eq(wr_addr + 1)

        # ---- read side --------------------------------------------------------------------
        waiting = Signal(range(self.buffers + 1))   # rows written, not yet started
        pending = Signal()                # waiting != 0, as a flag of its own
        have = Signal()                   # rd.data holds the word of the current beat
        zero = Signal()                   # a zero row is being sent
        busy = Signal()                   # have | zero: a beat is offered
        rd_addr = Signal(range(depth))
        beat_idx = Signal(range(max(2, bpr)))
        rows_sent = Signal(W.bits_for(self.seq_max))
        # Flags of their own, not decodes of beat_idx and rows_sent (a decode shared with
        # the sub-word select put a hundred-load net on the way to the handshake).
        last_beat = Signal(init=int(bpr == 1))
        on_last_row = Signal()
        word_done = Signal(init=1) if sub == 1 else Signal()   # the beat ends its RAM word
        if sub > 1:
            sel = Signal(data.ArrayLayout(elem, E))
            m.d.comb += sel.eq(rd.data.as_value().word_select(beat_idx[:exact_log2(sub)],
                                                              E * self.out_bits))
        else:
            sel = rd.data
        m.d.comb += [
            self.m_axis_tdata.eq(Mux(zero, 0, Cat(*(_sext(sel[j], self.lane)
                                                    for j in range(E))))),
            self.m_axis_tvalid.eq(busy),
            self.m_axis_tlast.eq(last_beat & on_last_row),
            self.beat.eq(self.m_axis_tvalid & self.m_axis_tready),
            self.last_row_held.eq(self.m_axis_tvalid & on_last_row),
            self.done.eq(rows_sent == n),
        ]
        row_end = Signal()
        m.d.comb += row_end.eq(self.beat & last_beat)
        # (rows_sent == n - 1 after this cycle; seq_len is stable from the cycle after
        # start, before any beat)
        m.d.sync += on_last_row.eq(Mux(row_end, rows_sent == n - 2, rows_sent == n - 1))
        # a computed row's first word is read when nothing is being sent, or as the row
        # before ends (rows back to back): the rows in the RAM come before any zero row
        # still to come (pairs and zero rows leave the pair generator in row order).
        # (pending, busy and word_done are registers: the read enable is two LUT levels)
        first = Signal()
        m.d.comb += [
            first.eq(pending & (~busy | (self.m_axis_tready & last_beat)) & ~self.stop),
            self.i_zero_row.ready.eq(~busy & ~pending & ~row_written & ~self.stop
                                     & (self.i_zero_row.payload.row == rows_sent)),
            rd.en.eq(first | (have & self.m_axis_tready & word_done & ~last_beat)),
            rd.addr.eq(rd_addr),
            self.row_done.eq(row_written
                             | (self.i_zero_row.valid & self.i_zero_row.ready)),
        ]
        with m.If(rd.en):
            m.d.sync += rd_addr.eq(rd_addr + 1)
        m.d.sync += waiting.eq(waiting + row_written - first)
        # (waiting + row_written - first != 0, without the adder on the way)
        with m.If(row_written):
            m.d.sync += pending.eq(1)
        with m.Elif(first):
            m.d.sync += pending.eq(waiting > 1)
        with m.If(self.beat):
            with m.If(last_beat):
                m.d.sync += [zero.eq(0), have.eq(0), busy.eq(0), beat_idx.eq(0),
                             rows_sent.eq(rows_sent + 1), last_beat.eq(bpr == 1)]
                if sub > 1:
                    m.d.sync += word_done.eq(0)
            with m.Else():
                m.d.sync += [beat_idx.eq(beat_idx + 1), last_beat.eq(beat_idx == bpr - 2)]
                if sub > 1:
                    m.d.sync += word_done.eq(beat_idx[:exact_log2(sub)] == sub - 2)
            with m.If(self.stop):             # the offered beat is taken: offer no more
                m.d.sync += [zero.eq(0), have.eq(0), busy.eq(0)]
        m.d.sync += self.row_free.eq(row_end & have)
        with m.If(first):
            m.d.sync += [have.eq(1), busy.eq(1)]
        with m.If(self.i_zero_row.valid & self.i_zero_row.ready):
            m.d.sync += [zero.eq(1), busy.eq(1)]
        with m.If(self.start):
            m.d.sync += rows_sent.eq(0)
        # the state the formal harness's invariants name (hdp_rtl/formal/serializer.py)
        self.state = dict(rows_sent=rows_sent, beat_idx=beat_idx, last_beat=last_beat,
                          on_last_row=on_last_row, waiting=waiting, pending=pending,
                          have=have, zero=zero, busy=busy, row_written=row_written)
        return m
