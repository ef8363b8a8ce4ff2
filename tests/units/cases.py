"""The unit tests' cocotb runs: which (preset, simulator) pairs, and the run itself.

Each ``tests/units/test_<unit>.py`` runs ``tb/cocotb_<unit>.py`` on the unit's
generated Verilog (``hdp_<unit>.v``, as ``hdp-rtl generate`` writes it).
"""
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.generate import build_unit
from sim.runner import SIMULATORS, design_key, run_cocotb

__all__ = ["EDGE", "EDGE_AND_DEFAULT", "run_unit_verilog"]


def _params(preset: str, simulators) -> list:
    """``(preset, simulator)`` parameters with ids like ``edge-icarus``, marked ``sim``."""
    return [pytest.param(preset, s, id=f"{preset}-{s}", marks=pytest.mark.sim)
            for s in simulators]


#: ``edge`` on both simulators.
EDGE = _params("edge", SIMULATORS)
#: ... and ``default`` on Icarus: a Verilator build costs half a minute of compiling
#: (minutes for the default head scorer and MAC array), and tb/test_top.py's default run
#: on Verilator builds and checks the same unit Verilog inside the top.
EDGE_AND_DEFAULT = EDGE + _params("default", ["icarus"])


def run_unit_verilog(unit: str, preset: str, simulator: str, **overrides) -> None:
    """Generate unit ``unit`` of ``preset`` (with config fields ``overrides``) and run
    ``tb/cocotb_<unit>.py`` on it; the cocotb module reads the config from
    ``HDP_CONFIG``."""
    config = HDPConfig.preset(preset).replace(**overrides)
    name = f"{unit}-{preset}" + "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))
    run_cocotb(component=lambda: build_unit(unit, config), toplevel=f"hdp_{unit}",
               test_module=f"cocotb_{unit}", simulator=simulator, name=name,
               env={"HDP_CONFIG": config.to_dict()}, quick_build=True,
               key=design_key(unit, config))
