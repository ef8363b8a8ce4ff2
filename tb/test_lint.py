"""Verilator ``--lint-only -Wall`` of the top and of every unit: zero warnings.

The only waivers are the Verilog-writer idioms listed in :mod:`hdp_rtl.lint`; a real
warning (multiple drivers, a latch, an undriven net, a loop ...) fails here.
"""
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.generate import UNITS, build_unit
from hdp_rtl.rtl.top import HDPCoprocessor
from sim.runner import lint

PRESETS = ["edge", "default"]


@pytest.mark.sim
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("unit", ["top", *UNITS])
def test_lint_clean(unit, preset):
    config = HDPConfig.preset(preset)
    if unit == "top":
        component, toplevel = HDPCoprocessor(config), "hdp_coprocessor"
    else:
        component, toplevel = build_unit(unit, config), f"hdp_{unit}"
    warnings = lint(component, toplevel, f"{unit}_{preset}")
    assert not warnings, "\n".join(warnings[:20])


@pytest.mark.sim
def test_lint_still_catches_real_warnings(tmp_path):
    """The waivers must not hide real problems: an undriven output and a latch."""
    from hdp_rtl.lint import lint_verilog
    from sim.runner import _tool_path
    _tool_path()
    source = tmp_path / "bad.v"
    source.write_text("module bad(input wire a, input wire en, output wire y, output reg l);\n"
                      "  always @* if (en) l = a;\n"
                      "endmodule\n")
    found = "\n".join(lint_verilog(source, "bad"))
    assert "UNDRIVEN" in found and "LATCH" in found, found
