"""Functional coverage of the random-config regression (``sim.regress``).

Bins are data: each :class:`Group` names its bins and classifies a sample into them,
either by value (one bin per sample) or by predicates (every bin whose predicate holds).
Config groups classify an ``HDPConfig`` and count configs; head groups classify a
:class:`Head` (the config, the registers, the kind, ``n`` and ``d``, the golden
:class:`Outcome` and the bus stall) and count heads; the error group counts error
cases by their :class:`~hdp_rtl.regmap.ErrorCode`. A bin the regression cannot reach
is *excluded*, with the reason, rather than left a hole forever.

:class:`Coverage` holds the counts: it samples, merges, round-trips through JSON (a
batch's counts travel from the worker to the client and into the log) and writes the
markdown report with its holes. A bin ``"group:bin"`` that a head can be steered into
has a :class:`Steer`: what to draw, at which stage of the head's draw, to hit it;
:func:`steer` is what the draws in ``sim.random_configs`` call with the wanted bins.
"""
from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, NamedTuple

from hdp_rtl.config import BLOCK_RULE_DELTA, BLOCK_RULE_MEAN, SELECTOR_NAMES, HDPConfig, Registers
from hdp_rtl.regmap import ErrorCode

__all__ = ["KINDS", "STALLS", "STEER_P", "PROVOKED", "DRAWN", "Outcome", "Head", "Steer",
           "Group", "GROUPS", "STEERS", "Coverage", "bin_id", "steer", "config_bins",
           "provokable"]

#: The head kinds of ``tb/cocotb_regress.py``, in the order the plain draw picks from.
KINDS = ("normal", "peaked", "zeros", "extremes", "constant")
#: The idle and back-pressure probabilities a batch draws from.
STALLS = (0.0, 0.2, 0.5)
#: How often a draw with a wanted bin it can hit is steered into one.
STEER_P = 0.5

#: Why a config bin is out of reach: ``random_config`` keeps the field at its default
#: (a new draw would change the config every existing seed names).
NOT_DRAWN = ("random_config does not draw {} (always {}): drawing it would change every "
             "seed's config")


class Outcome(NamedTuple):
    """What the golden model says of a head, and the error case run with it."""

    head_importance: int
    head_pruned: bool
    blocks_pruned: int
    error: ErrorCode = ErrorCode.NONE


class Head(NamedTuple):
    """One head as the head and error groups see it."""

    config: HDPConfig
    regs: Registers
    kind: str
    n: int
    d: int
    outcome: Outcome
    stall: float | None = None


class Steer(NamedTuple):
    """How to draw a value in a bin: at ``stage`` (``"batch"``, ``"shape"``,
    ``"registers"`` or ``"error"``), ``draw(rng, ctx)`` returns the values that override
    the plain draw, or None when the config (``ctx["config"]``) cannot hit the bin."""

    stage: str
    draw: Callable[[random.Random, dict], dict | None]


@dataclass(frozen=True)
class Group:
    """A group of bins: ``classify(sample)`` gives a bin, several or None (not sampled);
    ``of`` is what the group counts (configs, heads or error cases)."""

    name: str
    of: str
    bins: tuple[str, ...]
    classify: Callable
    excluded: Mapping[str, str] = field(default_factory=dict)
    steers: Mapping[str, Steer] = field(default_factory=dict)

    def bins_of(self, sample) -> list[str]:
        got = self.classify(sample)
        got = [] if got is None else [got] if isinstance(got, str) else list(got)
        for b in got:
            if b not in self.bins:
                raise ValueError(f"group {self.name!r} has no bin {b!r}")
        return got


def bin_id(group: str, name: str) -> str:
    """A bin's name across groups (in the report, the wanted list and HDP_WANT)."""
    return f"{group}:{name}"


def _predicates(name: str, of: str, preds: Mapping[str, Callable], **kw) -> Group:
    """A group whose every bin is a predicate: a sample counts in each that holds."""
    return Group(name, of, tuple(preds), lambda s: [b for b, p in preds.items() if p(s)], **kw)


