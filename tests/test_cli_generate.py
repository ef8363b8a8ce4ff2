"""`hdp-rtl generate`: the files it writes, and exit code 2 with a one-line message for
a bad config."""
import json
import subprocess
import sys

import pytest


def test_generate_writes_verilog_registers_header_and_manifest(edge_generated):
    """Exit status 0 is asserted by the fixture, which runs `hdp-rtl generate`."""
    out = edge_generated
    names = {p.name for p in out.iterdir()}
    assert {"hdp_coprocessor.v", "regs.json", "hdp_regs.h", "manifest.json",
            "config.json"} <= names
    verilog = (out / "hdp_coprocessor.v").read_text()
    for port in ("s_axil_awaddr", "s_axis_tdata", "s_axis_tlast", "m_axis_tdata", "m_axis_tready"):
        assert f" {port}" in verilog, port
    assert "__" not in verilog.split("module ", 1)[1].split(";", 1)[0]   # top ports unmangled
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seq_max"] == 64 and len(manifest["config_hash"]) >= 8


@pytest.mark.parametrize("content,field", [
    ({"head_dim": 48}, "head_dim must be a power of two, not 48"),
    ({"seq_max": 0}, "seq_max must be >= 1, not 0"),
    ({"no_such_field": 1}, "no_such_field"),
])
def test_bad_config_exits_2_naming_the_field(tmp_path, content, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    proc = subprocess.run([sys.executable, "-m", "hdp_rtl.cli", "generate", "--config", str(path),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr
