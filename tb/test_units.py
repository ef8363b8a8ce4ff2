"""cocotb tests of every unit's generated Verilog, on Icarus and Verilator, two presets."""
import pytest

from hdp_rtl.rtl.block_selector import BlockSelector
from hdp_rtl.rtl.head_scorer import HeadScorer
from hdp_rtl.rtl.mac_array import MacArray
from hdp_rtl.rtl.softmax import Softmax
from tb.unit_cases import PARAMS, run_unit


@pytest.mark.parametrize("preset,simulator", PARAMS)
def test_block_selector(preset, simulator):
    run_unit(BlockSelector, name="block_selector", preset=preset, simulator=simulator,
             module="cocotb_block_selector")


@pytest.mark.parametrize("preset,simulator", PARAMS)
def test_head_scorer(preset, simulator):
    run_unit(HeadScorer, name="head_scorer", preset=preset, simulator=simulator,
             module="cocotb_head_scorer")


@pytest.mark.parametrize("preset,simulator", PARAMS)
def test_softmax(preset, simulator):
    run_unit(Softmax, name="softmax", preset=preset, simulator=simulator,
             module="cocotb_softmax")


@pytest.mark.parametrize("preset,simulator", PARAMS)
def test_mac_array(preset, simulator):
    run_unit(MacArray, name="mac_array", preset=preset, simulator=simulator,
             module="cocotb_mac_array")