# ---- config groups -----------------------------------------------------------------------

#: The fields ``random_config`` draws; every other field keeps its default, each an
#: excluded bin of the group "undrawn fields".
DRAWN = frozenset({
    "seq_max", "head_dim", "int_bits", "frac_bits", "block_rows", "block_cols", "int_lanes",
    "mac_lanes", "exp_lut_bits", "exp_bits", "prob_bits", "recip_guard_bits",
    "score_scale_bits", "score_scale_frac", "out_bits", "out_frac", "axis_elems", "selector",
    "approximation"})
_UNDRAWN = tuple(f for f in dataclasses.fields(HDPConfig) if f.name not in DRAWN)


def _chunks(lanes: int, c: HDPConfig) -> str:
    return ("1 lane" if lanes == 1 else "one chunk (= head_dim)" if lanes == c.head_dim
            else "several chunks")


def _beat(c: HDPConfig) -> str:
    lanes = max(c.int_lanes, c.mac_lanes)
    if c.axis_elems == 1:
        return "1 element"
    return ("< lanes" if c.axis_elems < lanes else "= lanes" if c.axis_elems == lanes
            else "> lanes")


def _cmp(a: int, b: int, what: tuple[str, str]) -> str:
    return f"{what[0]} {'<' if a < b else '=' if a == b else '>'} {what[1]}"


def _out_lanes(c: HDPConfig) -> str:
    lane = c.out_lane_bits
    return f"{lane} bits, out_bits {'=' if c.out_bits == lane else '<'} {lane}"


def _in_lanes(c: HDPConfig) -> str:
    if c.in_lane_bits == 16:
        return "16 bits"
    return f"8 bits, B {'=' if c.data_bits == 8 else '<'} 8"


CONFIG_GROUPS = (
    Group("block shape", "configs", ("1x1", "1xN", "Nx1", "NxN"),
          lambda c: f"{'1' if c.block_rows == 1 else 'N'}x{'1' if c.block_cols == 1 else 'N'}"),
    _predicates("block grid", "configs", {
        "one block row": lambda c: c.block_row_count == 1,
        "one block column": lambda c: c.block_col_count == 1,
        "ragged last block row": lambda c: c.seq_max % c.block_rows != 0,
        "ragged last block column": lambda c: c.seq_max % c.block_cols != 0}),
    Group("seq_max", "configs", ("power of two", "not a power of two"),
          lambda c: "power of two" if c.seq_max & (c.seq_max - 1) == 0 else "not a power of two"),
    Group("head_dim", "configs", ("2", "4", "8", "16", "32"), lambda c: str(c.head_dim)),
    Group("int lanes", "configs", ("1 lane", "one chunk (= head_dim)", "several chunks"),
          lambda c: _chunks(c.int_lanes, c)),
    Group("mac lanes", "configs", ("1 lane", "one chunk (= head_dim)", "several chunks"),
          lambda c: _chunks(c.mac_lanes, c)),
    Group("int vs mac lanes", "configs", ("int < mac", "int = mac", "int > mac"),
          lambda c: _cmp(c.int_lanes, c.mac_lanes, ("int", "mac"))),
    Group("axis_elems", "configs", ("1 element", "< lanes", "= lanes", "> lanes"), _beat),
    Group("beats per row", "configs", ("1", "several"),
          lambda c: "1" if c.beats_per_row == 1 else "several"),
    Group("row buffer words", "configs", ("1 a row", "several a row"),
          lambda c: "1 a row" if c.row_words == 1 else "several a row"),
    Group("input lanes", "configs", ("8 bits, B < 8", "8 bits, B = 8", "16 bits"), _in_lanes),
    Group("output lanes", "configs", ("16 bits, out_bits < 16", "16 bits, out_bits = 16",
                                      "32 bits, out_bits < 32", "32 bits, out_bits = 32"),
          _out_lanes, excluded={"32 bits, out_bits = 32": "random_config draws out_bits 12..24"}),
    _predicates("width extremes", "configs", {
        "int_bits 2": lambda c: c.int_bits == 2, "int_bits 6": lambda c: c.int_bits == 6,
        "frac_bits 0": lambda c: c.frac_bits == 0, "frac_bits 6": lambda c: c.frac_bits == 6,
        "exp_lut_bits 3": lambda c: c.exp_lut_bits == 3,
        "exp_lut_bits 7": lambda c: c.exp_lut_bits == 7,
        "prob_bits 6": lambda c: c.prob_bits == 6, "prob_bits 14": lambda c: c.prob_bits == 14,
        "recip_guard_bits 0": lambda c: c.recip_guard_bits == 0,
        "out_frac 0": lambda c: c.out_frac == 0,
        "out_shift 0 (every fraction bit out)": lambda c: c.out_shift == 0}),
    Group("selector", "configs", SELECTOR_NAMES, lambda c: c.selector),
    Group("approximation unit", "configs", ("built", "not built"),
          lambda c: "built" if c.approximation else "not built"),
    Group("head_threshold_hi", "configs", ("no field (hi_bits <= 32)", "a field (hi_bits > 32)"),
          lambda c: "a field (hi_bits > 32)" if c.hi_bits > 32 else "no field (hi_bits <= 32)",
          excluded={"a field (hi_bits > 32)":
                    "random configs' head importance has at most 26 bits "
                    "(seq_max 40, head_dim 32, int_bits 6)"}),
    _predicates("undrawn fields", "configs", {
        f"{f.name} not {f.default!r}": lambda c, f=f: getattr(c, f.name) != f.default
        for f in _UNDRAWN}, excluded={
        f"{f.name} not {f.default!r}": NOT_DRAWN.format(f.name, repr(f.default))
        for f in _UNDRAWN}),
)


