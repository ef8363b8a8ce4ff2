"""The ``hdp-rtl`` command line: ``generate`` Verilog, ``eval`` on a real model."""
from __future__ import annotations

import argparse
import importlib.util
import sys

from .config import ConfigError, HDPConfig, PRESETS


def _config_from(args) -> HDPConfig:
    if getattr(args, "config", None):
        return HDPConfig.load(args.config)
    return HDPConfig.preset(args.preset)


def _cmd_generate(args) -> int:
    from .generate import generate
    config = _config_from(args)
    manifest = generate(config, args.output, preset=None if args.config else args.preset)
    for name in manifest["files"]:
        print(f"{args.output}/{name}")
    print(f"config {manifest['config_hash']} -> {args.output}/manifest.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hdp-rtl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the Verilog, config and manifest of a configuration")
    src = gen.add_mutually_exclusive_group()
    src.add_argument("--preset", default="default", choices=sorted(PRESETS))
    src.add_argument("--config", metavar="FILE", help="a .json or .toml HDPConfig")
    gen.add_argument("-o", "--output", required=True, metavar="DIR")
    gen.set_defaults(func=_cmd_generate)
    if importlib.util.find_spec("hdp_rtl.eval") is not None:   # the real-model evaluation
        from .eval.cli import add_eval_parser
        add_eval_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"hdp-rtl: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
