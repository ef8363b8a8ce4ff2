"""Elaboration parameters (:class:`HDPConfig`) and run-time registers (:class:`Registers`).

This module is the single source of every width and constant of the HDP co-processor:
the golden model, the RTL and the testbenches all read them from here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import widths as W

__all__ = ["HDPConfig", "Registers", "PRESETS", "ConfigError", "RHO_ONE", "RHO_BITS",
           "DEFAULT_LOGIT_GAP", "SELECTOR_NAMES"]

#: ``rho`` is a signed Q1.8 fraction: 256 means 1.0; -256..256 needs 10 signed bits.
RHO_ONE = 256
RHO_BITS = 10


class ConfigError(ValueError):
    """An invalid configuration or register value; the message names the field."""


#: The block-selection policies the generator can build (``HDPConfig.selector``): each
#: has an RTL unit behind the selection seam (``hdp_rtl.rtl.selectors``) and a golden
#: policy function (``golden.selectors``). ``"hdp"``: the top-k-free row-balanced rule;
#: ``"topk"``: SpAtten-style, the ``block_k`` most important blocks of each block row;
#: ``"threshold"``: LeOPArd-style, the blocks at or above the ``score_threshold``
#: register and each block row's best.
SELECTOR_NAMES = ("hdp", "topk", "threshold")


def _is_pow2(x: int) -> bool:
    return x >= 1 and (x & (x - 1)) == 0


def _check_int(obj, name: str, lo: int | None = None, hi: int | None = None,
               pow2: bool = False) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be >= {lo}, not {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be <= {hi}, not {value}")
    if pow2 and not _is_pow2(value):
        raise ConfigError(f"{name} must be a power of two, not {value}")


@dataclass(frozen=True)
class HDPConfig:
    """Every elaboration parameter of the co-processor, validated on construction.

    Parameters
    ----------
    seq_max : int
        Largest sequence length (tokens) one head may have; sizes the Q/K/V buffers.
    head_dim : int
        Head dimension ``d`` (power of two). Shorter real heads are zero-padded, which
        changes no result.
    int_bits, frac_bits : int
        ``I`` (sign included) and ``F``: Q, K and V are ``B = I + F``-bit signed fixed point.
    block_rows, block_cols : int
        Block shape ``Br x Bc`` of the block pruning (powers of two).
    int_lanes : int
        Parallel ``I x I`` multipliers of the integer score unit.
    mac_lanes : int
        MAC-array size: parallel multipliers for the scores of kept pairs and ``P x V``.
    exp_lut_bits : int
        Index bits of the exp2 fraction table (table size ``2**exp_lut_bits``).
    exp_bits : int
        Fraction bits of an exponential value (the row maximum maps to ``2**exp_bits``).
    prob_bits : int
        Fraction bits of a probability (1.0 is ``2**prob_bits``).
    recip_guard_bits : int
        Extra bits of the row reciprocal beyond ``prob_bits``.
    score_scale_bits, score_scale_frac : int
        Width and fraction bits of the unsigned ``score_scale`` register.
    out_bits, out_frac : int
        Output format: signed ``out_bits`` wide with ``out_frac`` fraction bits, in units
        of V's scale.
    axis_elems : int
        Elements per AXI4-Stream beat (a power of two dividing ``head_dim``): input
        beats carry that many Q/K/V elements in byte lanes, output beats that many
        outputs in 16- or 32-bit lanes.
    counter_bits : int
        Width of each performance counter (8..32): the counters count modulo
        ``2**counter_bits`` and their registers read them zero-extended to 32 bits.
        ``edge`` has 20: 2**20 cycles are 44 ms at 24 MHz, ten times its longest head
        (a dense 64-token head: ``n^2 d / int_lanes + 2 n^2 d / mac_lanes`` = 98304
        cycles of integer pass and MAC work, 98883 in all measured by ``sim.bench``);
        ``int_macs`` is at most ``n^2 d`` = 131072. Only ``heads_pruned`` (since reset)
        can wrap in normal use.
    perf_counters : bool
        Build the performance counters (``COUNTERS`` registers). Without them (``edge``:
        an iCE40 UP5K's logic cells run out) the counter registers read 0; the host's
        ``HeadRun.counters`` are then all 0. Changes no result.
    importance_report : bool
        Build the importance unit (SpAtten's key and output importances, registers
        ``key_importance`` and ``out_importance``). Without it (``edge``: it would take
        the UP5K to 97 % of its logic cells, where placement fails) those registers read
        0. Changes no result.
    progressive_report : bool
        Build the progressive-quantization flags (SpAtten's MSB pass, issue 12): the
        ``pq_threshold`` register and, after a head, a flag per row whose largest kept
        probability was below it (``pq_flags``, ``pq_count``;
        ``HDPDriver.run_progressive_head`` recomputes those rows at full precision).
        Without it (``edge``: the UP5K's logic cells are nearly all used) the four
        ``pq_*`` registers are not in the map. Changes no result.
    channel_pruning : bool
        Build the run-time channel mask of Q and K (issue 13): the ``channel_drop``
        register names how many of the ``head_dim`` channels, counted from the last,
        take no part in the scores of a head (the host moves the kept channels to the
        front, :meth:`hdp_rtl.host.HDPDriver.run_head`'s ``channel_mask``). The input
        unpacker stores the dropped channels of Q as 0, and the lane chunks after the
        last kept channel cost no cycle in the integer pass (chunks of ``int_lanes``)
        nor in the MAC array's score operations (chunks of ``mac_lanes``). Without it
        (``edge``: the UP5K's logic cells are nearly all used) the register is not in
        the map. Changes no result with every channel kept.
    selector : str
        The block-selection policy behind the selection seam: one of
        ``SELECTOR_NAMES`` (``"hdp"``: the top-k-free row-balanced rule; ``"topk"``:
        the ``block_k`` blocks of largest importance of each block row, with the
        ``block_k`` register; ``"threshold"``: the blocks whose importance is >= the
        ``score_threshold`` register, and each block row's best).
    pv_acc_ram : bool
        Keep the MAC array's ``head_dim`` P x V accumulators in block RAM (one word of
        ``mac_lanes`` accumulators per chunk) instead of flip-flops: for FPGAs whose
        flip-flops run out first (``edge``: 832 flip-flops for 7 iCE40 EBRs). Needs
        ``head_dim / mac_lanes >= 4``. Changes no result.
    out_row_buffers : int
        Output rows held between the MAC array and ``m_axis``, in the serializer's
        block RAM (1, 2 or 4): with 1, a row with few kept pairs waits for the previous
        row's beats; more cost RAM depth only. Changes no result.
    unbiased_selection : bool
        Score the integer pass with the selection score ``S_sel = sum_d (2 qi + 1) ki
        = 2 S_int + sum_d ki`` instead of ``S_int = sum_d qi ki`` (docs/algorithm.md,
        "Unbiased selection scores"): ``qi = q >> F`` is a floor, so the integer parts
        are biased by -1/2 and ``S_int`` mis-ranks keys; ``S_sel`` is, within a query
        row, an affine function of the score of the interval midpoints. Block and head
        importances, the ``delta``, ``score_threshold`` and ``head_threshold`` registers
        are then in ``S_sel`` units (a step is worth half a logit step of ``S_int``:
        :func:`delta_for`); the widths do not change (``widths.pair_score_max``). On in
        every preset: it costs a few LUTs (the head scorer of ``edge``: 370 -> 373
        iCE40 LUTs, docs/units.md). The scores of kept pairs do not change.
    approximation : bool
        Build the approximation unit: the ``approx_enable`` flag then drops ``qf.kf``
        from the scores of kept pairs (the spec's step 3). Off in every preset: a MAC
        lane's one multiplier computes the whole ``B x B`` product, the exact score, so
        the unit saves no area here; it costs an ``F x F`` product in LUTs a lane (35
        LUT4 on ECP5, 560 at ``default``) and loses fidelity (docs/evaluation.md).
        Without it ``approx_enable`` is ignored and every score is exact
        (:func:`golden.approximated`).
    """

    seq_max: int = 256
    head_dim: int = 64
    int_bits: int = 4
    frac_bits: int = 4
    block_rows: int = 1
    block_cols: int = 1
    int_lanes: int = 64
    mac_lanes: int = 16
    exp_lut_bits: int = 6
    exp_bits: int = 12
    prob_bits: int = 12
    recip_guard_bits: int = 10
    score_scale_bits: int = 20
    score_scale_frac: int = 26
    out_bits: int = 16
    out_frac: int = 10
    axis_elems: int = 8
    counter_bits: int = 32
    perf_counters: bool = True
    importance_report: bool = True
    progressive_report: bool = True
    channel_pruning: bool = True
    selector: str = "hdp"
    pv_acc_ram: bool = False
    out_row_buffers: int = 2
    unbiased_selection: bool = True
    approximation: bool = False

    def __post_init__(self):
        _check_int(self, "seq_max", 1, 4096)
        _check_int(self, "head_dim", 1, 512, pow2=True)
        _check_int(self, "int_bits", 2, 8)
        _check_int(self, "frac_bits", 0, 8)
        _check_int(self, "block_rows", 1, self.seq_max, pow2=True)
        _check_int(self, "block_cols", 1, self.seq_max, pow2=True)
        _check_int(self, "int_lanes", 1, self.head_dim, pow2=True)
        _check_int(self, "mac_lanes", 1, self.head_dim, pow2=True)
        _check_int(self, "exp_lut_bits", 1, 10)
        _check_int(self, "exp_bits", 4, 20)
        _check_int(self, "prob_bits", 4, 20)
        _check_int(self, "recip_guard_bits", 0, 24)
        _check_int(self, "score_scale_bits", 4, 32)
        _check_int(self, "score_scale_frac", 0, 40)
        _check_int(self, "out_bits", 4, 32)
        _check_int(self, "out_frac", 0, self.out_bits - 1)
        if self.out_frac > self.frac_bits + self.prob_bits:
            raise ConfigError(
                f"out_frac must be <= frac_bits + prob_bits = "
                f"{self.frac_bits + self.prob_bits}, not {self.out_frac}")
        _check_int(self, "axis_elems", 1, self.head_dim, pow2=True)
        _check_int(self, "counter_bits", 8, 32)
        for name in ("perf_counters", "importance_report", "progressive_report",
                     "channel_pruning", "unbiased_selection", "approximation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if not isinstance(self.pv_acc_ram, bool):
            raise ConfigError(f"pv_acc_ram must be true or false, not {self.pv_acc_ram!r}")
        # (the MAC array's read-modify-write needs 3 chunks, mac_array.ACC_RAM_MIN_CHUNKS;
        # chunk counts are powers of two)
        if self.pv_acc_ram and self.head_dim // self.mac_lanes < 4:
            raise ConfigError(f"pv_acc_ram needs head_dim / mac_lanes >= 4, not "
                              f"{self.head_dim // self.mac_lanes}")
        _check_int(self, "out_row_buffers", 1, 4, pow2=True)
        if self.selector not in SELECTOR_NAMES:
            raise ConfigError(f"selector must be one of {', '.join(SELECTOR_NAMES)}, "
                              f"not {self.selector!r}")
        # The golden model computes in int64: keep every intermediate below 2**62.
        if self.softmax_product_bits > 62 or self.pv_acc_bits > 62:
            raise ConfigError(
                f"score_scale_bits + score width is {self.softmax_product_bits} bits and "
                f"the P x V accumulator {self.pv_acc_bits} bits; both must be <= 62")

    # ---- derived widths (hdp_rtl.widths computes each once) ---------------------------
    @property
    def data_bits(self) -> int:
        """``B = I + F``, the width of one Q/K/V element."""
        return self.int_bits + self.frac_bits

    @property
    def data_min(self) -> int:
        """Smallest Q/K/V element value (two's complement, ``B`` bits)."""
        return W.data_range(self.data_bits)[0]

    @property
    def data_max(self) -> int:
        """Largest Q/K/V element value."""
        return W.data_range(self.data_bits)[1]

    @property
    def seq_bits(self) -> int:
        """Width of a token index 0..seq_max-1."""
        return W.index_bits(self.seq_max)

    @property
    def seq_len_bits(self) -> int:
        """Width of the ``seq_len`` register (holds 0..seq_max)."""
        return W.bits_for(self.seq_max)

    @property
    def dim_bits(self) -> int:
        return W.index_bits(self.head_dim)

    @property
    def sint_bits(self) -> int:
        """Signed width of the integer pass's pair score and of a block importance:
        ``S_int`` (sum of ``d`` products of two I-bit numbers), or ``S_sel`` with
        ``unbiased_selection``."""
        return W.sint_bits(int_bits=self.int_bits, head_dim=self.head_dim,
                           unbiased=self.unbiased_selection)

    @property
    def score_bits(self) -> int:
        """Signed width of the full score ``S`` (sum of ``d`` products of B-bit numbers)."""
        return W.score_bits(data_bits=self.data_bits, head_dim=self.head_dim)

    @property
    def block_row_bits(self) -> int:
        """Width of a block-row index."""
        return W.index_bits(self.block_row_count)

    @property
    def block_col_bits(self) -> int:
        """Width of a block-column index."""
        return W.index_bits(self.block_col_count)

    @property
    def rho_bits(self) -> int:
        """Signed width of the ``rho`` register (-256..256, Q1.8)."""
        return RHO_BITS

    @property
    def block_row_count(self) -> int:
        return W.ceil_div(self.seq_max, self.block_rows)

    @property
    def block_col_count(self) -> int:
        return W.ceil_div(self.seq_max, self.block_cols)

    @property
    def block_k_bits(self) -> int:
        """Width of the ``block_k`` register (selector ``topk``): holds 0..block_col_count."""
        return W.bits_for(self.block_col_count)

    @property
    def hi_bits(self) -> int:
        """Unsigned width of the head importance (sum of the pair score's magnitude,
        ``|S_int|`` or ``|S_sel|``, over seq_max**2 pairs)."""
        return W.hi_bits(int_bits=self.int_bits, head_dim=self.head_dim, seq_max=self.seq_max,
                         unbiased=self.unbiased_selection)

    @property
    def delta_bits(self) -> int:
        """Unsigned width of the ``delta`` register (a difference of pair scores)."""
        return W.delta_bits(int_bits=self.int_bits, head_dim=self.head_dim,
                            unbiased=self.unbiased_selection)

    @property
    def softmax_product_bits(self) -> int:
        """Width of ``(row_max - S) * score_scale`` (both unsigned)."""
        return self.score_bits + 1 + self.score_scale_bits

    @property
    def exp_value_bits(self) -> int:
        """Unsigned width of one exponential (its maximum is ``2**exp_bits``)."""
        return self.exp_bits + 1

    @property
    def exp_sum_bits(self) -> int:
        """Unsigned width of a row's sum of exponentials."""
        return W.exp_sum_bits(seq_max=self.seq_max, exp_bits=self.exp_bits)

    @property
    def recip_shift(self) -> int:
        """The reciprocal is ``floor(2**recip_shift / sum)``."""
        return self.exp_bits + self.prob_bits + self.recip_guard_bits

    @property
    def recip_bits(self) -> int:
        """Unsigned width of the reciprocal (its maximum is ``2**(prob_bits+guard)``)."""
        return W.recip_bits(prob_bits=self.prob_bits, recip_guard_bits=self.recip_guard_bits)

    @property
    def prob_value_bits(self) -> int:
        """Unsigned width of a probability (its maximum is ``2**prob_bits``)."""
        return self.prob_bits + 1

    @property
    def pv_acc_bits(self) -> int:
        """Signed width of the ``P x V`` accumulator."""
        return W.pv_acc_bits(prob_bits=self.prob_bits, data_bits=self.data_bits,
                             seq_max=self.seq_max)

    @property
    def out_shift(self) -> int:
        """Right shift from the ``P x V`` accumulator to the output format."""
        return W.out_shift(frac_bits=self.frac_bits, prob_bits=self.prob_bits,
                           out_frac=self.out_frac)

    @property
    def in_lane_bits(self) -> int:
        """Bits of one element's byte lane in an input beat (8 or 16)."""
        return W.lane_bits(self.data_bits, lanes=(8, 16))

    @property
    def out_lane_bits(self) -> int:
        """Bits of one output's lane in an output beat (16 or 32)."""
        return W.lane_bits(self.out_bits, lanes=(16, 32))

    @property
    def s_axis_bits(self) -> int:
        return self.axis_elems * self.in_lane_bits

    @property
    def m_axis_bits(self) -> int:
        return self.axis_elems * self.out_lane_bits

    @property
    def beats_per_row(self) -> int:
        """AXI4-Stream beats per Q/K/V or output row."""
        return self.head_dim // self.axis_elems

    @property
    def row_word_elems(self) -> int:
        """Elements in one word of the Q, K and V row buffers: the widest chunk of a row
        any unit reads or writes in a cycle (``int_lanes``, ``mac_lanes`` or
        ``axis_elems``). A row is ``head_dim / row_word_elems`` words; narrow words
        fill block RAMs in depth rather than width (the ``edge`` preset's 256-bit rows
        would take 16 16-bit-wide iCE40 EBRs a buffer, a quarter of each used)."""
        return max(self.int_lanes, self.mac_lanes, self.axis_elems)

    @property
    def row_words(self) -> int:
        """Words per row in the Q, K and V row buffers."""
        return self.head_dim // self.row_word_elems

    # ---- presets and files ----------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "HDPConfig":
        """A named preset: ``default``, ``edge`` (fits an iCE40 UP5K), ``wide`` (every lane of
        a 64-dim head, for the ECP5-85F) or ``server``."""
        try:
            return cls(**PRESETS[name])
        except KeyError:
            raise ConfigError(
                f"preset must be one of {', '.join(sorted(PRESETS))}, not {name!r}") from None

    def replace(self, **changes) -> "HDPConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HDPConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}")
        return cls(**data)

    def digest(self) -> str:
        """A short hash that names this exact configuration."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        """Write as ``.json`` or ``.toml`` (chosen by the suffix)."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        elif path.suffix == ".toml":
            path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in self.to_dict().items()))
        else:
            raise ConfigError(f"config file must end in .json or .toml, not {path.name!r}")

    @classmethod
    def load(cls, path: str | Path) -> "HDPConfig":
        path = Path(path)
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            raise ConfigError(f"config file must end in .json or .toml, not {path.name!r}")
        return cls.from_dict(data)


PRESETS: dict[str, dict] = {
    # BERT-like heads up to 256 tokens; element-wise (1x1) blocks with the delta rule at
    # DEFAULT_LOGIT_GAP on unbiased selection scores: the setting the MiniLM evaluation
    # chose (docs/evaluation.md).
    "default": {},
    # Fits an iCE40 UP5K (5280 logic cells, 8 DSPs, 30 EBR) at 24 MHz: 64 tokens of 32
    # dims on 2 lanes, 2 elements a beat, no performance counters, no importance
    # report, no progressive-quantization flags and no channel mask (docs/fpga.md).
    "edge": dict(seq_max=64, head_dim=32, block_rows=1, block_cols=4,
                 int_lanes=2, mac_lanes=2, exp_bits=10, prob_bits=10, counter_bits=20,
                 recip_guard_bits=8, axis_elems=2, pv_acc_ram=True, perf_counters=False,
                 importance_report=False, progressive_report=False, channel_pruning=False),
    # The default's heads on every lane a 64-dim head has: a score or P x V product of
    # all 64 dims a cycle (the MAC array 4x the default's), for the ECP5-85F (issue 11's
    # stretch goal: faster than NumPy on the host). It fits (33.9 %, 74 DSP) and routes
    # at 86.08 MHz, not yet 100 (docs/fpga.md).
    "wide": dict(mac_lanes=64),
    # Long sequences and wide heads.
    "server": dict(seq_max=1024, head_dim=128, block_rows=1, block_cols=8,
                   int_lanes=64, mac_lanes=64, exp_lut_bits=7, exp_bits=14,
                   prob_bits=14, recip_guard_bits=12, out_bits=20, out_frac=14, axis_elems=16),
}


# ---- run-time registers --------------------------------------------------------------

BLOCK_RULE_MEAN = 0
BLOCK_RULE_DELTA = 1

#: The logit gap the host turns into ``delta`` (``delta_for``) by default: blocks whose
#: best pair trails the row's best by more than 4.5 (probability ratio e^-4.5) are
#: pruned; chosen on all-MiniLM-L6-v2 with unbiased selection scores, out of sample
#: (docs/evaluation.md). It was 5 with the floored ``S_int``.
DEFAULT_LOGIT_GAP = 4.5


@dataclass(frozen=True)
class Registers:
    """The run-time registers of one head, as the host writes them.

    Parameters
    ----------
    seq_len : int
        Tokens in this head, 1..seq_max.
    causal : bool
        Only pairs with ``c <= r`` are valid.
    head_prune_enable : bool
        Prune the head when its importance is below ``head_threshold``.
    head_threshold : int
        Unsigned head-importance threshold, in the units of the head importance (the
        sum of ``|S_int|``, or of ``|S_sel|`` with ``unbiased_selection``, over the
        valid pairs).
    block_prune_enable : bool
        Prune blocks by ``block_rule``; off keeps every valid block.
    block_rule : int
        0: keep ``BI >= rho*max + (1-rho)*mean``; 1: keep ``BI >= max - delta``.
    rho : int
        Signed Q1.8 fraction, -256..256, for the mean rule.
    delta : int
        Unsigned margin for the delta rule, in the units of the block importance
        (``S_int``, or ``S_sel`` with ``unbiased_selection``: :func:`delta_for`).
    approx_enable : bool
        Drop the ``qf*kf`` term of the scores of kept pairs; only in builds with the
        approximation unit (``HDPConfig.approximation``), ignored by the others.
    score_scale : int
        Unsigned fixed-point factor (``score_scale_frac`` fraction bits) from a score
        step to a step of ``log2`` of the unnormalised probability.
    block_k : int
        Selector ``topk`` only: blocks kept in each block row (the ``block_k`` of
        largest importance; any value >= the row's valid blocks keeps them all). With
        block pruning enabled it must be >= 1 (the core refuses a start with 0, error
        12); the other selectors ignore it.
    score_threshold : int
        Selector ``threshold`` only: signed, in the block importance's units
        (``S_int``, or ``S_sel`` with ``unbiased_selection``): a block row keeps its
        valid blocks with ``BI >= score_threshold`` and always its best one (the lowest
        column of the row's maximum). It must fit ``sint_bits`` signed bits; the other
        selectors ignore it.
    pq_threshold : int
        Builds with ``progressive_report`` only: an unsigned probability code
        (``prob_bits`` fraction bits, ``2**prob_bits`` is 1.0); the core flags each row
        with a kept pair whose largest probability is strictly below it
        (:func:`golden.spatten.progressive_rows`). 0 flags no row, anything above
        ``2**prob_bits`` every row with a kept pair. It must fit ``prob_bits + 1``
        bits; it changes no result, and builds without the flags ignore it.
    """

    seq_len: int
    causal: bool = False
    head_prune_enable: bool = False
    head_threshold: int = 0
    block_prune_enable: bool = True
    block_rule: int = BLOCK_RULE_DELTA
    rho: int = 0
    delta: int = 8
    approx_enable: bool = False
    score_scale: int = 0
    block_k: int = 4
    score_threshold: int = 0
    pq_threshold: int = 0

    def __post_init__(self):
        for name in ("causal", "head_prune_enable", "block_prune_enable", "approx_enable"):
            if not isinstance(getattr(self, name), (bool, int)) or getattr(self, name) not in (0, 1):
                raise ConfigError(f"{name} must be 0 or 1, not {getattr(self, name)!r}")
        _check_int(self, "seq_len", 1)
        _check_int(self, "head_threshold", 0)
        _check_int(self, "block_rule", 0, 1)
        _check_int(self, "rho", -256, 256)
        _check_int(self, "delta", 0)
        _check_int(self, "score_scale", 0)
        _check_int(self, "block_k", 0)
        _check_int(self, "score_threshold")
        _check_int(self, "pq_threshold", 0)

    def check(self, config: HDPConfig) -> "Registers":
        """Raise :class:`ConfigError` when a value does not fit ``config``'s registers."""
        if self.seq_len > config.seq_max:
            raise ConfigError(f"seq_len must be <= seq_max = {config.seq_max}, not {self.seq_len}")
        for name, bits in (("head_threshold", config.hi_bits), ("delta", config.delta_bits),
                           ("score_scale", config.score_scale_bits)):
            if getattr(self, name) >= 1 << bits:
                raise ConfigError(f"{name} must fit in {bits} bits, not {getattr(self, name)}")
        if config.selector == "topk" and self.block_prune_enable and self.block_k == 0:
            raise ConfigError("block_k must be >= 1 with block pruning enabled, not 0")
        lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
        if config.selector == "threshold" and not lo <= self.score_threshold <= hi:
            raise ConfigError(f"score_threshold must fit in {config.sint_bits} signed bits "
                              f"({lo}..{hi}), not {self.score_threshold}")
        if config.progressive_report and self.pq_threshold >> (config.prob_bits + 1):
            raise ConfigError(f"pq_threshold must fit in prob_bits + 1 = {config.prob_bits + 1} "
                              f"bits, not {self.pq_threshold}")
        return self

    def replace(self, **changes) -> "Registers":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: int(v) for k, v in dataclasses.asdict(self).items()}


def score_scale_for(config: HDPConfig, q_exp: int, k_exp: int, head_dim: int | None = None) -> int:
    """The ``score_scale`` register for Q and K scaled by ``2**q_exp`` and ``2**k_exp``.

    One step of the full score ``S`` is worth ``2**(q_exp + k_exp - 2F)`` of ``q.k``; the
    softmax logit is ``q.k / sqrt(d)`` and the hardware works in ``log2``, so a score step
    is ``2**(q_exp+k_exp-2F) * log2(e) / sqrt(d)`` of ``log2`` probability. ``head_dim``
    is the model's real head dimension (defaults to the config's).
    """
    d = head_dim or config.head_dim
    real = 2.0 ** (q_exp + k_exp - 2 * config.frac_bits) * math.log2(math.e) / math.sqrt(d)
    value = round(real * 2 ** config.score_scale_frac)
    if value >= 1 << config.score_scale_bits:
        raise ConfigError(
            f"score_scale {real:.3g} needs more than score_scale_bits = {config.score_scale_bits}"
            f" bits at score_scale_frac = {config.score_scale_frac}; scale the inputs down")
    if value == 0:
        raise ConfigError(
            f"score_scale {real:.3g} rounds to 0 at score_scale_frac = {config.score_scale_frac}")
    return value


def delta_for(config: HDPConfig, logit_gap: float, q_exp: int, k_exp: int,
              head_dim: int | None = None) -> int:
    """The ``delta`` register that prunes blocks whose best pair trails the row's best
    by more than ``logit_gap`` in natural-log units (probability ratio ``exp(-gap)``).

    One ``S_int`` step is worth ``2**(q_exp + k_exp) / sqrt(d)`` of logit. With
    ``unbiased_selection`` the block importances are ``S_sel = sum_d (2 qi + 1) ki``,
    which is ``2 S_mid`` less a term constant in a query row (``S_mid``: the score of
    the integer parts' interval midpoints ``qi + 1/2``, ``ki + 1/2``, on ``S_int``'s
    scale), so a step of ``S_sel`` is worth half that.
    """
    d = head_dim or config.head_dim
    unit = 2.0 ** (q_exp + k_exp) / math.sqrt(d)
    if config.unbiased_selection:
        unit /= 2
    value = math.ceil(logit_gap / unit)
    return min(max(value, 0), (1 << config.delta_bits) - 1)
