"""Building blocks of the formal harnesses: free inputs, stream rules, beat counters.

Every harness is an Elaboratable named ``top`` that holds the unit under test as
``dut``, drives each of the unit's inputs from ``AnySeq`` / ``AnyConst`` (solver-chosen
values) and states properties with ``Assert`` (what the unit guarantees), ``Assume``
(what its environment must guarantee) and ``Cover`` (what must be reachable).

The ``sync`` domain is defined by the harness with its reset tied low: every register
starts at its init value, which is the value reset gives it, so step 0 of a proof is
the state just after reset. All properties are combinational (``m.d.comb``), i.e.
checked in every step; "the previous cycle" is a register written in ``sync``, as
Amaranth 0.5 has no ``Past``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from amaranth.hdl import (Assert, Assume, ClockDomain, ClockSignal, Cover, Module, ResetSignal,
                          Signal, Value)
from amaranth.hdl._ast import AnyConst, AnySeq   # no public name for these in Amaranth 0.5

__all__ = ["Check", "harness_module", "any_seq", "any_const", "drive_any", "stream_rules",
           "packet_beats", "UpDown", "reset_midway_flag", "elaborate_submodule",
           "open_submodule", "memory_words",
           "open_fifo", "Assert", "Assume", "Cover", "AnyConst", "AnySeq"]


@dataclass(frozen=True)
class Check:
    """One formal check: a harness and how SymbiYosys runs it.

    ``tasks`` maps an sby task (``prove``, ``bmc`` or ``cover``) to its depth. ``quick``
    checks are the ones ``tests/test_formal.py`` runs.
    """
    name: str
    build: Callable[[], object]          # returns the harness Elaboratable
    tasks: dict = field(default_factory=dict)
    quick: bool = True
    description: str = ""
    timeout: float = 900                 # seconds per sby task
    memory_map: bool = True              # map memories to registers before the proof
    engine: str = "smtbmc yices"         # the sby engine (its solver on PATH)
    flatten: bool = False                # flatten the design (identical cells merged)


def harness_module(*, free_reset: bool = False) -> Module:
    """A module with a ``sync`` domain whose reset is held low (see the module docstring).

    With ``free_reset`` the solver drives the reset in every cycle instead: the unit and
    the harness's own registers (its counters, the contract's state) are reset together,
    so the properties speak of the head since the last reset, and a proof holds after a
    reset at any cycle, mid-head too. Registers without a reset (``reset_less``, memory
    words) keep what the interrupted head left in them.
    """
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.d.comb += cd.rst.eq(any_seq(1) if free_reset else 0)
    return m


def reset_midway_flag(m: Module, midway: Value, name: str = "reset_midway") -> Signal:
    """A flag, not itself reset, raised in the cycle after a reset with ``midway`` true:
    for the covers of the ``free_reset`` harnesses (a head finished after a reset in the
    middle of the one before). It adds the reset-less domain ``mon``: once a harness."""
    m.domains.mon = ClockDomain("mon", reset_less=True)
    m.d.comb += ClockSignal("mon").eq(ClockSignal("sync"))
    flag = Signal(name=name)
    with m.If(ResetSignal("sync") & midway):
        m.d.mon += flag.eq(1)
    return flag


def any_seq(shape) -> Value:
    """A value the solver picks freely in every cycle."""
    return AnySeq(shape)


def any_const(shape) -> Value:
    """A value the solver picks once and holds."""
    return AnyConst(shape)


def drive_any(m: Module, *signals) -> None:
    """Drive each of ``signals`` (unit inputs) from a fresh ``AnySeq``."""
    for sig in signals:
        v = Value.cast(sig)
        m.d.comb += v.eq(AnySeq(len(v)))


def stream_rules(m: Module, valid, ready, payload, *, output: bool, name: str,
                 enable=1) -> Signal:
    """The valid/ready rules of one stream, asserted for an output and assumed for an
    input: once ``valid`` is high with ``ready`` low, the next cycle has ``valid`` high
    and the same ``payload``. Returns the handshake (``valid & ready``) signal.

    ``enable`` (a Value) can restrict the check, e.g. to cycles out of reset.
    """
    payload = Value.cast(payload)
    kind = Assert if output else Assume
    prev_valid = Signal(name=f"{name}_prev_valid")
    prev_ready = Signal(name=f"{name}_prev_ready")
    prev_payload = Signal(len(payload), name=f"{name}_prev_payload")
    m.d.sync += [prev_valid.eq(valid), prev_ready.eq(ready), prev_payload.eq(payload)]
    stalled = prev_valid & ~prev_ready & enable
    with m.If(stalled):
        m.d.comb += [
            # src_loc_at=1: a failure names the line of the harness that called us
            kind(valid, f"{name}: valid held while stalled", src_loc_at=1),
            kind(payload == prev_payload, f"{name}: payload held while stalled", src_loc_at=1),
        ]
    fire = Signal(name=f"{name}_fire")
    m.d.comb += fire.eq(valid & ready)
    return fire


def packet_beats(m: Module, fire, tvalid, tlast, *, started, beats, max_beats: int) -> Signal:
    """The output packet of one head: counts the handshakes ``fire`` and asserts, while
    ``tvalid`` is high, no beat before ``started``, none after the ``beats``-th, and
    ``tlast`` exactly on the last. Returns the count (beats sent)."""
    out_beat = Signal(range(max_beats + 2), name="out_beat")
    with m.If(fire):
        m.d.sync += out_beat.eq(out_beat + 1)
    with m.If(tvalid):
        m.d.comb += [
            Assert(started, "no output before the head starts", src_loc_at=1),
            Assert(out_beat < beats, "no output beat after the head's last", src_loc_at=1),
            Assert(tlast == (out_beat == beats - 1), "tlast exactly on the head's last beat",
                   src_loc_at=1),
        ]
    return out_beat


class UpDown:
    """A small up/down counter of the harness (e.g. beats in minus beats out).

    ``max`` bounds the values the harness expects; the counter is wide enough to hold
    one more so that an overflow is seen by an assertion rather than wrapping.
    """

    def __init__(self, m: Module, *, up, down, max: int, name: str):
        self.value = Signal(range(max + 2), name=name)
        self.max = max
        m.d.sync += self.value.eq(self.value + up - down)
        self.up, self.down = up, down


def elaborate_submodule(module: Module, name: str, platform=None) -> Module:
    """Elaborate the submodule ``name`` of ``module`` (a unit the harness elaborated
    itself) in place, so that the harness can read the state it records when elaborated
    (its ``state`` dict): returns its elaborated module."""
    obj, src_loc = module._named_submodules[name]
    sub = obj.elaborate(platform)
    obj._MustUse__silence = True         # (elaborated here, not by Fragment.get)
    module._named_submodules[name] = (sub, src_loc)
    return sub


def open_submodule(module: Module, name: str, platform=None):
    """Elaborate the submodule ``name`` of ``module`` in place
    (:func:`elaborate_submodule`), so that the harness can read the state it keeps in
    local signals: returns ``(sub, signals)``, its elaborated module and the signals it
    assigns, by name."""
    sub = elaborate_submodule(module, name, platform)
    sub._flush()                         # (an If chain still open holds its statements)
    found = {sig.name: sig for stmts in sub._statements.values() for stmt in stmts
             for sig in stmt._lhs_signals()}
    return sub, found


def memory_words(module: Module, mem) -> list:
    """Every word of ``mem`` (an ``amaranth.lib.memory.Memory`` of a unit, not yet
    elaborated), each through a harness read port of its own driven in ``module``."""
    words = []
    for i in range(mem.depth):
        port = mem.read_port(domain="comb")
        module.d.comb += port.addr.eq(i)
        words.append(port.data)
    return words


def open_fifo(module: Module, name: str, platform=None):
    """The state of the ``SyncFIFO`` submodule ``name`` of ``module`` (see
    :func:`open_submodule`): ``(produce, consume, words)``, its write and read pointers
    and its memory words."""
    sub, found = open_submodule(module, name, platform)
    words = memory_words(sub, sub._named_submodules["storage"][0])
    return found["produce"], found["consume"], words
