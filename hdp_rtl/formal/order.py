"""In-order, exactly-once delivery of stream beats, with a symbolic beat index."""
from amaranth.hdl import Elaboratable, Signal

from .common import Assert, Assume, any_const

__all__ = ["InOrder", "BeatsHarness"]


class InOrder:
    """The solver picks one beat index ``k`` (``AnyConst``). The harness records the
    ``k``-th beat taken on the input and asserts that the ``k``-th beat sent on the
    output carries the same ``in_data``/``out_data`` bits. As ``k`` is arbitrary, this
    holds for every beat: nothing is dropped, duplicated or reordered (within
    ``max_beats`` beats, so a bounded check).
    """

    def __init__(self, m, *, fire_in, in_data, fire_out, out_data, max_beats: int, name: str):
        assert len(in_data) == len(out_data)
        k = Signal(range(max_beats), name=f"{name}_k")
        m.d.comb += k.eq(any_const(len(k)))
        m.d.comb += Assume(k < max_beats, f"{name}: index in range")
        n_in = Signal(range(max_beats + 1), name=f"{name}_n_in")
        n_out = Signal(range(max_beats + 1), name=f"{name}_n_out")
        got = Signal(name=f"{name}_got")
        data = Signal(len(in_data), name=f"{name}_data")
        with m.If(fire_in & (n_in < max_beats)):
            m.d.sync += n_in.eq(n_in + 1)
        with m.If(fire_out & (n_out < max_beats)):
            m.d.sync += n_out.eq(n_out + 1)
        with m.If(fire_in & (n_in == k)):
            m.d.sync += [got.eq(1), data.eq(in_data)]
        with m.If(fire_out & (n_out == k)):
            m.d.comb += [
                Assert(got, f"{name}: beat k sent after it was taken", src_loc_at=1),
                Assert(out_data == data, f"{name}: beat k sent unchanged", src_loc_at=1),
            ]
        m.d.comb += Assert(n_out <= n_in, f"{name}: no more beats out than in", src_loc_at=1)
        self.n_in, self.n_out, self.k = n_in, n_out, k


class BeatsHarness(Elaboratable):
    """Base of the harnesses whose ``beats`` variant tracks beats with :class:`InOrder`
    (within ``max_beats`` beats)."""

    def __init__(self, config, *, beats: bool = False, max_beats: int = 15):
        self.config = config
        self.beats = beats
        self.max_beats = max_beats
