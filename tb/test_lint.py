"""Verilator ``--lint-only -Wall`` of the top and of every unit: zero warnings.

The only waivers are the Verilog-writer idioms listed in :mod:`hdp_rtl.lint`, which
:mod:`hdp_rtl.verilog` writes into the file; a real warning (multiple drivers, a latch,
an undriven net, a loop ...) fails here.
"""
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.generate import UNITS, build_unit
from hdp_rtl.rtl.top import HDPCoprocessor
from sim.runner import design_key, lint

#: The `edge` files are linted as `hdp-rtl generate` writes them, by
#: tests/test_verilog_as_generated.py (the same writer, the same module names).
PRESETS = ["default"]


@pytest.mark.sim
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("unit", ["top", *UNITS])
def test_lint_clean(unit, preset):
    config = HDPConfig.preset(preset)
    # factories: a design another test already converted is taken from the cache unbuilt
    if unit == "top":
        component, toplevel = (lambda: HDPCoprocessor(config)), "hdp_coprocessor"
    else:
        component, toplevel = (lambda: build_unit(unit, config)), f"hdp_{unit}"
    warnings = lint(component, toplevel, f"{unit}_{preset}", key=design_key(unit, config))
    assert not warnings, "\n".join(warnings[:20])


@pytest.mark.sim
def test_lint_still_catches_real_warnings(tmp_path):
    """The waivers end with the generated text: a module after it in the same file still
    gets a width mismatch (a waived rule), an undriven output and a latch reported."""
    from hdp_rtl.lint import lint_verilog
    from hdp_rtl.verilog import convert
    from sim.runner import _tool_path
    from tb.infra_passthrough import Passthrough
    _tool_path()
    source = tmp_path / "bad.v"
    source.write_text(convert(Passthrough(), "passthrough") +
                      "module bad(input wire [3:0] a, input wire en, output wire [7:0] w,\n"
                      "           output wire y, output reg l);\n"
                      "  assign w = a;\n"
                      "  always @* if (en) l = a[0];\n"
                      "endmodule\n")
    found = "\n".join(lint_verilog(source, "bad"))
    assert all(rule in found for rule in ("WIDTHEXPAND", "UNDRIVEN", "LATCH")), found
