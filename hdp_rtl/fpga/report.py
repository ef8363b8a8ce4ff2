"""Parsing of the yosys and nextpnr outputs of a board build into one report."""
from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["parse_yosys_stat", "parse_nextpnr_log", "parse_nextpnr_report", "summarise",
           "render_markdown"]

_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_FMAX_RE = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")
_CRIT_HDR_RE = re.compile(r"Critical path report for clock '([^']+)' \(([^)]*)\):")


def parse_yosys_stat(path: str | Path) -> dict:
    """Cell counts by type of the synthesised design, from ``stat -json`` output (the
    file may carry log lines before the JSON object)."""
    text = Path(path).read_text()
    start = text.find("{")
    data = json.loads(text[start:])
    design = data.get("design")
    if design and "num_cells_by_type" in design:
        cells = dict(design["num_cells_by_type"])
    else:
        cells = {}
        for mod in data.get("modules", {}).values():
            for cell, n in mod.get("num_cells_by_type", {}).items():
                cells[cell] = cells.get(cell, 0) + n
    return {k.lstrip("\\"): int(v) for k, v in sorted(cells.items())}


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation (the last "Device utilisation" table), the last Fmax line of each
    clock, and the text of the last critical-path report of each clock."""
    util, fmax, crit = {}, {}, {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "Device utilisation:" in line:
            util = {}
            i += 1
            while i < len(lines) and (m := _UTIL_RE.match(lines[i].replace("\t", " "))):
                util[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
                i += 1
            continue
        if m := _FMAX_RE.search(line):
            fmax[m.group(1)] = {"achieved_mhz": float(m.group(2)), "pass": m.group(3) == "PASS",
                                "target_mhz": float(m.group(4))}
        if m := _CRIT_HDR_RE.search(line):
            block = [line]
            i += 1
            while i < len(lines) and lines[i].startswith("Info:") and lines[i].strip() != "Info:":
                block.append(lines[i])
                i += 1
            crit[m.group(1)] = "\n".join(block)
            continue
        i += 1
    return {"utilisation": util, "fmax": fmax, "critical_path_text": crit}


def parse_nextpnr_report(path: str | Path) -> dict:
    """nextpnr's ``--report`` JSON: utilisation, Fmax and the critical paths as net lists."""
    data = json.loads(Path(path).read_text())
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in data.get("utilization", {}).items()}
    fmax = {clk: {"achieved_mhz": round(float(v["achieved"]), 2),
                  "target_mhz": round(float(v["constraint"]), 2),
                  "pass": float(v["achieved"]) >= float(v["constraint"])}
            for clk, v in data.get("fmax", {}).items()}
    paths = []
    for cp in data.get("critical_paths", []):
        steps = cp.get("path", [])
        total = sum(float(s.get("delay", 0.0)) for s in steps)
        logic = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "logic")
        routing = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "routing")
        nets = [s["net"] for s in steps if s.get("type") == "routing" and s.get("net")]
        cells = []
        for s in steps:
            for end in ("from", "to"):
                cell = (s.get(end) or {}).get("cell")
                if cell and (not cells or cells[-1] != cell):
                    cells.append(cell)
        paths.append({"from": cp.get("from"), "to": cp.get("to"), "delay_ns": round(total, 3),
                      "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
                      "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
                      "nets": nets, "cells": cells})
    return {"utilisation": util, "fmax": fmax, "critical_paths": paths}


# ---- the summary numbers ------------------------------------------------------------

def _count(cells: dict, *prefixes) -> int:
    return sum(n for name, n in cells.items() if any(name.startswith(p) for p in prefixes))


def summarise(family: str, cells: dict, util: dict) -> dict:
    """The headline numbers: LUT, FF, DSP, BRAM (+ SPRAM, LC on iCE40), each
    ``{"used", "available"}`` where the device total is known."""
    def u(name):
        v = util.get(name)
        return dict(v) if v else None

    if family == "ecp5":
        out = {
            "LUT": u("TRELLIS_COMB") or {"used": _count(cells, "LUT4") + 2 * _count(cells, "CCU2C")},
            "FF": u("TRELLIS_FF") or {"used": _count(cells, "TRELLIS_FF")},
            "DSP": u("MULT18X18D") or {"used": _count(cells, "MULT18X18D")},
            "BRAM": u("DP16KD") or {"used": _count(cells, "DP16KD")},
        }
        out["LUT_detail"] = {"LUT4": _count(cells, "LUT4"), "CCU2C": _count(cells, "CCU2C"),
                             "TRELLIS_DPR16X4": _count(cells, "TRELLIS_DPR16X4"),
                             "PFUMX": _count(cells, "PFUMX"), "L6MUX21": _count(cells, "L6MUX21"),
                             "ALU54B": _count(cells, "ALU54B")}
    else:
        lc = u("ICESTORM_LC") or {"used": None}
        out = {
            "LC": lc,
            "LUT": {"used": _count(cells, "SB_LUT4"), "available": lc.get("available")},
            "FF": {"used": _count(cells, "SB_DFF"), "available": lc.get("available")},
            "DSP": u("ICESTORM_DSP") or {"used": _count(cells, "SB_MAC16")},
            "BRAM": u("ICESTORM_RAM") or {"used": _count(cells, "SB_RAM40_4K")},
            "SPRAM": u("ICESTORM_SPRAM") or {"used": _count(cells, "SB_SPRAM256KA")},
        }
        out["LUT_detail"] = {"SB_LUT4": _count(cells, "SB_LUT4"),
                             "SB_CARRY": _count(cells, "SB_CARRY")}
    return out


