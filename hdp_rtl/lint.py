"""Verilator ``-Wall`` lint of the generated Verilog, with the waivers it needs.

Amaranth writes Verilog through Yosys' ``write_verilog``, whose idioms trip seven of
Verilator's ``-Wall`` style rules on every design, whatever the RTL says. Those rules
are waived here, once, for the generated files and for nothing else; every other
``-Wall`` rule (multiple drivers, latches, undriven signals, combinational loops,
blocking/non-blocking mix-ups, ...) stays on, and the tests demand zero warnings.
``hdp-rtl generate`` writes the same file next to the Verilog for users' own flows.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["WAIVERS", "WAIVER_FILE", "write_waivers", "lint_verilog"]

#: rule -> why Yosys' Verilog writer produces it (docs/verification.md repeats this).
WAIVERS = {
    "WIDTHEXPAND": "operands are zero/sign-extended implicitly; Amaranth fixed every width",
    "WIDTHTRUNC": "bit selects and shifts are written as a wide expression assigned to "
                  "a narrow net",
    "UNUSEDSIGNAL": "Yosys keeps its internal $-nets and the port aliases of every "
                    "struct field, used or not",
    "PROCASSINIT": "Amaranth gives every register its reset value as an initial value",
    "CASEINCOMPLETE": "switches are written as case without default after a default "
                      "assignment",
    "DECLFILENAME": "submodules are named after their hierarchy (top.unit) in one file",
    "ASCRANGE": "zero-width nets (the index of a one-entry table, e.g. one block column) "
                "are declared [-1:0]",
}

WAIVER_FILE = "verilator_waivers.vlt"


def waiver_text() -> str:
    lines = ["`verilator_config",
             "// Waivers for Amaranth/Yosys-generated Verilog (hdp_rtl/lint.py)."]
    for rule, why in WAIVERS.items():
        lines += [f"// {rule}: {why}", f'lint_off -rule {rule} -file "*"']
    return "\n".join(lines) + "\n"


def write_waivers(directory: str | Path) -> Path:
    path = Path(directory) / WAIVER_FILE
    path.write_text(waiver_text())
    return path


def lint_verilog(verilog: str | Path, top: str, verilator: str | None = None) -> list[str]:
    """``verilator --lint-only -Wall`` with the waivers; returns the warning lines."""
    verilog = Path(verilog)
    waivers = write_waivers(verilog.parent)
    exe = verilator or shutil.which("verilator") or "verilator"
    proc = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", top, str(waivers),
                           str(verilog)], capture_output=True, text=True)
    found = [ln for ln in proc.stderr.splitlines() if ln.startswith(("%Warning", "%Error"))]
    if proc.returncode != 0 and not found:
        found = [proc.stderr.strip() or f"verilator exited with {proc.returncode}"]
    return found
