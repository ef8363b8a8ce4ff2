"""``python -m hdp_rtl.fpga --board ulx3s-85f|icebreaker``: build and report."""
from __future__ import annotations

import argparse
import sys

from ..config import PRESETS
from .boards import BOARDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hdp_rtl.fpga", description=__doc__)
    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="ulx3s-85f: default preset on ECP5-85F; icebreaker: edge preset on iCE40 UP5K")
    p.add_argument("--preset", choices=sorted(PRESETS), help="override the board's preset")
    p.add_argument("--freq", type=float, metavar="MHZ",
                   help="PLL / timing target (default: 100 on ECP5, 24 on iCE40)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("-o", "--out", default="build/fpga", metavar="DIR",
                   help="build root; the board builds into DIR/<board> (default build/fpga)")
    p.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=None,
                   help="also report resources by unit (a second, unflattened synthesis); "
                        "default: only when the design does not fit")
    p.add_argument("--ltp", action="store_true",
                   help="also report the deepest combinational path (yosys ltp, ~1 min)")
    p.add_argument("--synth-opt", action="append", default=[], metavar="OPT",
                   help="extra synth_<family> option (repeatable), e.g. --synth-opt=-noabc9")
    p.add_argument("--router", choices=["router1", "router2"],
                   help="nextpnr's router (default: nextpnr's own, router1)")
    p.add_argument("--pnr-opt", action="append", default=[], metavar="OPT",
                   help="extra nextpnr option (repeatable; split at spaces), e.g. "
                        "--pnr-opt='--placer-heap-beta 0.6'")
    p.add_argument("--mapper", choices=["abc9", "abc"], default="abc9",
                   help="LUT mapping: abc9 (yosys' default; a synthesis that dies in "
                        "YoWASP's ABC9 is run again with abc) or abc (ECP5 only)")
    p.add_argument("--synth-only", action="store_true",
                   help="run yosys only (resource counts from synthesis, no Fmax)")
    p.add_argument("--report-only", action="store_true",
                   help="do not build: parse the last build in DIR/<board> again")
    p.add_argument("-v", "--verbose", action="store_true", help="show the tools' output")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .build import build, format_summary, make_report
    if args.report_only:
        rep = make_report(args.board, args.out, with_breakdown=args.breakdown,
                          with_ltp=args.ltp)
        print(format_summary(rep))
        return 0 if rep["exit_code"] == 0 else 1
    cmd = "python -m hdp_rtl.fpga " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        rep = build(args.board, preset=args.preset,
                    target_hz=args.freq * 1e6 if args.freq else None, out_root=args.out,
                    seed=args.seed, verbose=args.verbose, command=cmd,
                    with_breakdown=args.breakdown, with_ltp=args.ltp,
                    synth_only=args.synth_only, synth_opts=args.synth_opt,
                    router=args.router, mapper=args.mapper,
                    pnr_opts=[w for opt in args.pnr_opt for w in opt.split()])
    except FileNotFoundError as err:
        print(f"hdp_rtl.fpga: {err}", file=sys.stderr)
        return 2
    print(format_summary(rep))
    out = f"{args.out}/{rep['board']}"
    print(f"report: {out}/report.json, {out}/report.md; log: {out}/build.log")
    if rep["exit_code"] != 0:
        print(rep.get("error") or "", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
