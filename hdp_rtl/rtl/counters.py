"""Performance counters (the ``COUNTERS`` registers of :mod:`hdp_rtl.regmap`)."""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..regmap import COUNTERS

__all__ = ["PerfCounters", "events_layout"]


def events_layout(*, kept_bits: int) -> data.StructLayout:
    """What happened this cycle, as the units report it to the counters."""
    return data.StructLayout({
        "busy": 1, "load": 1, "int": 1, "attn": 1, "out": 1,   # sequencer stage
        "word_in": 1, "word_out": 1,                             # stream beats taken
        "int_pair": 1,              # the integer pass finished a pair
        "block": 1,                 # a valid block's importance left the scorer
        "blocks_kept": kept_bits,   # blocks kept in a mask row the selector sent
        "score_op": 1, "pv_op": 1,  # the MAC array took a pair / a probability
        "mac_busy": 1,              # the MAC array's lanes worked this cycle
        "head_pruned": 1,           # the head was just pruned: nothing of it is kept
    })


class PerfCounters(wiring.Component):
    """``counter_bits``-wide counters of one head's work, cleared by ``clear`` (an accepted
    start), except ``heads_pruned``, which only reset clears. They count modulo
    ``2**counter_bits`` (``blocks_pruned`` too: the difference of two such counts).

    ``clear`` and ``events`` are registered on the way in (``LATENCY`` cycles): the
    counters are statistics, and the registers keep the units' handshakes off the
    counters' adders (a probability's handshake into ``pv_macs`` was the whole core's
    deepest path).

    Parameters
    ----------
    head_dim : int
        Element multiply-accumulates per pair.
    block_col_count : int
        Blocks in a mask row (the width of ``events.blocks_kept`` is enough for it).
    counter_bits : int
        Width of every counter (``HDPConfig.counter_bits``). The values are this narrow:
        the register file zero-extends them, so no logic is spent on the high bits.
    channel_count : bool
        ``HDPConfig.channel_pruning``: ``int_macs`` and ``score_macs`` add ``channels``
        (the head's kept channels) a pair instead of ``head_dim``.
    enabled : bool
        ``HDPConfig.perf_counters``: with ``False`` no counter is built and ``values``
        are 0 (synthesis then removes the register file's counter reads and every
        event's logic that only the counters used).

    Attributes
    ----------
    LATENCY : int
        Cycles from an event (or ``clear``) to the values that include it.

    Members
    -------
    clear : In(1)
    events : In(events_layout)
    values : Out(ArrayLayout(counter_bits, len(COUNTERS)))
        In ``COUNTERS`` order; ``blocks_pruned`` is the valid blocks less the kept ones.
    channels : In(range(head_dim + 1))
        With ``channel_count``: the head's kept channels, stable during a head.
    """

    #: Cycles from an event (or ``clear``) to the values that include it.
    LATENCY = 1

    def __init__(self, *, head_dim: int, block_col_count: int, counter_bits: int,
                 enabled: bool = True, channel_count: bool = False):
        self.head_dim = head_dim
        self.channel_count = channel_count
        self.enabled = enabled
        self.kept_bits = block_col_count.bit_length()
        self.counter_bits = counter_bits
        super().__init__({
            "clear": In(1),
            "events": In(events_layout(kept_bits=self.kept_bits)),
            "values": Out(data.ArrayLayout(counter_bits, len(COUNTERS))),
            **({"channels": In(range(head_dim + 1), init=head_dim)} if channel_count else {}),
        })

    @classmethod
    def from_config(cls, config):
        return cls(head_dim=config.head_dim, block_col_count=config.block_col_count,
                   counter_bits=config.counter_bits, enabled=config.perf_counters,
                   channel_count=config.channel_pruning)

    def elaborate(self, platform):
        m = Module()
        if not self.enabled:
            m.d.comb += self.values.eq(0)
            return m
        d = self.head_dim
        kept = self.channels if self.channel_count else d    # Q/K channels a pair
        ev = Signal.like(self.events, name="events_q")
        clear = Signal(name="clear_q")
        m.d.sync += [ev.eq(self.events), clear.eq(self.clear)]
        w = self.counter_bits
        count = {name: Signal(w, name=name) for name in COUNTERS if name != "blocks_pruned"}
        blocks_valid = Signal(w)
        increments = {
            "cycles_total": ev.busy, "cycles_load": ev.load, "cycles_int": ev.int,
            "cycles_attn": ev.attn, "cycles_out": ev.out,
            "words_in": ev.word_in, "words_out": ev.word_out,
            "int_macs": Mux(ev.int_pair, kept, 0), "score_macs": Mux(ev.score_op, kept, 0),
            "pv_macs": Mux(ev.pv_op, d, 0), "mac_busy": ev.mac_busy,
            "blocks_kept": ev.blocks_kept, "heads_pruned": ev.head_pruned,
        }
        with m.If(clear):
            m.d.sync += [c.eq(0) for name, c in count.items() if name != "heads_pruned"]
            m.d.sync += blocks_valid.eq(0)
        with m.Else():
            for name, inc in increments.items():
                m.d.sync += count[name].eq(count[name] + inc)
            m.d.sync += blocks_valid.eq(blocks_valid + ev.block)
            with m.If(ev.head_pruned):         # a pruned head keeps no block
                m.d.sync += count["blocks_kept"].eq(0)
        for i, name in enumerate(COUNTERS):
            value = blocks_valid - count["blocks_kept"] if name == "blocks_pruned" else count[name]
            m.d.comb += self.values[i].eq(value)
        return m