# ---- head groups -------------------------------------------------------------------------

def _n_class(n: int, c: HDPConfig) -> str:
    return "1" if n == 1 else "seq_max" if n == c.seq_max else "between"


def _n_for(n_class: str, rng: random.Random, c: HDPConfig) -> int | None:
    if n_class == "1":
        return 1
    if n_class == "seq_max":
        return c.seq_max
    return rng.randint(2, c.seq_max - 1) if c.seq_max > 2 else None


def _n_where(pred: Callable[[int, HDPConfig], bool]) -> Steer:
    """A shape steer: a random ``n`` of the config for which ``pred(n, config)`` holds."""
    def draw(rng, ctx):
        c = ctx["config"]
        ns = [n for n in range(1, c.seq_max + 1) if pred(n, c)]
        return {"n": rng.choice(ns)} if ns else None
    return Steer("shape", draw)


def _fields(**values) -> Steer:
    """A register steer to fixed field values."""
    return Steer("registers", lambda rng, ctx: dict(values))


def _rule(h: Head) -> str | None:
    r = h.regs
    if h.config.selector != "hdp":       # the rules are the hdp selector's
        return None
    if not r.block_prune_enable:
        return "pruning off"
    if r.block_rule == BLOCK_RULE_MEAN:
        return f"mean, rho {r.rho}" if r.rho in (-256, 0, 256) else "mean, rho other"
    top = (1 << h.config.delta_bits) - 1
    return "delta, 0" if r.delta == 0 else "delta, max" if r.delta == top else "delta, other"


def _delta_steer(which: str) -> Steer:
    def draw(rng, ctx):
        top = (1 << ctx["config"].delta_bits) - 1
        delta = {"0": 0, "max": top, "other": rng.randint(1, top - 1)}[which]
        return dict(block_prune_enable=True, block_rule=BLOCK_RULE_DELTA, delta=delta)
    return Steer("registers", draw)


def _head_pruning(h: Head) -> str:
    if not h.regs.head_prune_enable:
        return "off"
    t, hi = h.regs.head_threshold, h.outcome.head_importance
    return ("kept, threshold < HI" if t < hi else "kept, threshold = HI" if t == hi
            else "pruned, threshold = HI + 1" if t == hi + 1 else "pruned, threshold > HI + 1")


