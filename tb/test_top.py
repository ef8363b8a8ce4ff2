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


def _minilm_configs():
    """The configs of the stored MiniLM heads that no preset above covers."""
    from golden.vectors import load_minilm_heads
    covered = [HDPConfig.preset(p) for p in PRESETS]
    configs = {}
    for h in load_minilm_heads():
        if h.config not in covered:
            configs.setdefault("-".join(f"{k}{v}" for k, v in sorted(h.overrides.items())) or
                               h.preset, h.config)
    return configs


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", sorted(_minilm_configs()))
def test_minilm_heads_on_their_own_configs(name, simulator):
    config = _minilm_configs()[name]
    run_cocotb(component=_top(config), toplevel="hdp_coprocessor", test_module="cocotb_top",
               simulator=simulator, name=f"top-minilm-{name}", testcase="minilm_heads",
               env={"HDP_CONFIG": config.to_dict(), "HDP_STALL": 0.3})
