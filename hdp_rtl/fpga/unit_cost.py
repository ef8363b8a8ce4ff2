"""``python -m hdp_rtl.fpga.unit_cost``: what each unit costs, synthesised on its own.

For every unit of a preset (``hdp_rtl.generate.UNITS``), yosys synthesises the unit
alone twice: for ECP5 (``synth_ecp5``: DSPs, LUT4s, carry cells, flip-flops, block
RAM, and ``ltp -noff``, the deepest path in cells) and technology-independent
(``synth`` then ``abc -g`` to simple gates: a gate count and ``stat -tech cmos``'s
transistor estimate, the ASIC-style area without a PDK). Prints a markdown table and
writes it with the raw figures to ``OUT/unit_cost-<preset>.{md,json}``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import PRESETS, HDPConfig
from ..generate import UNITS, build_unit
from ..rtl.arith import lut_multiply

__all__ = ["STANDALONE_UNITS", "build_any_unit", "unit_cost", "main"]

#: Units built and verified on their own but not (yet) part of the core, so not in
#: ``hdp_rtl.generate.UNITS`` (not generated with it): name -> (module, class), each
#: with ``from_config(config)``. Costed here when named (``--unit``; the default run
#: costs the core's units) and timed by ``hdp_rtl.fpga.timing`` with the others.
STANDALONE_UNITS = {
    "bitserial_scorer": ("hdp_rtl.rtl.bitserial_scorer", "BitSerialScorer"),
}


def build_any_unit(name: str, config: HDPConfig):
    """Unit ``name`` of ``config``: one of ``UNITS`` or of :data:`STANDALONE_UNITS`."""
    if name in STANDALONE_UNITS:
        module, cls = STANDALONE_UNITS[name]
        return getattr(importlib.import_module(module), cls).from_config(config)
    return build_unit(name, config)

ECP5_CELLS = {"MULT18X18D": "dsp", "LUT4": "lut4", "CCU2C": "carry", "TRELLIS_FF": "ff",
              "DP16KD": "ebr", "PFUMX": "mux", "L6MUX21": "mux", "TRELLIS_DPR16X4": "lutram"}
GENERIC = "synth -top top -flatten; abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX; opt_clean"
#: ``synth_ecp5`` with ABC's LUT mapping instead of ABC9's: yosys 0.70's ``synth_ecp5``
#: has no working ``-noabc9``, and YoWASP's ABC9 dies on some units (``counters``).
ECP5_ABC = ("synth_ecp5 -top top -run :map_luts; techmap -map +/lattice/latches_map.v; "
            "abc -lut 4:7 -dress; clean; synth_ecp5 -top top -run map_cells:")


def _yosys(script: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "hdp_rtl.fpga.yosys", "-q", "-p", script],
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed in {cwd}: {proc.stderr[-2000:]}")
    return proc.stdout


def _cells(stat_json: Path) -> dict:
    design = json.loads(stat_json.read_text())["design"]
    return design.get("num_cells_by_type", {}), design


def unit_cost(name: str, config: HDPConfig, workdir: Path) -> dict:
    """Synthesise unit ``name`` of ``config`` in ``workdir``; returns its figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "unit.il").write_text(rtlil.convert(build_any_unit(name, config), name="top"))
    start = time.perf_counter()
    # yosys runs sandboxed (WebAssembly): relative paths inside workdir only
    ecp5_script = ("read_rtlil unit.il; {}; tee -q -o ecp5.json stat -json; "
                   "tee -q -o ltp.txt ltp -noff")
    try:
        _yosys(ecp5_script.format("synth_ecp5 -top top"), workdir)
        mapper = "abc9"
    except RuntimeError:      # YoWASP's ABC9 dies on some netlists: map with ABC
        _yosys(ecp5_script.format(ECP5_ABC), workdir)
        mapper = "abc"
    ecp5, _ = _cells(workdir / "ecp5.json")
    ltp = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)",
                     (workdir / "ltp.txt").read_text())
    _yosys(f"read_rtlil unit.il; {GENERIC}; tee -q -o generic.json stat -json; "
           "tee -q -o cmos.txt stat -tech cmos", workdir)
    generic, _ = _cells(workdir / "generic.json")
    cmos = re.findall(r"Estimated number of transistors:\s+(\d+)", (workdir / "cmos.txt").read_text())
    out = {kind: 0 for kind in dict.fromkeys(ECP5_CELLS.values())}
    for cell, count in ecp5.items():
        if cell in ECP5_CELLS:
            out[ECP5_CELLS[cell]] += count
    out.update({
        "depth_cells": int(ltp[-1]) if ltp else None,
        "gates": sum(v for k, v in generic.items() if k.startswith("$_") and "DFF" not in k),
        "transistors": int(cmos[-1]) if cmos else None,
        "mapper": mapper, "seconds": round(time.perf_counter() - start, 1),
    })
    return out


