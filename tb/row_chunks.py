"""cocotb models of the two ends of the MAC array -> serializer row link.

Rows cross it a chunk of ``mac_lanes`` outputs a cycle (``o_chunk`` / ``i_chunk``,
``last`` on a row's last chunk), without ``ready``: the MAC array sends a row only on
a credit, one of ``out_row_buffers``, which the consumer gives back with a one-cycle
pulse (``i_row_free`` / ``row_free``) once it has sent the row.
"""
from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, RisingEdge

from hdp_rtl.rtl.layouts import layouts_for
from sim.packing import pack, unpack

__all__ = ["RowChunkSource", "RowChunkSink"]


class RowChunkSource:
    """Drives ``<prefix>__valid/__payload`` as the MAC array does: each queued row (a
    list of ``head_dim`` outputs) on a credit, its chunks in order with random idle
    cycles (probability ``idle``) between them; counts ``free`` pulses as credits."""

    def __init__(self, dut, prefix: str, free, config, *, idle: float = 0.0, seed: int = 0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.free = free
        self.layout = layouts_for(config)["out_chunk"]
        self.lanes = config.mac_lanes
        self.credits = config.out_row_buffers
        self.idle = idle
        self.rng = random.Random(seed)
        self.queue: deque = deque()       # chunks still to send, rows in order
        self.rows_queued = self.rows_sent = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, row) -> None:
        chunks = [row[i:i + self.lanes] for i in range(0, len(row), self.lanes)]
        self.queue.extend({"out": c, "last": int(i == len(chunks) - 1)}
                          for i, c in enumerate(chunks))
        self.rows_queued += 1

    async def wait_idle(self) -> None:
        """Wait until every row queued so far was sent."""
        while self.rows_sent < self.rows_queued:
            await RisingEdge(self.clk)

    async def _run(self):
        in_row = False
        while True:
            await RisingEdge(self.clk)
            if str(self.free.value) == "1":
                self.credits += 1
            self.valid.value = 0
            if not self.queue or (self.idle and self.rng.random() < self.idle):
                continue
            if not in_row:
                if not self.credits:
                    continue
                self.credits -= 1
                in_row = True
            chunk = self.queue.popleft()
            self.payload.value = pack(self.layout, chunk)
            self.valid.value = 1
            if chunk["last"]:
                in_row = False
                self.rows_sent += 1


class RowChunkSink:
    """Takes ``<prefix>__valid/__payload`` chunks as the serializer does, gathers them
    into rows (lists of ``head_dim`` outputs, in order), and frees each row with a pulse
    on ``free`` after holding it a random while (``hold``: the probability a held row
    stays held another cycle; 1.0 holds every row until it is lowered).

    Checks that the producer keeps to its credits: never more than ``out_row_buffers``
    rows held, a row's chunks contiguous in ``last``.
    """

    def __init__(self, dut, prefix: str, free, config, *, hold: float = 0.0, seed: int = 1):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.free = free
        self.layout = layouts_for(config)["out_chunk"]
        self.chunks = config.head_dim // config.mac_lanes
        self.places = config.out_row_buffers
        self.hold = hold
        self.rng = random.Random(seed)
        self.items: deque = deque()      # rows received, for recv()
        self.held = 0                    # rows received and not yet freed
        self._row: list = []
        self._event = Event()
        self.free.value = 0
        self._task = cocotb.start_soon(self._run())

    def __len__(self):
        return len(self.items)

    async def recv(self):
        while not self.items:
            self._event.clear()
            await self._event.wait()
        return self.items.popleft()

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            if str(self.free.value) == "1":
                self.held -= 1
            if str(self.valid.value) == "1":
                chunk = unpack(self.layout, self.payload.value.to_unsigned())
                self._row.extend(chunk["out"])
                at_end = len(self._row) == self.chunks * len(chunk["out"])
                assert bool(chunk["last"]) == at_end, "last on the wrong chunk of a row"
                if at_end:
                    self.held += 1
                    assert self.held <= self.places, \
                        f"{self.held} rows sent to {self.places} places: credits broken"
                    self.items.append(self._row)
                    self._row = []
                    self._event.set()
            release = self.held > 0 and not (self.hold and self.rng.random() < self.hold)
            self.free.value = int(release)
