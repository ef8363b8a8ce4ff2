"""Simulation speed of the top level on Icarus and Verilator, from the last test run.

``python -m sim.sim_speed [BUILD_DIR]`` reads the cocotb results of the top-level
regression (``build/sim/top-<preset>/<simulator>/results.xml``, written by ``make
test``) and prints simulated clock cycles per wall-clock second for each simulator:
the same cocotb tests and host models on both, so the ratio is the simulators'.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

CLOCK_NS = 10          # tb/streams.py: start_clock_and_reset runs a 10 ns clock


def speed(results: Path) -> tuple[float, float]:
    """(simulated cycles, wall seconds) over every test of one results.xml."""
    cycles = seconds = 0.0
    for case in ET.parse(results).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "sim_time_duration" in props:
            cycles += float(props["sim_time_duration"]) / CLOCK_NS
            seconds += float(case.get("time", 0))
    return cycles, seconds


def main(argv=None) -> int:
    root = Path((argv or sys.argv[1:] or ["build/sim"])[0])
    print("| top level | simulator | cycles simulated | wall s | cycles/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for top in sorted(root.glob("top-*")):
        for sim in ("icarus", "verilator"):
            xml = top / sim / "results.xml"
            if xml.exists():
                cycles, secs = speed(xml)
                print(f"| {top.name} | {sim} | {cycles:.0f} | {secs:.1f} | {cycles / max(secs, 1e-9):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
