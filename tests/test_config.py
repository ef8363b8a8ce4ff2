"""HDPConfig and Registers: validation messages, presets, files, widths, speed."""

import numpy as np
import pytest

import golden
from hdp_rtl.config import ConfigError, HDPConfig, PRESETS, Registers, delta_for, score_scale_for


@pytest.mark.parametrize("changes,message", [
    (dict(head_dim=48), "head_dim must be a power of two, not 48"),
    (dict(seq_max=0), "seq_max must be >= 1, not 0"),
    (dict(block_cols=3), "block_cols must be a power of two, not 3"),
    (dict(mac_lanes=128), "mac_lanes must be <= 64, not 128"),
    (dict(int_bits=1), "int_bits must be >= 2, not 1"),
    (dict(out_frac=16), "out_frac must be <= 15, not 16"),
    (dict(frac_bits=2, prob_bits=4, out_frac=7), "out_frac must be <= frac_bits + prob_bits = 6, not 7"),
    (dict(axis_elems=3), "axis_elems must be a power of two, not 3"),
    (dict(seq_max="64"), "seq_max must be an integer, not '64'"),
    (dict(counter_bits=7), "counter_bits must be >= 8, not 7"),
    (dict(counter_bits=33), "counter_bits must be <= 32, not 33"),
    (dict(unbiased_selection=1), "unbiased_selection must be true or false, not 1"),
])
def test_invalid_configs_name_the_field(changes, message):
    with pytest.raises(ConfigError) as err:
        HDPConfig(**changes)
    assert str(err.value) == message


@pytest.mark.parametrize("fields,message", [
    (dict(seq_len=0), "seq_len must be >= 1, not 0"),
    (dict(seq_len=4, rho=300), "rho must be <= 256, not 300"),
    (dict(seq_len=4, block_rule=2), "block_rule must be <= 1, not 2"),
    (dict(seq_len=4, causal=2), "causal must be 0 or 1, not 2"),
    (dict(seq_len=4, delta=-1), "delta must be >= 0, not -1"),
    (dict(seq_len=4, block_k=-1), "block_k must be >= 0, not -1"),
    (dict(seq_len=4, score_threshold=1.5), "score_threshold must be an integer, not 1.5"),
])
def test_invalid_registers_name_the_field(fields, message):
    with pytest.raises(ConfigError) as err:
        Registers(**fields)
    assert str(err.value) == message


def test_registers_checked_against_the_config():
    cfg = HDPConfig.preset("edge")
    with pytest.raises(ConfigError, match="seq_len must be <= seq_max = 64, not 65"):
        Registers(seq_len=65).check(cfg)
    with pytest.raises(ConfigError, match="score_scale must fit in 20 bits"):
        Registers(seq_len=4, score_scale=1 << 20).check(cfg)
    with pytest.raises(ConfigError, match="delta must fit"):
        Registers(seq_len=4, delta=1 << cfg.delta_bits).check(cfg)
    with pytest.raises(ConfigError, match="seq_len"):
        golden.attention_head(np.zeros((65, 4)), np.zeros((65, 4)), np.zeros((65, 4)), cfg,
                              Registers(seq_len=65))
    # block_k 0 keeps no block: refused with pruning on in a topk build (error 12), and
    # not read otherwise; any larger block_k is valid (it keeps every block of a row)
    topk = cfg.replace(selector="topk")
    with pytest.raises(ConfigError, match="block_k must be >= 1 with block pruning enabled"):
        Registers(seq_len=4, block_k=0).check(topk)
    for fields in (dict(block_k=0, block_prune_enable=False), dict(block_k=10**6)):
        Registers(seq_len=4, **fields).check(topk)
    Registers(seq_len=4, block_k=0).check(cfg)
    # score_threshold: signed, sint_bits wide in a threshold build; not read otherwise
    thr = cfg.replace(selector="threshold")
    half = 1 << (thr.sint_bits - 1)
    for t in (-half, half - 1):
        Registers(seq_len=4, score_threshold=t).check(thr)
    for t in (-half - 1, half):
        with pytest.raises(ConfigError, match="score_threshold must fit"):
            Registers(seq_len=4, score_threshold=t).check(thr)
        Registers(seq_len=4, score_threshold=t).check(cfg)


