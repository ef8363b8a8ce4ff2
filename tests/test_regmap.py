"""The register map: one definition, its emitted forms, and the docs table in sync."""
import json
import sys
from pathlib import Path

import pytest

from hdp_rtl.config import HDPConfig, PRESETS
from hdp_rtl.regmap import COUNTERS, register_map, regmap_c_header, regmap_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_offsets_unique_aligned_and_fields_fit(preset):
    regs = register_map(HDPConfig.preset(preset))
    offsets = [r.offset for r in regs]
    assert len(set(offsets)) == len(offsets)
    assert all(o % 4 == 0 and o < 256 for o in offsets)
    for r in regs:
        bits = [b for f in r.fields for b in range(f.lsb, f.lsb + f.width)]
        assert len(bits) == len(set(bits)) and max(bits, default=0) < 32, r.name
    assert {r.name for r in regs} >= set(COUNTERS)


def test_json_and_header_carry_every_register():
    cfg = HDPConfig.preset("default")
    doc = json.loads(regmap_json(cfg))
    header = regmap_c_header(cfg)
    for r in register_map(cfg):
        assert any(x["name"] == r.name and x["offset"] == r.offset for x in doc["registers"])
        assert f"HDP_{r.name.upper()}_OFFSET 0x{r.offset:02X}u" in header


def test_docs_table_is_current():
    sys.path.insert(0, str(ROOT / "scripts"))
    from update_docs import DOC, render
    text = DOC.read_text()
    assert render(text) == text, "docs/interface.md is stale: run python scripts/update_docs.py"
