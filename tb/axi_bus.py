"""The cocotb :class:`~hdp_rtl.host.HostBus`: the top level's AXI4-Lite and AXI4-Stream
ports driven by the cocotbext-axi models, with random idle and back-pressure, and every
wait bounded in clock cycles so that a hung core fails the test with where it hung."""
from __future__ import annotations

import contextlib
import logging
import math
import random

from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiResp, AxiStreamBus, AxiStreamSink,
                           AxiStreamSource)

from hdp_rtl.config import HDPConfig
from hdp_rtl.host import BusError, HDPDriver, head_cycle_bound

__all__ = ["AxiBus"]

#: Cycles any one AXI4-Lite access may take: the register file answers in a few.
AXIL_CYCLES = 200
#: The counters a timeout message shows: together they say which stage hung.
WHERE_COUNTERS = ("cycles_load", "cycles_int", "cycles_attn", "cycles_out", "words_in",
                  "words_out")


class BusTimeout(AssertionError):
    """A wait on the bus ran past its bound (fails the cocotb test with the message)."""


def _pause(rng: random.Random, prob: float):
    while True:
        yield prob > 0 and rng.random() < prob


class AxiBus:
    """The ports ``s_axil_*``, ``s_axis_*`` and ``m_axis_*`` of ``dut`` as a HostBus.

    Parameters
    ----------
    dut
        The top level (``clk``, ``rst`` and the ports above).
    config : HDPConfig
        Its configuration: sizes the bounds of the stream waits.
    idle, backpressure : float
        Probability of an idle cycle before each input beat, and of ``m_axis_tready``
        low in each cycle.
    seed : int
        Seeds both pause patterns.
    """

    def __init__(self, dut, config: HDPConfig, *, idle: float = 0.0, backpressure: float = 0.0,
                 seed: int = 0):
        if not 0 <= max(idle, backpressure) < 1:
            raise ValueError(f"idle and backpressure must be in [0, 1), not {idle}, {backpressure}")
        self.dut, self.config = dut, config
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
            model.log.setLevel(logging.WARNING)   # frames are logged whole at INFO: slow
        rng = random.Random(seed)
        self.source.set_pause_generator(_pause(random.Random(rng.random()), idle))
        self.sink.set_pause_generator(_pause(random.Random(rng.random()), backpressure))
        self.slowdown = 1 / (1 - max(idle, backpressure))   # a stalled stream stalls the core
        self._head = ("no head", config.seq_max)
        self._diagnosing = False
        self._period = None                    # clock period in simulator steps, once measured

    @contextlib.contextmanager
    def head(self, label: str, seq_len: int):
        """Within this block the waits are bounded for, and their messages name, the head
        ``label`` of ``seq_len`` tokens (outside: a head of ``seq_max`` tokens)."""
        outer, self._head = self._head, (label, seq_len)
        try:
            yield
        finally:
            self._head = outer

    @property
    def head_cycles(self) -> int:
        """The bound on the current head: :func:`~hdp_rtl.host.head_cycle_bound` scaled
        for the stream stalls."""
        return math.ceil(head_cycle_bound(self.config, self._head[1]) * self.slowdown)

    # ---- HostBus ------------------------------------------------------------------------
    async def write32(self, offset: int, value: int) -> None:
        resp = await self._bounded(self.axil.write(offset, value.to_bytes(4, "little")),
                                   AXIL_CYCLES, f"no AXI4-Lite write response (0x{offset:02X})")
        if resp.resp != AxiResp.OKAY:
            raise BusError(f"{resp.resp.name} to a write of 0x{value:08X} at 0x{offset:02X}")

    async def read32(self, offset: int) -> int:
        resp = await self._bounded(self.axil.read(offset, 4), AXIL_CYCLES,
                                   f"no AXI4-Lite read data (0x{offset:02X})")
        if resp.resp != AxiResp.OKAY:
            raise BusError(f"{resp.resp.name} to a read at 0x{offset:02X}")
        return int.from_bytes(resp.data, "little")

    async def send_packet(self, data: bytes) -> None:
        """Queue one packet on ``s_axis``; the core takes it while the next waits run."""
        await self._bounded(self.source.send(bytes(data)), self.head_cycles,
                            "the s_axis queue stayed full")

    async def recv_packet(self) -> bytes:
        frame = await self._bounded(self.sink.recv(), self.head_cycles,
                                    "no whole output packet (tlast)")
        return bytes(frame.tdata)

    # ---- what the testbenches add -------------------------------------------------------
    async def wait_cycles(self, n: int) -> None:
        await ClockCycles(self.dut.clk, n)

    async def reset(self, cycles: int = 3) -> None:
        """Hold ``rst`` for ``cycles`` cycles, dropping the queued input, then the output
        received so far."""
        self.dut.rst.value = 1
        self.source.clear()
        await self.wait_cycles(cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.sink.clear()

    async def drop_streams(self) -> None:
        """HostBus's optional method, for after an abort (the core idle): drop what is
        queued or being sent on ``s_axis`` (its ``tvalid`` falls) and the output received
        so far, a packet cut short without ``tlast`` included (the models' local resets
        restart them)."""
        self.source.clear()
        self.source.assert_reset()
        self.sink.assert_reset()
        self.sink.clear()
        await RisingEdge(self.dut.clk)

    def stray_output(self) -> list[str]:
        """What the output side holds beyond the packets received (empty when nothing)."""
        found = []
        if not self.sink.empty():
            found.append(f"{self.sink.count()} more output packets")
        if self.sink.active:
            found.append("output beats without tlast")
        if self.dut.m_axis_tvalid.value:
            found.append("m_axis_tvalid high")
        return found

    # ---- bounded waits ------------------------------------------------------------------
    async def _bounded(self, awaitable, cycles: int, what: str):
        """``await awaitable`` for at most ``cycles`` clock cycles, else raise BusTimeout.

        The bound is a Timer (one simulator callback), not a cycle count: counting edges
        in Python would wake cocotb every cycle of a long head.
        """
        if self._period is None:
            try:
                self._period = await with_timeout(self._measure_period(), 1, "ms")
            except SimTimeoutError:
                raise BusTimeout("clk has not ticked for 1 ms") from None
        try:
            return await with_timeout(awaitable, cycles * self._period, "step")
        except SimTimeoutError:
            where = "" if self._diagnosing else f" ({await self._where()})"
            raise BusTimeout(f"{what} for {cycles} cycles while running head "
                             f"{self._head[0]!r}{where}") from None

    async def _measure_period(self) -> int:
        await RisingEdge(self.dut.clk)
        start = get_sim_time("step")
        await RisingEdge(self.dut.clk)
        return get_sim_time("step") - start

    async def _where(self) -> str:
        """The core's status and stage counters, read over AXI4-Lite, and the streams."""
        self._diagnosing = True
        driver = HDPDriver(self, self.config)
        try:
            status = await driver.status()
            counters = await driver.counters()
        except BusTimeout:
            return "the registers do not answer either"
        finally:
            self._diagnosing = False
        stages = " ".join(f"{name}={getattr(counters, name)}" for name in WHERE_COUNTERS)
        sending = ", one being sent" if self.source.active else ""
        return f"status {status}; counters {stages}; s_axis {self.source.count()} packets queued{sending}"