def test_presets_and_unknown_preset():
    for name in PRESETS:
        cfg = HDPConfig.preset(name)
        assert cfg.data_bits == cfg.int_bits + cfg.frac_bits
    assert HDPConfig.preset("edge").seq_max < HDPConfig.preset("default").seq_max
    assert all(HDPConfig.preset(p).unbiased_selection for p in PRESETS)
    with pytest.raises(ConfigError, match="preset must be one of default, edge, server, wide, not 'big'"):
        HDPConfig.preset("big")


def test_edge_counters_hold_a_dense_head():
    """The edge preset's 20-bit counters (HDPConfig.counter_bits) hold a dense seq_max
    head with room to spare: its MACs and 4x its ideal cycles."""
    cfg = HDPConfig.preset("edge")
    n, d = cfg.seq_max, cfg.head_dim
    ideal = n * n * d // cfg.int_lanes + 2 * n * n * d // cfg.mac_lanes
    assert cfg.counter_bits == 20 and HDPConfig().counter_bits == 32
    assert n * n * d < 1 << cfg.counter_bits and 4 * ideal < 1 << cfg.counter_bits


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_save_load_round_trip(tmp_path, suffix):
    cfg = HDPConfig.preset("edge")
    path = tmp_path / f"cfg{suffix}"
    cfg.save(path)
    assert HDPConfig.load(path) == cfg
    assert HDPConfig.load(path).digest() == cfg.digest()


def test_unknown_field_in_file(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text('{"seq_max": 64, "lanes": 4}')
    with pytest.raises(ConfigError, match="unknown config field 'lanes'"):
        HDPConfig.load(path)


def test_derived_widths_hold_their_extremes():
    cfg = HDPConfig.preset("default").replace(unbiased_selection=False)
    most = cfg.head_dim * 2 ** (2 * cfg.int_bits - 2)          # (-8)*(-8)*d
    assert most < 2 ** (cfg.sint_bits - 1)
    # S_sel: (2*(-8) + 1)*(-8)*d, or its negation, fits the same width (widths.py)
    unbiased = cfg.replace(unbiased_selection=True)
    sel = cfg.head_dim * (2 ** cfg.int_bits - 1) * 2 ** (cfg.int_bits - 1)
    assert sel > most and sel < 2 ** (unbiased.sint_bits - 1)
    assert unbiased.sint_bits == cfg.sint_bits and unbiased.delta_bits == cfg.delta_bits
    assert sel * cfg.seq_max ** 2 < 2 ** unbiased.hi_bits
    ragged = unbiased.replace(seq_max=100)       # hi_bits is exact: one more bit here
    assert ragged.hi_bits == (sel * 100 ** 2).bit_length() == ragged.replace(
        unbiased_selection=False).hi_bits + 1
    assert cfg.head_dim * 2 ** (2 * cfg.data_bits - 2) < 2 ** (cfg.score_bits - 1)
    assert most * cfg.seq_max ** 2 < 2 ** cfg.hi_bits
    assert cfg.seq_max * 2 ** cfg.exp_bits < 2 ** cfg.exp_sum_bits


def test_scale_helpers():
    cfg = HDPConfig.preset("default")
    # 2**(0 + 0 - 8) * log2(e) / sqrt(64) at 26 fraction bits
    assert score_scale_for(cfg, 0, 0) == round(2 ** -8 * 1.4426950408889634 / 8 * 2 ** 26)
    with pytest.raises(ConfigError, match="score_scale"):
        score_scale_for(cfg, 8, 8)
    # one S_int step is 2**(0+0)/sqrt(64) = 1/8 of logit: a gap of 3 needs 24 steps;
    # one S_sel step (the default's selection score) is 1/16: 48 steps
    assert delta_for(cfg.replace(unbiased_selection=False), 3.0, 0, 0) == 24
    assert delta_for(cfg, 3.0, 0, 0) == 48