def _threshold_steer(lo: int, hi: int) -> Steer:
    """Head pruning on, the threshold ``HI + lo .. HI + hi`` (where it fits); not causal,
    the mask of the head importance the draw knows (``ctx["head_importance"]``)."""
    def draw(rng, ctx):
        imp, top = ctx["head_importance"], (1 << ctx["config"].hi_bits) - 1
        if imp is None:
            return None
        t = imp + rng.randint(lo, hi)
        return (dict(head_prune_enable=True, head_threshold=t, causal=False)
                if 0 <= t <= top else None)
    return Steer("registers", draw)


def _blocks(h: Head) -> str | None:
    if not h.regs.block_prune_enable or h.outcome.head_pruned:
        return None
    return "some pruned" if h.outcome.blocks_pruned else "none pruned"


def _widest_row(n: int, c: HDPConfig) -> int:
    """Valid blocks in the widest block row of a head of ``n`` tokens (its last, causal
    or not: the block columns 0 .. ceil(n / block_cols) - 1)."""
    return -(-n // c.block_cols)


def _block_k(h: Head) -> list[str] | None:
    """Selector topk with block pruning on and the head kept: block_k against the
    widest row's valid blocks nb (1, between, >= nb: every row kept whole)."""
    r, c = h.regs, h.config
    if c.selector != "topk" or not r.block_prune_enable or h.outcome.head_pruned:
        return None
    nb = _widest_row(h.n, c)
    return [b for b, hit in (("1", r.block_k == 1), ("between 1 and nb", 1 < r.block_k < nb),
                             (">= nb (rows kept whole)", r.block_k >= nb)) if hit]


def _block_k_steer(which: str) -> Steer:
    """Block pruning on (head pruning off) and a block_k of the bin, on topk configs."""
    def draw(rng, ctx):
        c = ctx["config"]
        nb, top = _widest_row(ctx["n"], c), (1 << c.block_k_bits) - 1
        if c.selector != "topk" or (which == "between" and nb < 3):
            return None
        k = {"1": 1, "between": rng.randint(2, max(2, nb - 1)),
             ">= nb": rng.randint(nb, top)}[which]
        return dict(block_prune_enable=True, head_prune_enable=False, block_k=k)
    return Steer("registers", draw)


def _score_threshold(h: Head) -> list[str] | None:
    """Selector threshold with block pruning on and the head kept: the threshold at the
    signed field's lowest (every block kept), its highest (only each row's best), or
    between."""
    r, c = h.regs, h.config
    if c.selector != "threshold" or not r.block_prune_enable or h.outcome.head_pruned:
        return None
    lo, hi = -(1 << (c.sint_bits - 1)), (1 << (c.sint_bits - 1)) - 1
    return ["lowest" if r.score_threshold == lo else "highest" if r.score_threshold == hi
            else "between"]


def _score_threshold_steer(which: str) -> Steer:
    """Block pruning on (head pruning off) and a threshold of the bin, on threshold
    configs."""
    def draw(rng, ctx):
        c = ctx["config"]
        if c.selector != "threshold":
            return None
        lo, hi = -(1 << (c.sint_bits - 1)), (1 << (c.sint_bits - 1)) - 1
        t = {"lowest": lo, "highest": hi, "between": rng.randint(lo + 1, hi - 1)}[which]
        return dict(block_prune_enable=True, head_prune_enable=False, score_threshold=t)
    return Steer("registers", draw)


def _kind_n_steer(kind: str | None, n_class: str) -> Steer:
    """A shape steer to ``n`` of class ``n_class`` (and to ``kind``, unless None)."""
    def draw(rng, ctx):
        n = _n_for(n_class, rng, ctx["config"])
        return None if n is None else {"n": n} | ({"kind": kind} if kind else {})
    return Steer("shape", draw)


_N_CLASSES = ("1", "seq_max", "between")
_ERROR_CODES = tuple(c for c in ErrorCode if c != ErrorCode.NONE)
#: The error codes ``sim.random_configs.random_error_case`` provokes; the others are
#: excluded bins until it learns them.
PROVOKED = frozenset([*(ErrorCode(c) for c in range(1, 10)), ErrorCode.BLOCK_K_ZERO])


def provokable(code: ErrorCode, config: HDPConfig) -> bool:
    """Whether ``config`` can show ``code``: error 8 needs lanes wider than elements,
    error 12 the ``topk`` selector's ``block_k``."""
    if code == ErrorCode.INPUT_LANE:
        return config.in_lane_bits != config.data_bits
    if code == ErrorCode.BLOCK_K_ZERO:
        return config.selector == "topk"
    return True


def _error_steer(code: ErrorCode) -> Steer:
    return Steer("error", lambda rng, ctx: {"code": code} if provokable(code, ctx["config"])
                 else None)


HEAD_GROUPS = (
    Group("kind", "heads", KINDS, lambda h: h.kind,
          steers={k: Steer("shape", lambda rng, ctx, k=k: {"kind": k}) for k in KINDS}),
    Group("seq_len", "heads", _N_CLASSES, lambda h: _n_class(h.n, h.config),
          steers={nc: _kind_n_steer(None, nc) for nc in _N_CLASSES}),
    Group("kind x seq_len", "heads", tuple(f"{k}, n {nc}" for k in KINDS for nc in _N_CLASSES),
          lambda h: f"{h.kind}, n {_n_class(h.n, h.config)}",
          steers={f"{k}, n {nc}": _kind_n_steer(k, nc) for k in KINDS for nc in _N_CLASSES}),
    Group("width d", "heads", ("d = head_dim", "d < head_dim"),
          lambda h: "d = head_dim" if h.d == h.config.head_dim else "d < head_dim",
          steers={"d = head_dim": Steer("shape", lambda rng, ctx: {"d": ctx["config"].head_dim}),
                  "d < head_dim": Steer("shape", lambda rng, ctx: {
                      "d": rng.randint(1, ctx["config"].head_dim - 1)})}),
    _predicates("corner cases", "heads", {
        "ragged last block column": lambda h: h.n % h.config.block_cols != 0,
        "ragged last block row": lambda h: h.n % h.config.block_rows != 0,
        "n < block_cols": lambda h: h.n < h.config.block_cols,
        "causal, blocks larger than 1x1":
            lambda h: h.regs.causal and h.config.block_rows * h.config.block_cols > 1},
        steers={"ragged last block column": _n_where(lambda n, c: n % c.block_cols != 0),
                "ragged last block row": _n_where(lambda n, c: n % c.block_rows != 0),
                "n < block_cols": _n_where(lambda n, c: n < c.block_cols),
                "causal, blocks larger than 1x1": Steer("registers", lambda rng, ctx: (
                    {"causal": True} if ctx["config"].block_rows * ctx["config"].block_cols > 1
                    else None))}),
    Group("block rule", "heads", ("pruning off", "mean, rho -256", "mean, rho 0",
                                  "mean, rho 256", "mean, rho other", "delta, 0", "delta, max",
                                  "delta, other"), _rule,
          steers={"pruning off": _fields(block_prune_enable=False),
                  **{f"mean, rho {r}": _fields(block_prune_enable=True,
                                                block_rule=BLOCK_RULE_MEAN, rho=r)
                     for r in (-256, 0, 256)},
                  "mean, rho other": Steer("registers", lambda rng, ctx: dict(
                      block_prune_enable=True, block_rule=BLOCK_RULE_MEAN,
                      rho=rng.choice([-1, 1]) * rng.randint(1, 255))),
                  **{f"delta, {w}": _delta_steer(w) for w in ("0", "max", "other")}}),
    Group("block_k", "heads", ("1", "between 1 and nb", ">= nb (rows kept whole)"), _block_k,
          steers={"1": _block_k_steer("1"), "between 1 and nb": _block_k_steer("between"),
                  ">= nb (rows kept whole)": _block_k_steer(">= nb")}),
    Group("score_threshold", "heads", ("lowest", "between", "highest"), _score_threshold,
          steers={w: _score_threshold_steer(w) for w in ("lowest", "between", "highest")}),
    Group("block outcome", "heads", ("none pruned", "some pruned"), _blocks,
          steers={"none pruned": Steer("registers", lambda rng, ctx: dict(
                      head_prune_enable=False, block_prune_enable=True,
                      block_rule=BLOCK_RULE_DELTA, delta=(1 << ctx["config"].delta_bits) - 1)),
                  "some pruned": _fields(head_prune_enable=False, block_prune_enable=True,
                                         block_rule=BLOCK_RULE_DELTA, delta=0)}),
    Group("causal", "heads", ("off", "on"), lambda h: "on" if h.regs.causal else "off",
          steers={"off": _fields(causal=False), "on": _fields(causal=True)}),
    # (approx_enable of the builds with the approximation unit; the others ignore it)
    Group("approximation", "heads", ("off", "on"),
          lambda h: ("on" if h.regs.approx_enable else "off") if h.config.approximation else None,
          steers={v: Steer("registers", lambda rng, ctx, v=v: dict(approx_enable=v == "on")
                           if ctx["config"].approximation else None) for v in ("off", "on")}),
    Group("head pruning", "heads", ("off", "kept, threshold < HI", "kept, threshold = HI",
                                    "pruned, threshold = HI + 1", "pruned, threshold > HI + 1"),
          _head_pruning,
          steers={"off": _fields(head_prune_enable=False, head_threshold=0),
                  "kept, threshold < HI": _threshold_steer(-3, -1),
                  "kept, threshold = HI": _threshold_steer(0, 0),
                  "pruned, threshold = HI + 1": _threshold_steer(1, 1),
                  "pruned, threshold > HI + 1": _threshold_steer(2, 4)}),
    Group("bus stall", "heads", tuple(f"{s:g}" for s in STALLS),
          lambda h: None if h.stall is None else f"{h.stall:g}",
          steers={f"{s:g}": Steer("batch", lambda rng, ctx, s=s: {"stall": s}) for s in STALLS}),
    Group("error case", "error cases", tuple(c.name for c in _ERROR_CODES),
          lambda h: h.outcome.error.name if h.outcome.error else None,
          excluded={c.name: "random_error_case does not provoke it (yet)"
                    for c in _ERROR_CODES if c not in PROVOKED},
          steers={c.name: _error_steer(c) for c in _ERROR_CODES if c in PROVOKED}),
)

GROUPS = CONFIG_GROUPS + HEAD_GROUPS
#: Every steerable bin, by :func:`bin_id`.
STEERS: dict[str, Steer] = {bin_id(g.name, b): s for g in GROUPS for b, s in g.steers.items()}


def steer(want: Iterable[str], stage: str, rng: random.Random, **ctx) -> dict:
    """The overrides that steer one draw at ``stage`` into a wanted bin: with probability
    :data:`STEER_P`, those of a random wanted bin of that stage the config can hit;
    else (or when there is none) ``{}``. Draws from ``rng`` only when a wanted bin has
    this stage, so that with no wanted bin the plain draws are unchanged."""
    options = [STEERS[b] for b in want if b in STEERS and STEERS[b].stage == stage]
    if not options or rng.random() >= STEER_P:
        return {}
    rng.shuffle(options)
    for option in options:
        values = option.draw(rng, ctx)
        if values is not None:
            return values
    return {}


def config_bins(config: HDPConfig) -> set[str]:
    """The config bins ``config`` hits."""
    return {bin_id(g.name, b) for g in CONFIG_GROUPS for b in g.bins_of(config)}


# ---- the counts --------------------------------------------------------------------------

class Coverage:
    """Bin counts: ``counts[group][bin]``, and ``samples[of]``, the configs, heads and
    error cases sampled."""

    def __init__(self):
        self.counts: dict[str, Counter] = {g.name: Counter() for g in GROUPS}
        self.samples: Counter = Counter()

    def _sample(self, groups, sample) -> None:
        for g in groups:
            self.counts[g.name].update(g.bins_of(sample))

    def sample_config(self, config: HDPConfig) -> None:
        self.samples["configs"] += 1
        self._sample(CONFIG_GROUPS, config)

    def sample_head(self, config: HDPConfig, registers: Registers, kind: str, n: int, d: int,
                    outcome: Outcome, stall: float | None = None) -> None:
        """Count one head run and checked (and its error case, if it had one)."""
        self.samples["heads"] += 1
        self.samples["error cases"] += outcome.error != ErrorCode.NONE
        self._sample(HEAD_GROUPS, Head(config, registers, kind, n, d, outcome, stall))

    def merge(self, other: "Coverage") -> "Coverage":
        """Add ``other``'s counts to these; returns self."""
        for name, counts in other.counts.items():
            self.counts.setdefault(name, Counter()).update(counts)
        self.samples.update(other.samples)
        return self

    def count(self, bin_name: str) -> int:
        group, name = bin_name.split(":", 1)
        return self.counts.get(group, Counter())[name]

    def bins(self, of: str | None = None) -> list[str]:
        """Every bin not excluded (of groups counting ``of``, if given)."""
        return [bin_id(g.name, b) for g in GROUPS if of in (None, g.of)
                for b in g.bins if b not in g.excluded]

    def holes(self, of: str | None = None) -> list[str]:
        """The bins not excluded with no count, in group order."""
        return [b for b in self.bins(of) if not self.count(b)]

    @staticmethod
    def excluded() -> dict[str, str]:
        """The bins the regression cannot hit, with why."""
        return {bin_id(g.name, b): why for g in GROUPS for b, why in g.excluded.items()}

    # ---- JSON ----
    def to_dict(self) -> dict:
        """The non-zero counts: small enough for a log line."""
        return {"samples": dict(self.samples),
                "counts": {g: dict(c) for g, c in self.counts.items() if +c}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Coverage":
        cov = cls()
        cov.samples.update(data.get("samples", {}))
        for group, counts in data.get("counts", {}).items():
            cov.counts.setdefault(group, Counter()).update(counts)
        return cov

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Coverage":
        return cls.from_dict(json.loads(text))

    # ---- report ----
    def summary(self) -> str:
        """One line: bins hit of bins, overall and per kind of sample."""
        parts = []
        for of in ("configs", "heads", "error cases"):
            bins = self.bins(of)
            parts.append(f"{of} {len(bins) - len(self.holes(of))}/{len(bins)} "
                         f"({self.samples[of]} sampled)")
        bins = self.bins()
        return (f"coverage: {len(bins) - len(self.holes())} of {len(bins)} bins hit "
                f"({len(self.excluded())} excluded): " + ", ".join(parts))

    def report(self, title: str = "Functional coverage") -> str:
        """Markdown: the summary, a table of every bin and its count for configs, heads
        and error cases, then the holes and the excluded bins with why."""
        lines = [f"# {title}", "", self.summary(), ""]
        for of in ("configs", "heads", "error cases"):
            lines += [f"## Bins counting {of}", "", "| group | bin | count |",
                      "| --- | --- | --- |"]
            for g in (g for g in GROUPS if g.of == of):
                for b in g.bins:
                    count = "excluded" if b in g.excluded else self.counts[g.name][b]
                    lines.append(f"| {g.name} | {b} | {count} |")
            lines.append("")
        lines += ["## Holes", ""]
        for of, how in (("configs", "no config of the run hits them; --fill-configs adds "
                         "seeds whose configs do"),
                        ("heads", "the batches after the first are steered toward them"),
                        ("error cases", "the batches after the first are steered toward them")):
            holes = self.holes(of)
            lines += [f"{of.capitalize()}: " + (f"{len(holes)} ({how})" if holes else "none")]
            lines += [f"- {h}" for h in holes] + [""]
        lines += ["## Excluded", ""]
        lines += [f"- {b}: {why}" for b, why in self.excluded().items()]
        return "\n".join(lines) + "\n"
