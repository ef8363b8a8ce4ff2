"""Verilator ``-Wall`` lint of the generated Verilog, and the rules it waives.

Amaranth writes Verilog through Yosys' ``write_verilog``, whose idioms trip seven of
Verilator's ``-Wall`` style rules on every design, whatever the RTL says. Those rules
are waived once, for the generated files and for nothing else: :mod:`hdp_rtl.verilog`
writes them into each file as ``lint_off`` metacomments between ``lint_save`` and
``lint_restore``. Every other ``-Wall`` rule (multiple drivers, latches, undriven
signals, combinational loops, blocking/non-blocking mix-ups, ...) stays on, and the
tests demand zero warnings.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["WAIVERS", "lint_verilog"]

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


def lint_verilog(sources: str | Path | list, top: str, verilator: str | None = None) -> list[str]:
    """Plain ``verilator --lint-only -Wall`` (the files carry their own waivers).

    Parameters
    ----------
    sources : path or list of paths
        Verilog files, read in this order.
    top : str
        The top module.
    verilator : str, optional
        The executable; the first ``verilator`` on ``PATH`` by default.

    Returns
    -------
    list of str
        The warning and error lines; empty when the lint is clean.
    """
    files = [str(s) for s in (sources if isinstance(sources, list) else [sources])]
    exe = verilator or shutil.which("verilator") or "verilator"
    proc = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", top, *files],
                          capture_output=True, text=True)
    found = [ln for ln in proc.stderr.splitlines() if ln.startswith(("%Warning", "%Error"))]
    if proc.returncode != 0 and not found:
        found = [proc.stderr.strip() or f"verilator exited with {proc.returncode}"]
    return found
