"""Input unpacker: AXI4-Stream beats of Q, K and V to row-buffer words for the row store."""
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from ..regmap import CHANNEL_DROP_BITS, INPUT_ORDER, TENSOR_CODE, ErrorCode
from .rowmem import row_layout

__all__ = ["InputUnpacker", "word_write_layout", "axis_members", "kept_channels_of"]


def axis_members(prefix: str, *, width: int, flow) -> dict:
    """The members of an AXI4-Stream port named ``<prefix>_t*``; ``flow`` is ``In`` for a
    slave (data in) and ``Out`` for a master."""
    back = Out if flow is In else In
    return {f"{prefix}_tdata": flow(width), f"{prefix}_tvalid": flow(1),
            f"{prefix}_tready": back(1), f"{prefix}_tlast": flow(1)}


def kept_channels_of(drop, head_dim: int):
    """The channels kept (``0 .. head_dim``) for a ``channel_drop`` register value
    ``drop`` (:func:`hdp_rtl.regmap.kept_channels`), as an expression."""
    log_d = head_dim.bit_length() - 1
    none = drop[log_d:].any()            # channel_drop >= head_dim
    return Mux(none, 0, head_dim - drop[:log_d]) if log_d else ~none


def word_write_layout(*, seq_bits: int, words: int, word_elems: int,
                      data_bits: int) -> data.StructLayout:
    """Unpacker -> row store: word ``word`` of row ``row`` of tensor ``tensor``
    (``regmap.TENSOR_CODE``: 0 Q, 1 K, 2 V), a row being ``words`` words of
    ``word_elems`` elements (``rowmem``)."""
    return data.StructLayout({"tensor": 2, "row": seq_bits, "word": range(words),
                              "data": row_layout(head_dim=word_elems, data_bits=data_bits)})