class _Product(wiring.Component):
    """Registered operands -> one product -> a registered result: one lane's multiplier."""

    def __init__(self, a_shape, b_shape, *, in_luts: bool):
        self.in_luts = in_luts
        a, b = Shape.cast(a_shape), Shape.cast(b_shape)
        out = signed(a.width + b.width) if (a.signed or b.signed) else a.width + b.width
        super().__init__({"a": In(a), "b": In(b), "p": Out(out)})

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal.like(self.a), Signal.like(self.b)
        m.d.sync += [ra.eq(self.a), rb.eq(self.b),
                     self.p.eq(lut_multiply(ra, rb) if self.in_luts else ra * rb)]
        return m


def lane_costs(config: HDPConfig, workdir: Path) -> dict:
    """Each of a lane's candidate products alone, between registers: its ECP5 cells
    (``synth_ecp5``) and its generic simple-gate count (``synth; abc -g``, registers
    excluded): ``I x I`` and the approximation's ``F x F`` in LUTs (as built) and with
    ``*`` (a DSP), the whole ``B x B`` product, and an ``I x F`` cross term."""
    I, F = config.int_bits, config.frac_bits
    B = I + F
    cases = {"integer lane I x I, LUTs": (signed(I), signed(I), True),
             "integer lane I x I, *": (signed(I), signed(I), False),
             "approximation F x F, LUTs": (F, F, True),
             "whole B x B, *": (signed(B), signed(B), False),
             "cross term I x F, LUTs": (signed(I), F, True)}
    out = {}
    for i, (label, (a, b, luts)) in enumerate(cases.items()):
        if not F and "F" in label.split(",")[0]:
            continue
        d = workdir / f"lane{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "unit.il").write_text(rtlil.convert(_Product(a, b, in_luts=luts), name="top"))
        _yosys("read_rtlil unit.il; synth_ecp5 -top top; tee -q -o ecp5.json stat -json", d)
        cells, _ = _cells(d / "ecp5.json")
        out[label] = {c: n for c, n in cells.items() if c in ECP5_CELLS and c != "TRELLIS_FF"}
        _yosys(f"read_rtlil unit.il; {GENERIC}; tee -q -o generic.json stat -json", d)
        generic, _ = _cells(d / "generic.json")
        out[label]["gates"] = sum(v for k, v in generic.items()
                                  if k.startswith("$_") and "DFF" not in k)
    return out


def table(preset: str, config: HDPConfig, rows: dict) -> str:
    lines = [f"Each unit of `{preset}` synthesised alone (`python -m hdp_rtl.fpga.unit_cost "
             f"--preset {preset}`). ECP5: `synth_ecp5`; depth: `ltp -noff` (cells on the "
             f"deepest path, carry cells included); gates and transistors: generic `synth`, "
             f"`abc -g` simple gates, `stat -tech cmos`.", "",
             "| unit | DSP (MULT18X18D) | LUT4 | carry (CCU2C) | FF | EBR | depth | "
             "gates | transistors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['dsp']} | {r['lut4']} | {r['carry']} | {r['ff']} | "
                     f"{r['ebr']} | {r['depth_cells']} | {r['gates']} | {r['transistors']} |")
    per_lane = []
    for name, lanes in (("mac_array", config.mac_lanes), ("head_scorer", config.int_lanes)):
        if name in rows:
            r = rows[name]
            per_lane.append(f"- `{name}`: {lanes} lanes, {r['dsp'] / lanes:.2f} DSP and "
                            f"{r['lut4'] / lanes:.0f} LUT4 a lane (the unit's whole cost "
                            f"divided by its lanes)")
    return "\n".join(lines + [""] + per_lane) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hdp_rtl.fpga.unit_cost", description=__doc__)
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--unit", action="append", choices=sorted([*UNITS, *STANDALONE_UNITS]),
                   help="only this unit (repeatable); default: every unit of the core "
                        "(not STANDALONE_UNITS)")
    p.add_argument("--lanes", action="store_true",
                   help="only the cost of one lane's small products (seconds)")
    p.add_argument("-o", "--out", default="build/unit_cost", metavar="DIR")
    args = p.parse_args(argv)
    config = HDPConfig.preset(args.preset)
    out = Path(args.out)
    if args.lanes:
        for label, cells in lane_costs(config, out / args.preset / "lanes").items():
            print(f"{label}: " + ", ".join(f"{n} {c}" for c, n in sorted(cells.items())))
        return 0
    rows = {}
    for name in args.unit or UNITS:
        try:
            rows[name] = unit_cost(name, config, out / args.preset / name)
        except RuntimeError as err:     # report the others; say which one failed
            print(f"{name}: {err}", file=sys.stderr, flush=True)
            continue
        print(f"{name}: {rows[name]}", flush=True)
    text = table(args.preset, config, rows)
    (out / f"unit_cost-{args.preset}.md").write_text(text)
    (out / f"unit_cost-{args.preset}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
