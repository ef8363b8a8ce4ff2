"""The register map: one definition, its emitted forms, and the docs table in sync."""
import json
import sys
from pathlib import Path

import pytest

from hdp_rtl.config import HDPConfig, PRESETS
from hdp_rtl.regmap import (BLOCK_K_OFFSET, COUNTER_BASE, COUNTERS, IMPORTANCE_BASE, PQ_BASE,
                            PQ_ROWS_PER_WORD, SCORE_THRESHOLD_OFFSET, ErrorCode, pq_words,
                            register_map, regmap_c_header, regmap_json, stream_format)

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


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_json_and_header_carry_error_codes_and_formats(preset):
    """A driver needs nothing but regs.json or hdp_regs.h to talk to the core."""
    cfg = HDPConfig.preset(preset)
    doc = json.loads(regmap_json(cfg))
    header = regmap_c_header(cfg)
    assert [e["code"] for e in doc["error_codes"]] == [int(c) for c in ErrorCode]
    for code in ErrorCode:
        assert f"#define HDP_ERR_{code.name} {int(code)}u" in header
    fmt = stream_format(cfg)
    assert doc["format"] == fmt
    for key in ("int_bits", "frac_bits", "data_bits", "axis_elems", "in_lane_bits",
                "out_lane_bits", "out_frac", "seq_max", "head_dim", "axil_addr_bits"):
        assert f"#define HDP_{key.upper()} {fmt[key]}u" in header
    assert fmt["data_min"] == -(1 << (cfg.data_bits - 1)) and fmt["data_max"] == -fmt["data_min"] - 1


def test_every_error_code_is_described():
    for code in ErrorCode:
        assert code.description
    assert [c for c in ErrorCode if c.refuses_start] == [
        ErrorCode.SEQ_LEN_ZERO, ErrorCode.SEQ_LEN_TOO_BIG, ErrorCode.FLAGS_RESERVED,
        ErrorCode.RHO_RANGE, ErrorCode.FIELD_OVERFLOW, ErrorCode.BLOCK_K_ZERO]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_block_k_only_in_topk_configs(preset):
    """The register map follows the config: block_k (rw, 0..block_col_count and more)
    at a free offset below the counters in topk builds, in regs.json and the C header;
    absent from hdp builds, whose map is otherwise the same."""
    hdp = HDPConfig.preset(preset)
    topk = hdp.replace(selector="topk")
    assert "block_k" not in {r.name for r in register_map(hdp)}
    regs = register_map(topk)
    extra = [r for r in regs if r.name not in {x.name for x in register_map(hdp)}]
    assert [r.name for r in extra] == ["block_k"]
    (reg,) = extra
    assert reg.access == "rw" and reg.offset == BLOCK_K_OFFSET < COUNTER_BASE
    assert (1 << reg.field("block_k").width) - 1 >= topk.block_col_count > \
        (1 << (reg.field("block_k").width - 1)) - 1
    doc = json.loads(regmap_json(topk))
    assert any(x["name"] == "block_k" and x["offset"] == BLOCK_K_OFFSET for x in doc["registers"])
    assert f"#define HDP_BLOCK_K_OFFSET 0x{BLOCK_K_OFFSET:02X}u" in regmap_c_header(topk)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_score_threshold_only_in_threshold_configs(preset):
    """score_threshold (rw, signed, sint_bits wide: the block importance's) at its own
    offset below the counters, not block_k's, in threshold builds only; in regs.json
    and the C header; a word decodes to the signed value."""
    hdp = HDPConfig.preset(preset)
    thr = hdp.replace(selector="threshold")
    regs = register_map(thr)
    extra = [r for r in regs if r.name not in {x.name for x in register_map(hdp)}]
    assert [r.name for r in extra] == ["score_threshold"]
    (reg,) = extra
    assert reg.access == "rw" and reg.offset == SCORE_THRESHOLD_OFFSET < COUNTER_BASE
    assert SCORE_THRESHOLD_OFFSET != BLOCK_K_OFFSET
    assert len({r.offset for r in regs}) == len(regs)
    f = reg.field("score_threshold")
    assert f.signed and f.width == thr.sint_bits and reg.mask == (1 << thr.sint_bits) - 1
    half = 1 << (thr.sint_bits - 1)
    for v in (-half, -1, 0, half - 1):
        assert reg.decode(reg.word(score_threshold=v)) == {"score_threshold": v}
    doc = json.loads(regmap_json(thr))
    assert any(x["name"] == "score_threshold" and x["offset"] == SCORE_THRESHOLD_OFFSET
               for x in doc["registers"])
    assert f"#define HDP_SCORE_THRESHOLD_OFFSET 0x{SCORE_THRESHOLD_OFFSET:02X}u" in \
        regmap_c_header(thr)


