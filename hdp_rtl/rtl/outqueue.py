"""An output stream fed by a pipeline that never stalls: room reserved by credits.

A pipeline whose stages have no clock enable cannot wait for its output's ``ready``.
Instead, an operation that will produce an output is issued only while a place for
that output is free: :func:`credit_room` counts the places, :func:`output_queue` is
the places (an output register and a FIFO behind it).
"""
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.fifo import SyncFIFO

__all__ = ["credit_room", "output_queue"]


def credit_room(m, depth: int, *, take, give, name: str, state=None):
    """A registered "a place is free" flag for ``depth`` places.

    ``take`` claims a place (an operation issued), ``give`` returns one (an output
    handed on); a returned place is usable the next cycle. The flag is a flip-flop,
    computed without the counter's carry chain, so it can gate an issue stage.
    ``state`` (a dict, optional) receives the counter and the flag (``credits``,
    ``room``) for a formal harness's invariants.
    """
    credits = Signal(range(depth + 1), init=depth, name=f"{name}_credits")
    room = Signal(init=1, name=f"{name}_room")
    m.d.sync += [credits.eq(credits - take + give),
                 room.eq(give | ~((credits == 0) | ((credits == 1) & take)))]
    if state is not None:
        state.update(credits=credits, room=room)
    return room


def output_queue(m, out, new_valid, new_payload, depth: int, name: str, state=None):
    """Drive stream ``out`` from ``new_valid``/``new_payload``: a register, and a FIFO
    of ``depth - 1`` entries behind it (``depth >= 2``).

    A new entry goes straight to the register when nothing waits and the register is
    free (so the FIFO adds no latency), else to the FIFO. The caller guarantees room
    (:func:`credit_room` with the same ``depth``); ``out`` holds while not ready.
    Returns "anything queued" (the register or the FIFO holds an entry). ``state`` (a
    dict, optional) receives the register (``valid``, ``head``) and the FIFO (``fifo``)
    for a formal harness's invariants.
    """
    head_valid = Signal(name=f"{name}_valid")
    head = Signal.like(out.payload, name=f"{name}_head")
    m.d.comb += [out.valid.eq(head_valid), out.payload.eq(head)]
    head_free = ~head_valid | out.ready
    width = len(head.as_value())
    fifo = SyncFIFO(width=width, depth=depth - 1) if depth > 2 else _Slot(width)
    m.submodules[f"{name}_fifo"] = fifo
    waiting = fifo.r_rdy
    m.d.comb += [fifo.w_data.eq(new_payload.as_value()),
                 fifo.w_en.eq(new_valid & (waiting | ~head_free)),
                 fifo.r_en.eq(head_free)]
    with m.If(head_free):
        with m.If(waiting):
            m.d.sync += [head_valid.eq(1), head.eq(fifo.r_data)]
        with m.Elif(new_valid):
            m.d.sync += [head_valid.eq(1), head.eq(new_payload)]
        with m.Else():
            m.d.sync += head_valid.eq(0)
    if state is not None:
        state.update(valid=head_valid, head=head, fifo=fifo)
    return head_valid | waiting


class _Slot(Elaboratable):
    """A one-entry FIFO as a register and a flag, with SyncFIFO's read and write members
    (a one-deep SyncFIFO is a one-word memory, which synthesis turns into registers with
    a warning). Written only while empty: the credits see to it."""

    def __init__(self, width: int):
        self.w_data, self.w_en = Signal(width), Signal()
        self.r_data, self.r_rdy, self.r_en = Signal(width), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        with m.If(self.w_en):
            m.d.sync += [self.r_data.eq(self.w_data), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m
