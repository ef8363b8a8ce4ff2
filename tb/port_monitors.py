"""cocotb monitors of the top level's ports: the AXI4-Stream master rules
(:class:`AxisRules`) and a cycle-by-cycle log of one-bit ports (:class:`CycleLog`)."""
from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

__all__ = ["AxisRules", "CycleLog"]


class AxisRules:
    """Watches ``<prefix>_tvalid/_tready/_tdata/_tlast`` of ``dut`` in every cycle: once
    ``tvalid`` is high with ``tready`` low, the next cycle must have ``tvalid`` high and
    the same ``tdata`` and ``tlast`` (a beat offered is never withdrawn or changed).

    ``beats`` counts the transfers (``packets`` those with ``tlast``), ``cycle`` the
    clock edges seen; ``violations`` lists the broken rules (``check`` raises on any).
    Wakes cocotb every cycle: for short tests.
    """

    def __init__(self, dut, prefix: str):
        self.clk = dut.clk
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.prefix = prefix
        self.beats = self.packets = self.cycle = self.stalls = 0
        self.violations: list[str] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        held = None
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            valid = str(self.tvalid.value) == "1"
            ready = str(self.tready.value) == "1"
            beat = (str(self.tdata.value), str(self.tlast.value)) if valid else None
            if held is not None:
                if not valid:
                    self.violations.append(f"cycle {self.cycle}: {self.prefix} tvalid withdrawn")
                elif beat != held:
                    self.violations.append(f"cycle {self.cycle}: {self.prefix} beat changed "
                                           f"while stalled: {held} -> {beat}")
            held = beat if valid and not ready else None
            self.stalls += held is not None
            self.beats += valid and ready
            self.packets += valid and ready and beat[1] == "1"

    def check(self) -> None:
        assert not self.violations, "; ".join(self.violations[:5])

    def stop(self) -> None:
        self._task.cancel()


class CycleLog:
    """The values of one-bit ports ``names`` of ``dut`` at every clock edge from now
    until :meth:`stop` (``rows``: one dict a cycle; an X or Z reads 0)."""

    def __init__(self, dut, *names: str):
        self.clk = dut.clk
        self.ports = {name: getattr(dut, name) for name in names}
        self.rows: list[dict] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.rows.append({name: int(str(port.value) == "1")
                              for name, port in self.ports.items()})

    def stop(self) -> list[dict]:
        self._task.cancel()
        return self.rows

    def first(self, since: int, **values) -> int:
        """The index of the first row from ``since`` on with these values (-1: none)."""
        return next((i for i in range(since, len(self.rows))
                     if all(self.rows[i][k] == v for k, v in values.items())), -1)