def throughput(config: dict, fmax_mhz: float | None, dsp_used: int | None) -> dict:
    """Peak multiply-accumulate rates of ``config`` at ``fmax_mhz``: the MAC array's
    ``mac_lanes`` B x B MACs a cycle (scores and P x V) and the integer pass's
    ``int_lanes`` I x I MACs a cycle, in GMAC/s, and the MAC array's MACs a cycle per DSP
    the whole design uses (the integer lanes are in LUTs)."""
    mac, ints = config.get("mac_lanes"), config.get("int_lanes")
    out = {"mac_lanes": mac, "int_lanes": ints,
           "macs_per_cycle_per_dsp": round(mac / dsp_used, 3) if mac and dsp_used else None}
    if fmax_mhz:
        out["attention_gmacs"] = round(mac * fmax_mhz / 1000, 3) if mac else None
        out["integer_gmacs"] = round(ints * fmax_mhz / 1000, 3) if ints else None
    return out


def _pct(v: dict) -> str:
    used, avail = v.get("used"), v.get("available")
    if used is None:
        return "n/a"
    if avail:
        return f"{used} / {avail} ({100.0 * used / avail:.1f} %)"
    return str(used)


def render_markdown(rep: dict) -> str:
    s = rep["summary"]
    lines = [f"# FPGA build: {rep['board']} ({rep['device']}), preset `{rep['preset']}`", ""]
    lines.append(f"- date: {rep['date']}")
    lines.append(f"- command: `{rep['command']}`")
    lines.append(f"- status: **{rep['status']}**")
    lines.append(f"- clock: {rep['clock']['target_mhz']} MHz target (PLL from "
                 f"{rep['clock']['board_mhz']} MHz)")
    tools = ", ".join(f"{k} {v}" for k, v in rep["tools"].items() if v)
    lines.append(f"- tools: {tools}")
    t = rep["times_s"]
    stages = ", ".join(f"{label} {t[key]} s" for key, label in (
        ("elaborate", "elaboration"), ("yosys", "synthesis"), ("nextpnr", "place and route"),
        ("pack", "bitstream")) if t.get(key) is not None)
    lines.append(f"- build time: {t.get('total')} s ({stages})")
    lines += ["", "| resource | used |", "| --- | --- |"]
    for key in ("LC", "LUT", "FF", "DSP", "BRAM", "SPRAM"):
        if key in s["resources"]:
            lines.append(f"| {key} | {_pct(s['resources'][key])} |")
    lines.append("")
    for clk, f in s["fmax"].items():
        verdict = "PASS" if f["pass"] else "FAIL"
        lines.append(f"Fmax `{clk}`: **{f['achieved_mhz']:.2f} MHz** ({verdict} at "
                     f"{f['target_mhz']:.2f} MHz)")
    tp = s.get("throughput")
    if tp:
        at = (f"{tp['attention_gmacs']} GMAC/s attention ({tp['mac_lanes']} MACs a cycle), "
              f"{tp['integer_gmacs']} GMAC/s integer pass ({tp['int_lanes']} a cycle) at "
              f"Fmax; " if tp.get("attention_gmacs") is not None else "no Fmax; ")
        lines += ["", f"Throughput: {at}{tp['macs_per_cycle_per_dsp']} MAC-array MACs a "
                      f"cycle per DSP used"]
    if s.get("fits") is False:
        lines += ["", f"Does not fit: {s.get('overflow')}"]
    by_unit = rep.get("breakdown")
    if by_unit and "error" not in by_unit:
        kinds = sorted({k for v in by_unit.values() for k in v})
        lines += ["", "## Resources by unit (synth -noflatten, approximate)", "",
                  "| module | " + " | ".join(kinds) + " |",
                  "| --- |" + " --- |" * len(kinds)]
        for mod, counts in by_unit.items():
            lines.append(f"| `{mod}` | " + " | ".join(str(counts.get(k, 0)) for k in kinds) + " |")
    ltp = rep.get("longest_path")
    if ltp and "error" not in ltp:
        lines += ["", f"## Deepest combinational path (yosys ltp, generic gates): "
                      f"{ltp['length']} gates", "", " -> ".join(f"`{n}`" for n in ltp["signals"])]
    if rep.get("error"):
        lines += ["", "Error:", "", "```", rep["error"], "```"]
    for cp in rep.get("critical_paths", [])[:3]:
        lines += ["", f"## Critical path {cp['from']} -> {cp['to']}", "",
                  f"{cp['delay_ns']} ns: {cp['logic_levels']} logic levels "
                  f"({cp['logic_ns']} ns logic, {cp['routing_ns']} ns routing). Nets:", ""]
        lines += [f"- `{n}`" for n in cp["nets"]]
    for clk, text in rep.get("critical_path_text", {}).items():
        lines += ["", f"## nextpnr critical path report, clock `{clk}`", "", "```", text, "```"]
    lines.append("")
    return "\n".join(lines)