PQ_NAMES = ["pq_threshold", "pq_index", "pq_flags", "pq_count"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_progressive_registers_only_with_progressive_report(preset):
    """The progressive-quantization registers (issue 12) follow progressive_report (on
    in every preset but edge): pq_threshold (rw, prob_bits + 1 bits: up to 2**prob_bits
    + 1, which flags every row), pq_index (rw, a word of 32 rows, every word of a
    seq_max head reachable), pq_flags (ro, 32 rows or seq_max), pq_count (ro, 0..seq_max),
    after the importances (also after server's out_importance_hi); the map is otherwise
    the same; in regs.json and the C header."""
    cfg = HDPConfig.preset(preset)
    on, off = cfg.replace(progressive_report=True), cfg.replace(progressive_report=False)
    assert cfg.progressive_report == (preset != "edge")
    names_off = [r.name for r in register_map(off)]
    assert not set(PQ_NAMES) & set(names_off)
    regs = register_map(on)
    extra = [r for r in regs if r.name not in names_off]
    assert [r.name for r in extra] == PQ_NAMES
    assert [(r.offset, r.access) for r in extra] == [
        (PQ_BASE, "rw"), (PQ_BASE + 4, "rw"), (PQ_BASE + 8, "ro"), (PQ_BASE + 12, "ro")]
    assert max(r.offset for r in regs if r.offset < PQ_BASE) < PQ_BASE
    assert min(r.offset for r in regs if r.name.startswith(("key_", "out_"))) == IMPORTANCE_BASE
    assert len({r.offset for r in regs}) == len(regs)
    thr, idx, flags, count = extra
    assert thr.mask == (1 << (on.prob_bits + 1)) - 1 >= (1 << on.prob_bits) + 1
    assert (1 << idx.field("pq_index").width) >= pq_words(on) == -(-on.seq_max // 32)
    assert flags.mask == (1 << min(PQ_ROWS_PER_WORD, on.seq_max)) - 1
    assert count.mask >= on.seq_max and count.mask >> 1 < on.seq_max
    doc = json.loads(regmap_json(on))
    header = regmap_c_header(on)
    for r in extra:
        assert any(x["name"] == r.name and x["offset"] == r.offset for x in doc["registers"])
        assert f"#define HDP_{r.name.upper()}_OFFSET 0x{r.offset:02X}u" in header
    # a small seq_max: one word of seq_max rows, the index still a 1-bit field
    small = register_map(on.replace(seq_max=20, block_cols=1))
    by = {r.name: r for r in small}
    assert by["pq_flags"].mask == (1 << 20) - 1 and by["pq_index"].mask == 1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_channel_drop_only_in_channel_pruning_configs(preset):
    """channel_drop (rw, 32 bits: every value valid, no start check) at its own free
    offset below the counters, in the builds with channel_pruning only (every preset but
    edge), in regs.json and the C header; kept_channels reads it."""
    from hdp_rtl.regmap import CHANNEL_DROP_OFFSET, kept_channels
    on = HDPConfig.preset(preset).replace(channel_pruning=True)
    off = on.replace(channel_pruning=False)
    assert HDPConfig.preset(preset).channel_pruning == (preset != "edge")
    assert "channel_drop" not in {r.name for r in register_map(off)}
    extra = [r for r in register_map(on) if r.name not in {x.name for x in register_map(off)}]
    assert [r.name for r in extra] == ["channel_drop"]
    (reg,) = extra
    assert reg.access == "rw" and reg.offset == CHANNEL_DROP_OFFSET < COUNTER_BASE
    offsets = [r.offset for r in register_map(on.replace(selector="threshold"))]
    assert len(offsets) == len(set(offsets))
    f = reg.field("channel_drop")
    assert (f.lsb, f.width, reg.mask) == (0, 32, 0xFFFF_FFFF)
    assert [kept_channels(x, on.head_dim) for x in (0, 1, on.head_dim, (1 << f.width) - 1)] \
        == [on.head_dim, on.head_dim - 1, 0, 0]
    doc = json.loads(regmap_json(on))
    assert any(x["name"] == "channel_drop" and x["offset"] == CHANNEL_DROP_OFFSET
               for x in doc["registers"])
    assert f"#define HDP_CHANNEL_DROP_OFFSET 0x{CHANNEL_DROP_OFFSET:02X}u" in regmap_c_header(on)
