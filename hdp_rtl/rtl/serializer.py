"""Output serializer: output rows (computed or zero) to AXI4-Stream beats."""
from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .layouts import out_row_layout
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
    beat. Rows come in order from the MAC array (``i_row``) or, for rows with no kept
    pair, as a zero-row token (``i_zero_row``), taken only when every earlier row has
    been sent.

    With ``buffers`` = 2 a computed row is copied into a row register of its own in
    one handshake, so the MAC array may finish the next row while this one is sent.
    With ``buffers`` = 1 there is no copy: the beats are taken from ``i_row``'s payload
    (held while ``valid`` and not ``ready``, as the MAC array's output register is), and
    ``i_row`` is taken with the row's last beat: ``head_dim x out_bits`` flip-flops
    fewer, and a row waits for the one before to have been sent. After a computed
    row's last beat the next one starts a cycle later (``on_last_row`` settles).

    Parameters
    ----------
    seq_max, head_dim, out_bits, axis_elems, out_lane_bits : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    buffers : int
        ``HDPConfig.out_row_buffers``: 2 (copy the row) or 1 (send from ``i_row``).

    Members
    -------
    m_axis_tdata/tvalid/tready/tlast : AXI4-Stream master
    start : In(1)
        A head begins (``seq_len`` valid from the next cycle).
    seq_len : In
    i_row : In(stream.Signature(out_row_layout))
    i_zero_row : In(stream.Signature(zero_row_layout))
    row_done : Out(1)
        A row was taken (either input; with one buffer a computed row is taken with its
        last beat).
    last_row_held : Out(1)
        The head's last row is being sent.
    done : Out(1)
        Every row of the head was sent (until the next ``start``).
    beat : Out(1)
        A beat was sent this cycle.
    """

    def __init__(self, *, seq_max: int, head_dim: int, out_bits: int, axis_elems: int,
                 out_lane_bits: int, buffers: int = 2):
        if buffers not in (1, 2):
            raise ValueError(f"buffers must be 1 or 2, not {buffers}")
        self.buffers = buffers
        self.seq_max, self.head_dim, self.out_bits = seq_max, head_dim, out_bits
        self.elems, self.lane = axis_elems, out_lane_bits
        self.bpr = head_dim // axis_elems
        seq_bits = W.index_bits(seq_max)
        members = axis_members("m_axis", width=axis_elems * out_lane_bits, flow=Out)
        members.update({
            "start": In(1), "seq_len": In(W.bits_for(seq_max)),
            "i_row": In(stream.Signature(out_row_layout(out_bits=out_bits, head_dim=head_dim))),
            "i_zero_row": In(stream.Signature(zero_row_layout(seq_bits=seq_bits))),
            "row_done": Out(1), "last_row_held": Out(1), "done": Out(1), "beat": Out(1),
        })
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, out_bits=config.out_bits,
                   axis_elems=config.axis_elems, out_lane_bits=config.out_lane_bits,
                   buffers=config.out_row_buffers)

    def elaborate(self, platform):
        m = Module()
        bpr, n = self.bpr, self.seq_len
        full = Signal()                   # a row is held: with one buffer, a zero row
        zero = Signal()                   # the held row is a zero row (`held` not loaded)
        beat_idx = Signal(range(max(2, bpr)))
        rows_sent = Signal(W.bits_for(self.seq_max))
        # Flags of their own, not decodes of beat_idx and rows_sent: beat_idx also
        # drives the beat multiplexer, and a decode shared with it put a hundred-load net
        # on the way to the handshake. on_last_row lags rows_sent by a cycle, which no
        # beat sees: after rows_sent moves, the next row starts a cycle later at best.
        last_beat = Signal(init=int(bpr == 1))
        on_last_row = Signal()
        m.d.sync += on_last_row.eq(rows_sent == n - 1)
        if self.buffers == 2:
            source = Signal(data.ArrayLayout(signed(self.out_bits), self.head_dim))  # held
            sending = full
            blank = zero
            m.d.comb += self.i_row.ready.eq(~full)
        else:
            source = self.i_row.payload.out
            after_row = Signal()          # the cycle after a row's last beat
            from_mac = Signal()
            m.d.comb += from_mac.eq(self.i_row.valid & ~full & ~after_row)
            sending = full | from_mac
            blank = full
            m.d.sync += after_row.eq(self.beat & last_beat)
            m.d.comb += self.i_row.ready.eq(from_mac & last_beat & self.m_axis_tready)
        sel = Signal(data.ArrayLayout(signed(self.out_bits), self.elems))
        m.d.comb += sel.eq(Value.cast(source).word_select(beat_idx, self.elems * self.out_bits)
                           if bpr > 1 else source)
        m.d.comb += [
            self.m_axis_tdata.eq(Mux(blank, 0, Cat(*(_sext(sel[j], self.lane)
                                                     for j in range(self.elems))))),
            self.m_axis_tvalid.eq(sending),
            self.m_axis_tlast.eq(last_beat & on_last_row),
            self.beat.eq(self.m_axis_tvalid & self.m_axis_tready),
            self.i_zero_row.ready.eq(~full & ~self.i_row.valid
                                     & (self.i_zero_row.payload.row == rows_sent)),
            self.row_done.eq((self.i_row.valid & self.i_row.ready)
                             | (self.i_zero_row.valid & self.i_zero_row.ready)),
            self.last_row_held.eq(sending & on_last_row),
            self.done.eq(rows_sent == n),
        ]
        with m.If(self.beat):
            with m.If(last_beat):
                m.d.sync += [full.eq(0), beat_idx.eq(0), rows_sent.eq(rows_sent + 1),
                             last_beat.eq(bpr == 1)]
            with m.Else():
                m.d.sync += [beat_idx.eq(beat_idx + 1), last_beat.eq(beat_idx == bpr - 2)]
        if self.buffers == 2:
            with m.If(self.i_row.valid & self.i_row.ready):
                m.d.sync += [source.eq(self.i_row.payload.out), zero.eq(0), full.eq(1),
                             beat_idx.eq(0), last_beat.eq(bpr == 1)]
        with m.If(self.i_zero_row.valid & self.i_zero_row.ready):
            # a flag, not a clear of the row register: the zero row's handshake stays off
            # its thousand resets
            m.d.sync += [zero.eq(1), full.eq(1), beat_idx.eq(0), last_beat.eq(bpr == 1)]
        with m.If(self.start):
            m.d.sync += rows_sent.eq(0)
        return m
