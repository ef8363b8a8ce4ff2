"""cocotb drivers and monitors for ``amaranth.lib.stream`` ports of generated Verilog.

An Amaranth stream member ``i_x`` becomes the Verilog ports ``i_x__valid``,
``i_x__ready`` and ``i_x__payload``; payloads are packed with the same
``lib.data`` layout the RTL uses (see :mod:`sim.packing`). Sources insert random idle
cycles and sinks random back-pressure, so every test also checks that a stall at any
cycle changes nothing in the result.
"""
from __future__ import annotations

import os
import random
from collections import deque

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import Event, RisingEdge, Timer
from cocotb.types import LogicArray

from sim.packing import pack, unpack

__all__ = ["StreamSource", "StreamSink", "AxisPort", "start_clock_and_reset", "past_time_zero",
           "env_json"]


def env_json(name: str, default=None):
    """A JSON value the pytest side passed through :func:`sim.runner.run_cocotb`."""
    import json
    text = os.environ.get(name)
    return default if text is None else json.loads(text)


async def past_time_zero():
    """Wait 1 ns: Icarus can drop values written to inputs at time zero, before its
    processes run. Call it before creating any driver."""
    await Timer(1, "ns")


async def start_clock_and_reset(dut, cycles: int = 3):
    """Start a 10 ns clock on ``dut.clk`` and hold ``dut.rst`` for ``cycles`` cycles.

    Create the drivers first: Icarus starts every input at X, and a register whose next
    value depends on an X input during reset comes out of reset X.
    """
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class StreamSource:
    """Drives ``<prefix>__valid/__payload``; holds them while ``__ready`` is low.

    ``idle`` is the probability of an idle cycle before each beat.
    """

    def __init__(self, dut, prefix: str, layout, *, idle: float = 0.0, seed: int = 0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload", None)
        self.layout = layout
        self.idle = idle
        self.rng = random.Random(seed)
        self.queue: deque = deque()
        self.queued = self.sent = 0
        self._idle_event = Event()
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, item) -> None:
        self.queue.append(item)
        self.queued += 1

    def send_all(self, items) -> None:
        for item in items:
            self.send_nowait(item)

    async def wait_idle(self) -> None:
        """Wait until every item queued so far was transferred (counted, not read from
        ``valid``: a value written in this time step reads back old)."""
        while self.sent < self.queued:
            await RisingEdge(self.clk)

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            if int(self.valid.value) and int(self.ready.value):
                self.sent += 1
                self.valid.value = 0
            if not int(self.valid.value) and self.queue:
                if self.idle and self.rng.random() < self.idle:
                    continue
                item = self.queue.popleft()
                if self.payload is not None:
                    self.payload.value = pack(self.layout, item)
                self.valid.value = 1


class StreamSink:
    """Drives ``<prefix>__ready`` (low with probability ``backpressure``) and collects
    every accepted payload, unpacked with ``layout``, in order."""

    def __init__(self, dut, prefix: str, layout, *, backpressure: float = 0.0, seed: int = 1):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload", None)
        self.layout = layout
        self.backpressure = backpressure
        self.rng = random.Random(seed)
        self.items: deque = deque()
        self._event = Event()
        self.ready.value = 0
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
            # (str: a valid that is X in the first cycles, before the testbench's first
            # writes land, is not a transfer; int() of X raises)
            if str(self.valid.value) == "1" and int(self.ready.value):
                bits = self.payload.value.to_unsigned() if self.payload is not None else 0
                self.items.append(unpack(self.layout, bits))
                self._event.set()
            self.ready.value = 0 if self.backpressure and self.rng.random() < self.backpressure else 1


class _Joined:
    """Handles read and written as one bit vector, the first in the lowest bits."""

    def __init__(self, *handles):
        self.handles = handles

    @property
    def value(self) -> LogicArray:
        bits, pos = 0, 0
        for handle in self.handles:
            value = handle.value                  # a LogicArray, or a Logic for one bit
            bits |= (value.to_unsigned() if isinstance(value, LogicArray) else int(value)) << pos
            pos += len(handle)
        return LogicArray.from_unsigned(bits, pos)

    @value.setter
    def value(self, bits: int) -> None:
        for handle in self.handles:
            handle.value = bits & ((1 << len(handle)) - 1)
            bits >>= len(handle)


class AxisPort:
    """The AXI4-Stream port ``<prefix>_tdata/_tvalid/_tready/_tlast`` of ``dut`` as a
    stream named ``axis`` whose payload ``layout`` has the fields ``tdata`` and ``tlast``::

        port = AxisPort(dut, "s_axis")
        source = StreamSource(port, "axis", port.layout, idle=0.3)
    """

    def __init__(self, dut, prefix: str):
        tdata = getattr(dut, f"{prefix}_tdata")
        self.clk = dut.clk
        self.axis__valid = getattr(dut, f"{prefix}_tvalid")
        self.axis__ready = getattr(dut, f"{prefix}_tready")
        self.axis__payload = _Joined(tdata, getattr(dut, f"{prefix}_tlast"))
        self.layout = data.StructLayout({"tdata": len(tdata), "tlast": 1})
