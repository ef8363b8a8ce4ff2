"""In-order, exactly-once delivery of stream beats: any beat followed, with no bound on
their number (:class:`Tracked`; for k-induction with invariants saying where it is)."""
from amaranth.hdl import Const, Signal

from .common import Assert, any_seq

__all__ = ["Tracked"]


class Tracked:
    """One input beat, any one, followed to the output with no bound on the number of
    beats (a symbolic beat index would need one): the solver picks it (``AnySeq``) when
    it is taken while none is followed; ``ahead`` counts the beats inside before it, and
    the beat sent when ``ahead`` is 0 must carry its ``in_data`` bits. As any beat can
    be the one, every beat leaves once, in order and unchanged.

    ``inside`` is the harness's count of beats inside (taken, not sent), at most
    ``max_inside``. For k-induction the harness states where the beat is inside the
    unit with :meth:`at`.
    """

    def __init__(self, m, *, fire_in, in_data, fire_out, out_data, inside, max_inside: int,
                 name: str):
        assert len(in_data) == len(out_data)
        pick = Signal(name=f"{name}_pick")
        m.d.comb += pick.eq(any_seq(1))
        self.live = live = Signal(name=f"{name}_live")
        self.ahead = ahead = Signal(range(max_inside + 1), name=f"{name}_ahead")
        self.data = data = Signal(len(in_data), name=f"{name}_data")
        self.name = name
        with m.If(fire_out & live):
            with m.If(ahead == 0):
                m.d.comb += Assert(out_data == data, f"{name}: the followed beat sent unchanged",
                                   src_loc_at=1)
                m.d.sync += live.eq(0)
            with m.Else():
                m.d.sync += ahead.eq(ahead - 1)
        with m.If(fire_in & pick & ~live):
            m.d.sync += [live.eq(1), ahead.eq(inside - fire_out), data.eq(in_data)]
        m.d.comb += Assert(~live | (ahead < inside), f"{name}: the followed beat is inside",
                           src_loc_at=1)

    def at(self, m, entries):
        """Invariant: ``entries``, the unit's places in order (the next to leave first),
        as ``(present, data)`` pairs; the followed beat is the ``ahead``-th present one."""
        pos = Const(0, 1)
        for present, value in entries:
            m.d.comb += Assert(~(self.live & present & (self.ahead == pos)) | (value == self.data),
                               f"{self.name}: inv: the followed beat in its place", src_loc_at=1)
            pos = pos + present
