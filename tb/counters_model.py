"""What the performance counters must read after each cycle of events, as documented in
``hdp_rtl.regmap.COUNTERS`` and ``PerfCounters``; shared by the amaranth.sim test and the
cocotb module of the counters."""
from __future__ import annotations

import random
from collections import deque

from hdp_rtl.regmap import COUNTERS
from hdp_rtl.rtl.counters import events_layout

__all__ = ["CountersModel", "random_events", "NO_EVENTS"]

#: A cycle without any event.
NO_EVENTS = {name: 0 for name, _ in events_layout(kept_bits=1)}

#: counter -> (event, multiplied by head_dim); blocks_pruned is derived.
INCREMENTS = {
    "cycles_total": ("busy", False), "cycles_load": ("load", False),
    "cycles_int": ("int", False), "cycles_attn": ("attn", False), "cycles_out": ("out", False),
    "heads_pruned": ("head_pruned", False), "blocks_kept": ("blocks_kept", False),
    "int_macs": ("int_pair", True), "score_macs": ("score_op", True),
    "pv_macs": ("pv_op", True), "mac_busy": ("mac_busy", False),
    "words_in": ("word_in", False), "words_out": ("word_out", False),
}


class CountersModel:
    """The counters of a head of ``head_dim`` elements a pair, whose values include an
    event ``latency`` cycles after it (``PerfCounters.LATENCY``), each counting modulo
    ``2**counter_bits`` (``HDPConfig.counter_bits``)."""

    def __init__(self, head_dim: int, counter_bits: int, latency: int = 0):
        self.head_dim, self.counter_bits = head_dim, counter_bits
        self.count = dict.fromkeys(INCREMENTS, 0)
        self.blocks_valid = 0
        self._pending = deque([(NO_EVENTS, False)] * latency)

    def step(self, events: dict, clear: bool = False) -> None:
        """One cycle: ``clear`` (an accepted start, no event in its cycle) zeroes every
        counter but ``heads_pruned``."""
        self._pending.append((events, clear))
        self._apply(*self._pending.popleft())

    def _apply(self, events: dict, clear: bool) -> None:
        if clear:
            self.count = {k: v if k == "heads_pruned" else 0 for k, v in self.count.items()}
            self.blocks_valid = 0
            return
        for name, (event, per_element) in INCREMENTS.items():
            self.count[name] += events[event] * (self.head_dim if per_element else 1)
        self.blocks_valid += events["block"]
        if events["head_pruned"]:              # a pruned head keeps no block
            self.count["blocks_kept"] = 0

    def values(self) -> list[int]:
        """Every counter in ``COUNTERS`` order, modulo ``2**counter_bits``, as the
        registers read them (zero-extended)."""
        values = {**self.count, "blocks_pruned": self.blocks_valid - self.count["blocks_kept"]}
        return [values[name] % (1 << self.counter_bits) for name in COUNTERS]


def random_events(rng: random.Random, block_col_count: int) -> dict:
    """One cycle's events, each flag set with probability one half (a pruned head rarely)."""
    events = {name: int(rng.random() < 0.5) for name in NO_EVENTS}
    events["blocks_kept"] = rng.randint(0, block_col_count)
    events["head_pruned"] = int(rng.random() < 0.05)
    return events
