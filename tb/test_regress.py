"""The random-config regression's share of ``make test``: three seeds on Verilator.

``make regress`` (sim/regress.py) runs many more configs and heads.
"""
import pytest

from sim.random_configs import random_config
from sim.runner import run_cocotb

SEEDS = (1, 2, 3)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_random_config(seed):
    from hdp_rtl.rtl.top import HDPCoprocessor
    run_cocotb(component=HDPCoprocessor(random_config(seed)), toplevel="hdp_coprocessor",
               test_module="cocotb_regress", simulator="verilator", name=f"regress-{seed}",
               env={"HDP_SEED": seed, "HDP_HEADS": 12}, quick_build=True)
