"""End-to-end regression of the generated top level on Icarus and Verilator."""
import pytest

from hdp_rtl.config import HDPConfig
from sim.runner import SIMULATORS, run_cocotb

PRESETS = ("edge", "default")


def _top(config):
    from hdp_rtl.rtl.top import HDPCoprocessor
    return HDPCoprocessor(config)


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("preset", PRESETS)
def test_top_against_golden(preset, simulator):
    config = HDPConfig.preset(preset)
    # seq_max heads of the default preset take ~1M cycles: Verilator only.
    full = preset == "edge" or simulator == "verilator"
    run_cocotb(component=_top(config), toplevel="hdp_coprocessor", test_module="cocotb_top",
               simulator=simulator, name=f"top-{preset}",
               env={"HDP_CONFIG": config.to_dict(), "HDP_STALL": 0.3, "HDP_FULL_LENGTH": full})
