"""Shared pytest plumbing for the unit-level cocotb tests: presets x simulators."""
import pytest

from hdp_rtl.config import HDPConfig
from sim.runner import SIMULATORS, run_cocotb

PRESETS = ("edge", "default")
PARAMS = [pytest.param(p, s, id=f"{p}-{s}", marks=pytest.mark.sim)
          for p in PRESETS for s in SIMULATORS]


def run_unit(unit_cls, *, name: str, preset: str, simulator: str, module: str):
    """Build ``unit_cls.from_config(preset)`` and run cocotb ``module`` against it."""
    config = HDPConfig.preset(preset)
    run_cocotb(component=unit_cls.from_config(config), toplevel=f"hdp_{name}",
               test_module=module, simulator=simulator, name=f"{name}-{preset}",
               env={"HDP_CONFIG": config.to_dict()})