class InputUnpacker(wiring.Component):
    """Takes ``3 x seq_len`` rows of ``beats_per_row`` beats after each ``start``: K, Q,
    then V (``regmap.INPUT_ORDER``). Element ``j`` of a beat is in lane ``j`` (``in_lane_bits`` wide, lane 0
    lowest), its low ``B`` bits the element; a lane that is not the sign extension of its
    element raises error 8, and ``tlast`` anywhere but on each tensor's last beat (or
    missing there) error 9. Neither stops the head: beats are counted as they come.

    A row goes to the row store as ``head_dim / word_elems`` words (``rowmem``); a word
    is offered on ``o_word`` in the cycle its last beat arrives (no added latency), and
    that beat is taken only when ``o_word`` is.

    With ``channel_mask`` (``HDPConfig.channel_pruning``) the elements of Q's and K's
    channels ``head_dim - channel_drop`` and up are stored as 0 (the channel mask of the scores: a zero
    element of Q makes every product ``q*k`` of its channel 0, in the integer pass and
    in the MAC array; the unbiased selection score's ``(2*qi + 1)*ki`` needs K's to be
    0 too, and K takes part in nothing else, so K's are zeroed in every build). Which
    lanes of a beat are zeroed is a register, set for the next beat from the beat's
    place in its row; a head's first beat (which can come the cycle after ``start``)
    takes its lanes from a register loaded every cycle from ``channel_drop``. So the
    zeroing is one LUT on the data, after the port (a compare there put a carry chain
    between the port and the far block RAM: the routed ``default``'s critical path).

    Parameters
    ----------
    seq_max, head_dim, data_bits, axis_elems, in_lane_bits : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    word_elems : int
        ``HDPConfig.row_word_elems``, a multiple of ``axis_elems``.
    channel_mask : bool
        Build ``channel_drop`` and the zeroing of Q's and K's dropped channels.

    Members
    -------
    s_axis_tdata/tvalid/tready/tlast : AXI4-Stream slave
        ``tready`` is high only while a head's input is expected.
    start : In(1)
        A head begins (``seq_len`` is valid from the next cycle).
    seq_len : In
    o_word : Out(stream.Signature(word_write_layout))
    int_ready : Out(1)
        ``o_word`` carries the last word of Q's first row this cycle: once it is taken,
        all of K and Q's first row are in, and the integer pass may start (while the rest of Q, then V,
        arrive).
    q_rows : Out(range(seq_max + 1))
        Rows of Q taken since ``start`` (a register): the integer pass reads Q row ``r``
        only once ``q_rows > r``.
    last_row : Out(1)
        ``o_word`` carries V's last word this cycle (the head's input ends when it is taken).
    beat : Out(1)
        A beat was taken this cycle.
    error : Out(4)
        An :class:`~hdp_rtl.regmap.ErrorCode` raised this cycle (0: none).
    channel_drop : In(CHANNEL_DROP_BITS)
        With ``channel_mask``: the ``channel_drop`` register (Q's and K's channels
        ``head_dim - channel_drop`` and up are dropped: :func:`kept_channels_of`),
        stable from the cycle of ``start`` to the end of the head's input.
    """

    def __init__(self, *, seq_max: int, head_dim: int, data_bits: int, axis_elems: int,
                 in_lane_bits: int, word_elems: int | None = None,
                 channel_mask: bool = False):
        self.seq_max, self.head_dim, self.B = seq_max, head_dim, data_bits
        self.channel_mask = channel_mask
        self.elems, self.lane = axis_elems, in_lane_bits
        self.word_elems = word_elems = word_elems or head_dim
        if word_elems % axis_elems or head_dim % word_elems:
            raise ValueError(f"word_elems must be a multiple of axis_elems ({axis_elems}) "
                             f"and divide head_dim ({head_dim}), not {word_elems}")
        self.bpw = word_elems // axis_elems          # beats per word
        self.words = head_dim // word_elems          # words per row
        self.seq_bits = W.index_bits(seq_max)
        members = axis_members("s_axis", width=axis_elems * in_lane_bits, flow=In)
        members.update({
            "start": In(1), "seq_len": In(W.bits_for(seq_max)),
            "o_word": Out(stream.Signature(word_write_layout(
                seq_bits=self.seq_bits, words=self.words, word_elems=word_elems,
                data_bits=data_bits))),
            "int_ready": Out(1), "q_rows": Out(range(seq_max + 1)),
            "last_row": Out(1), "beat": Out(1), "error": Out(4),
        })
        if channel_mask:
            members["channel_drop"] = In(CHANNEL_DROP_BITS)
        super().__init__(members)

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, data_bits=config.data_bits,
                   axis_elems=config.axis_elems, in_lane_bits=config.in_lane_bits,
                   word_elems=config.row_word_elems, channel_mask=config.channel_pruning)

    def elaborate(self, platform):
        m = Module()
        B, lane, bpw, words, n = self.B, self.lane, self.bpw, self.words, self.seq_len
        active = Signal()
        phase = Signal(2)                 # the index in INPUT_ORDER of the tensor arriving
        tensor = Signal(2)                # its TENSOR_CODE
        assert INPUT_ORDER[:2] == ("k", "q"), "int_ready and q_rows assume K, then Q"
        q_code, v_code = TENSOR_CODE["q"], TENSOR_CODE[INPUT_ORDER[-1]]
        row = Signal(self.seq_bits)
        beat_idx = Signal(range(max(2, bpw)))         # the beat in its word
        word_idx = Signal(range(max(2, words)))       # the word in its row
        held = Signal(row_layout(head_dim=self.word_elems, data_bits=B))   # earlier beats

        elems = Cat(*(self.s_axis_tdata[j * lane:j * lane + B] for j in range(self.elems)))
        if self.channel_mask:
            elems = self._zero_dropped(m, elems, TENSOR_CODE["v"], tensor)
        lane_ok = Signal()
        m.d.comb += lane_ok.eq(1)
        if lane > B:
            for j in range(self.elems):
                word = self.s_axis_tdata[j * lane:(j + 1) * lane]
                with m.If(word[B - 1:] != Mux(word[B - 1], (1 << (lane - B + 1)) - 1, 0)):
                    m.d.comb += lane_ok.eq(0)
        chunk = self.elems * B
        word_end = beat_idx == bpw - 1
        last_beat = word_end & (word_idx == words - 1)     # of the row
        last_of_tensor = last_beat & (row == n - 1)

        out = self.o_word
        m.d.comb += [
            out.payload.tensor.eq(tensor), out.payload.row.eq(row),
            out.payload.word.eq(word_idx if words > 1 else 0),
            out.payload.data.eq(Cat(held.as_value()[:(bpw - 1) * chunk], elems)
                                if bpw > 1 else elems),
            out.valid.eq(active & self.s_axis_tvalid & word_end),
            self.s_axis_tready.eq(active & (~word_end | out.ready)),
            self.int_ready.eq(out.valid & last_beat & (tensor == q_code) & (row == 0)),
            self.last_row.eq(out.valid & last_of_tensor & (tensor == v_code)),
            self.beat.eq(self.s_axis_tvalid & self.s_axis_tready),
        ]
        first = TENSOR_CODE[INPUT_ORDER[0]]
        with m.If(self.start):
            m.d.sync += [active.eq(1), phase.eq(0), tensor.eq(first), row.eq(0), beat_idx.eq(0),
                         word_idx.eq(0), self.q_rows.eq(0)]
        with m.Elif(self.beat):
            with m.If(~lane_ok):
                m.d.comb += self.error.eq(ErrorCode.INPUT_LANE)
            with m.Elif(self.s_axis_tlast != last_of_tensor):
                m.d.comb += self.error.eq(ErrorCode.INPUT_TLAST)
            if bpw > 1:
                m.d.sync += held.as_value().word_select(beat_idx, chunk).eq(elems)
            with m.If(word_end):
                m.d.sync += [beat_idx.eq(0), word_idx.eq(word_idx + 1)]
            with m.Else():
                m.d.sync += beat_idx.eq(beat_idx + 1)
            with m.If(last_beat):
                m.d.sync += [word_idx.eq(0), row.eq(row + 1)]
                with m.If(tensor == q_code):
                    m.d.sync += self.q_rows.eq(self.q_rows + 1)
                with m.If(row == n - 1):
                    m.d.sync += [row.eq(0), phase.eq(phase + 1)]
                    for i, name in enumerate(INPUT_ORDER[1:]):
                        with m.If(phase == i):
                            m.d.sync += tensor.eq(TENSOR_CODE[name])
                    with m.If(phase == len(INPUT_ORDER) - 1):
                        m.d.sync += active.eq(0)
        return m

    def _zero_dropped(self, m, elems, v_code, tensor):
        """``elems`` with the lanes of Q's and K's dropped channels zeroed. ``kept`` and
        ``lanes_first`` (a head's first beat's lanes to zero) are registered from
        ``channel_drop`` every cycle, ready the cycle after ``start``; ``zero`` holds
        the next beats' lanes, loaded when a beat is taken from the beat's place in the
        row ``pos`` (a register). Only registers and ``tensor`` reach the data's LUT."""
        E, B, bpr, d = self.elems, self.B, self.head_dim // self.elems, self.head_dim
        drop = self.channel_drop
        log_d = d.bit_length() - 1
        pos = Signal(range(max(2, bpr)), name="beat_in_row")
        kept = Signal(range(d + 1), name="qk_kept")
        m.d.sync += kept.eq(kept_channels_of(drop, d))
        # lane j of the first beat is dropped when j >= d - drop: drop >= d - j, a
        # compare with a constant (no subtraction on the way)
        none = drop[log_d:].any()
        first_lanes = Signal(E, name="lanes_first")
        m.d.sync += first_lanes.eq(Cat(*(none | (drop[:log_d] >= d - j) if log_d else none
                                         for j in range(E))))
        zero = Signal(E, name="lanes_dropped")
        zero_next, zero_first = Signal(E), Signal(E)
        for j in range(E):
            m.d.comb += [zero_next[j].eq((pos + 1) * E + j >= kept),
                         zero_first[j].eq(j >= kept)]
        last = (pos == bpr - 1) if bpr > 1 else 1
        first = Signal(init=1, name="first_beat")    # no beat taken yet in this head
        with m.If(self.start):
            m.d.sync += [pos.eq(0), first.eq(1)]
        with m.Elif(self.beat):
            m.d.sync += [pos.eq(Mux(last, 0, pos + 1)), first.eq(0),
                         zero.eq(Mux(last, zero_first, zero_next))]
        lanes = Mux(first, first_lanes, zero)
        is_qk = tensor != v_code           # (V is never masked: P x V uses every channel)
        return Cat(*(Mux(lanes[j] & is_qk, 0, elems[j * B:(j + 1) * B]) for j in range(E)))
