"""End-to-end regression of the generated top level (tb/cocotb_top.py): every case on
Verilator for both presets and the MiniLM heads' own configs, a smoke test on Icarus
(edge preset), the error codes on both simulators, the abort and input timeout on
Icarus (Verilator runs them with every case), SpAtten's reports on Icarus (edge with
them; Verilator runs them in the default case), and the topk selector's build on both."""
import ast
from pathlib import Path

import pytest

from hdp_rtl.config import HDPConfig
from sim.runner import SIMULATORS, design_key, run_cocotb

PRESETS = ("edge", "default")
#: What Icarus runs, on the edge preset: heads back to back and the register errors show
#: the Verilog behaves the same on the second simulator (Verilator runs every case).
ICARUS_CASES = "random_heads_back_to_back,bad_registers_set_error_and_core_stays_usable"
#: The error-code cases, run on both simulators with NARROW.
ERROR_CASES = ("registers_read_back_their_fields,bad_registers_set_error_and_core_stays_usable,"
               "input_errors_complete_the_head")
#: The abort and input-timeout cases: Verilator runs them with every case, Icarus apart
#: (its own build of the edge top, a few seconds of iverilog, beside the smoke run).
ABORT_CASES = ("abort_a_short_input,abort_while_the_output_is_read,"
               "input_timeout_aborts_a_short_head,abort_while_idle_and_start_while_busy")
#: The edge preset with 6-bit elements in 8-bit lanes: only when lanes are wider than
#: elements can a lane fail to be a sign extension (error 8).
NARROW = HDPConfig.preset("edge").replace(frac_bits=2)
#: The edge preset on the topk selector (SpAtten-style per-row top-k), and its cases.
EDGE_TOPK = HDPConfig.preset("edge").replace(selector="topk")
TOPK_CASES = "topk_selector_heads,block_k_zero_refused"
#: The edge preset on the threshold selector (LeOPArd-style score threshold).
EDGE_THRESHOLD = HDPConfig.preset("edge").replace(selector="threshold")
THRESHOLD_CASES = "threshold_selector_heads"


def test_case_lists_name_cocotb_tests():
    """A name the filter does not find would silently run nothing."""
    tree = ast.parse((Path(__file__).parent / "cocotb_top.py").read_text())
    tests = {f.name for f in tree.body if isinstance(f, ast.AsyncFunctionDef)}
    assert set(f"{ICARUS_CASES},{ERROR_CASES},{ABORT_CASES},{TOPK_CASES},{THRESHOLD_CASES},"
               f"{SPATTEN_CASES},{CHANNEL_CASES}".split(",")) <= tests


def _run(config: HDPConfig, simulator: str, name: str, testcase: str | None = None,
         heads: int = 6, quick_build: bool = False):
    from hdp_rtl.rtl.top import HDPCoprocessor
    run_cocotb(component=lambda: HDPCoprocessor(config), toplevel="hdp_coprocessor",
               test_module="cocotb_top", simulator=simulator, name=name, testcase=testcase,
               env={"HDP_CONFIG": config.to_dict(), "HDP_STALL": 0.3, "HDP_HEADS": heads},
               quick_build=quick_build, key=design_key("top", config))


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_top_against_golden(preset):
    """Every case on Verilator, seq_max heads included."""
    # Simulation here is mostly the testbench's Python: a model compiled at -O0 runs the
    # `edge` cases 1.7x slower (51 -> 86 s), which only the `default` build (~10 s of
    # simulation, about 70 CPU-s of C++ at -Os) more than pays back in compile time.
    _run(HDPConfig.preset(preset), "verilator", f"top-{preset}", quick_build=preset != "edge")


@pytest.mark.sim
@pytest.mark.slow
def test_top_smoke_on_icarus():
    """Three back-to-back heads (Verilator runs all six) and the register errors."""
    _run(HDPConfig.preset("edge"), "icarus", "top-edge", testcase=ICARUS_CASES, heads=3)


#: SpAtten's reports (importances, progressive quantization's flags), which edge does
#: not build: one Icarus build of edge with both (Verilator runs them in every case).
EDGE_SPATTEN = HDPConfig.preset("edge").replace(importance_report=True, progressive_report=True)
SPATTEN_CASES = "spatten_importances,progressive_quantization"


@pytest.mark.sim
@pytest.mark.slow
def test_top_spatten_reports_on_icarus():
    """SpAtten's importances and progressive quantization (the MSB pass, its flags, the
    recompute) on an edge build with both; heads=3: no head of more than 32 rows, which
    the default run on Verilator has."""
    _run(EDGE_SPATTEN, "icarus", "top-edge-spatten", testcase=SPATTEN_CASES, heads=3)


@pytest.mark.sim
@pytest.mark.slow
def test_top_abort_on_icarus():
    """ctrl.abort and input_timeout (docs/interface.md): short input, output under
    back-pressure, timeout, idle abort and start while busy."""
    _run(HDPConfig.preset("edge"), "icarus", "top-edge-abort", testcase=ABORT_CASES)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_top_error_codes_with_narrow_elements(simulator):
    assert NARROW.in_lane_bits > NARROW.data_bits
    _run(NARROW, simulator, "top-edge-narrow", testcase=ERROR_CASES, quick_build=True)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_topk_selector_top(simulator):
    """The core built with selector topk: heads bit-exact against the golden model over
    block_k (8 on Verilator, 2 on Icarus: a head of 20 tokens is 10 s there), and
    error 12."""
    _run(EDGE_TOPK, simulator, "top-edge-topk", testcase=TOPK_CASES, quick_build=True,
         heads=8 if simulator == "verilator" else 2)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_threshold_selector_top(simulator):
    """The core built with selector threshold: heads bit-exact against the golden model
    over score_threshold (8 on Verilator, 3 on Icarus: low, high, mid)."""
    _run(EDGE_THRESHOLD, simulator, "top-edge-threshold", testcase=THRESHOLD_CASES,
         quick_build=True, heads=8 if simulator == "verilator" else 3)


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
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_minilm_configs()))
def test_minilm_heads_on_their_own_configs(name):
    """On Verilator: a MiniLM head takes minutes on Icarus."""
    _run(_minilm_configs()[name], "verilator", f"top-minilm-{name}", testcase="minilm_heads",
         quick_build=True)    # `default`-sized models with 7-13 s of simulation


#: The edge preset with the run-time channel mask (edge builds none): 16 lane chunks in
#: the integer pass and in the MAC array, both skipped past the kept channels; with the
#: counters, whose mac_busy shows the cycles saved.
EDGE_CHANNELS = HDPConfig.preset("edge").replace(channel_pruning=True, perf_counters=True)
CHANNEL_CASES = "channel_mask_heads"


@pytest.mark.sim
@pytest.mark.slow
def test_channel_mask_top_on_icarus():
    """The channel mask through the driver on Icarus (Verilator runs the same case on
    the default preset, in test_top_against_golden): all kept (the dense head bit for
    bit), half the chunks, a partial chunk, one channel, none; bit-exact with
    golden.channels.attention_head_channels, the MAC array's busy cycles as documented."""
    _run(EDGE_CHANNELS, "icarus", "top-edge-channels", testcase=CHANNEL_CASES)
