"""Seeded random valid ``HDPConfig``s for the random-config regression, and the heads,
registers and error cases it runs on them.

``random_config(seed)`` draws every elaboration parameter the generator accepts, within
sizes that simulate in seconds; the same seed always gives the same config, so every
mismatch the regression reports can be reproduced from its seed alone.

The head draws (:func:`random_stall`, :func:`random_head`, :func:`random_registers`,
:func:`random_error_case`) take ``want``, bins of :mod:`sim.coverage` to steer toward
(the holes of the coverage so far); with none wanted they draw exactly what they drew
before steering existed.
"""
from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np

from hdp_rtl.config import RHO_ONE, ConfigError, HDPConfig, Registers
from hdp_rtl.host import register_writes
from hdp_rtl.regmap import AXIL_ADDR_BITS, FLAG_FIELDS, ErrorCode, registers_by_name
from sim.coverage import KINDS, PROVOKED, STALLS, provokable, steer

__all__ = ["random_config", "random_registers", "random_stall", "random_head", "DrawnHead",
           "ErrorCase", "ERROR_CASE_P", "error_codes", "random_error_case"]


def _pow2_upto(rng: random.Random, hi: int, lo: int = 1) -> int:
    choices = [1 << i for i in range(hi.bit_length()) if lo <= 1 << i <= hi]
    return rng.choice(choices)


def _retired_draws(rng: random.Random) -> dict:
    """Two draws for the FIFO depths the config no longer has: made and dropped so that
    every seed still names the config it named before (docs/verification.md)."""
    _pow2_upto(rng, 16, 2), _pow2_upto(rng, 16, 2)
    return {}


#: How often a seed's config has the ``topk`` selector instead of ``hdp``.
TOPK_P = 0.25
#: How often it has the ``threshold`` selector (the top of the draw, so that the seeds
#: drawn before this selector existed keep theirs below it).
THRESHOLD_P = 0.15


def _selector(seed: int) -> str:
    """The selector of seed ``seed``'s config, from a stream of its own: every other
    field of every seed is what it was before the selector was drawn."""
    u = random.Random(f"{seed} selector").random()
    return "topk" if u < TOPK_P else "threshold" if u >= 1 - THRESHOLD_P else "hdp"


#: How often a seed's config builds the approximation unit (``HDPConfig.approximation``,
#: which no preset builds; before it was a field every config had the unit).
APPROXIMATION_P = 0.5


def _approximation(seed: int) -> bool:
    """Whether seed ``seed``'s config builds the approximation unit, from a stream of its
    own (like :func:`_selector`)."""
    return random.Random(f"{seed} approximation").random() < APPROXIMATION_P


def random_config(seed: int) -> HDPConfig:
    """A valid config drawn from ``seed`` (retries invalid draws deterministically)."""
    rng = random.Random(seed)
    for _ in range(1000):
        seq_max = rng.choice([rng.randint(2, 40), _pow2_upto(rng, 32, 4)])
        head_dim = _pow2_upto(rng, 32, 2)
        # at most 8 cycles a pair: 50 heads of a config simulate in a minute or two
        min_lanes = max(1, head_dim // 8)
        frac_bits = rng.randint(0, 6)
        prob_bits = rng.randint(6, 14)
        out_bits = rng.choice([12, 16, 20, 24])
        try:
            return HDPConfig(
                seq_max=seq_max, head_dim=head_dim, int_bits=rng.randint(2, 6),
                frac_bits=frac_bits,
                block_rows=_pow2_upto(rng, min(4, seq_max)),
                block_cols=_pow2_upto(rng, min(8, seq_max)),
                int_lanes=_pow2_upto(rng, head_dim, min_lanes),
                mac_lanes=_pow2_upto(rng, head_dim, min_lanes),
                exp_lut_bits=rng.randint(3, 7), exp_bits=rng.randint(6, 14),
                prob_bits=prob_bits, recip_guard_bits=rng.randint(0, 10),
                score_scale_bits=rng.randint(12, 24), score_scale_frac=rng.randint(16, 30),
                out_bits=out_bits,
                out_frac=rng.randint(0, min(out_bits - 1, frac_bits + prob_bits)),
                axis_elems=_pow2_upto(rng, head_dim), selector=_selector(seed),
                approximation=_approximation(seed),
                **_retired_draws(rng))
        except ConfigError:
            continue
    raise RuntimeError(f"no valid config drawn from seed {seed}")


def random_registers(rng: random.Random, config: HDPConfig, n: int, score_scale: int,
                     head_importance: int | None = None, want=()) -> dict:
    """Random run-time register fields for a head of ``n`` tokens, steered toward the
    ``want`` bins of stage ``"registers"`` (:func:`sim.coverage.steer`)."""
    fields = dict(
        seq_len=n, causal=rng.random() < 0.3,
        block_prune_enable=rng.random() < 0.8, block_rule=rng.randint(0, 1),
        rho=rng.choice([-256, 0, 256, rng.randint(-256, 256)]),
        delta=rng.choice([0, 1, rng.randint(0, 64), (1 << config.delta_bits) - 1]),
        approx_enable=rng.random() < 0.5, score_scale=score_scale,
        head_prune_enable=rng.random() < 0.2, head_threshold=0)
    if fields["head_prune_enable"] and head_importance is not None:
        # around the head's own importance, so both outcomes happen
        fields["head_threshold"] = max(0, head_importance + rng.randint(-2, 2))
    if config.selector == "topk":       # (drawn only here: hdp seeds draw what they drew)
        nb = -(-n // config.block_cols)            # the widest block row's valid blocks
        top = (1 << config.block_k_bits) - 1
        fields["block_k"] = rng.choice([1, rng.randint(1, nb), nb, rng.randint(nb, top)])
    if config.selector == "threshold":
        lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
        fields["score_threshold"] = rng.choice([lo, hi, 0, rng.randint(-8, 8),
                                                rng.randint(lo, hi)])
    fields.update(steer(want, "registers", rng, config=config, n=n,
                        head_importance=head_importance))
    return fields


def random_stall(rng: random.Random, want=()) -> float:
    """A batch's idle and back-pressure probability."""
    stall = rng.choice(STALLS)
    return steer(want, "batch", rng).get("stall", stall)


class DrawnHead(NamedTuple):
    """A random head: the data as the core computes it, its registers, its kind, and
    the head importance its head-pruning threshold was drawn around."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    regs: Registers
    kind: str
    head_importance: int


def random_head(rng: random.Random, nrng: np.random.Generator, config: HDPConfig,
                want=()) -> DrawnHead:
    """A random head of ``config``: ``n`` tokens of width ``d``, of a kind (normal,
    peaked, all zeros, saturated extremes, constant), with :func:`random_registers`;
    ``n``, ``d`` and the kind steered toward the ``want`` bins of stage ``"shape"``."""
    import golden                      # numpy-heavy: only the head draws need it

    cfg = config
    n = rng.choice([1, cfg.seq_max, rng.randint(1, cfg.seq_max)])
    d = rng.choice([cfg.head_dim, rng.randint(1, cfg.head_dim)])
    kind = rng.choice(list(KINDS))
    steered = steer(want, "shape", rng, config=cfg)
    n, d, kind = steered.get("n", n), steered.get("d", d), steered.get("kind", kind)
    xq, xk, xv = nrng.standard_normal((3, n, d))
    if kind == "peaked":
        xk = 2.5 * xq[nrng.permutation(n)] + 0.3 * xk
    try:
        q, k, v, regs, _ = golden.prepare_head(xq, xk, xv, cfg)
        scale = regs.score_scale
    except ConfigError:             # the scale does not fit this config's register
        q, k, v = (golden.quantize(x, cfg)[0] for x in (xq, xk, xv))
        scale = rng.randint(1, (1 << cfg.score_scale_bits) - 1)
    lo, hi = cfg.data_min, cfg.data_max
    if kind == "zeros":
        q, k, v = (np.zeros_like(x) for x in (q, k, v))
    elif kind == "extremes":
        q, k, v = (nrng.choice([lo, hi], size=x.shape) for x in (q, k, v))
    elif kind == "constant":
        q, k, v = (np.full_like(x, nrng.integers(lo, hi + 1)) for x in (q, k, v))
    importance = golden.attention_head(q, k, v, cfg, Registers(
        seq_len=n, score_scale=scale, block_prune_enable=False)).head_importance
    fields = random_registers(rng, cfg, n, scale, importance, want)
    return DrawnHead(q, k, v, Registers(**fields), kind, importance)


# ---- error cases -------------------------------------------------------------------------

#: How often a head comes with an error case when none is wanted.
ERROR_CASE_P = 0.1
WORD = 0xFFFF_FFFF


class ErrorCase(NamedTuple):
    """One error provoked around a head, and the code ``status`` must then show.

    Codes that refuse a start (:attr:`ErrorCode.refuses_start`) and ``BAD_ADDRESS``
    come before the head: ``value`` written to ``register`` (or to the byte offset
    ``address``), then a start. ``START_WHILE_BUSY`` is a second start while the head
    runs. ``INPUT_LANE``: V's element ``at`` = (row, column) sent in a lane holding
    ``value``, which is not the sign extension of its low B bits. ``INPUT_TLAST``:
    ``variant`` "early" (tlast after beat ``at[1]`` of tensor ``at[0]``, in
    ``INPUT_ORDER``) or "missing" (tensor ``at[0]`` sent with the next one as one
    packet). ``BLOCK_K_ZERO``: ``flags`` with block pruning on (``also``), then
    ``block_k`` 0."""

    code: ErrorCode
    register: str | None = None
    address: int | None = None
    value: int | None = None
    variant: str = ""
    at: tuple = ()
    #: ``(register, value)`` writes before ``register``'s (error 12: pruning on)
    also: tuple = ()

    @property
    def before_head(self) -> bool:
        return self.code not in (ErrorCode.START_WHILE_BUSY, ErrorCode.INPUT_LANE,
                                 ErrorCode.INPUT_TLAST)

    def __str__(self) -> str:
        where = (self.register or (f"0x{self.address:02X}" if self.address is not None else ""))
        what = f"{where} = 0x{self.value:08X}" if where else self.variant or ""
        if self.at:
            what += f" at {self.at}" + (f" lane 0x{self.value:X}" if self.value is not None else "")
        return f"error case {self.code.name}" + (f" ({what.strip()})" if what.strip() else "")


def error_codes(config: HDPConfig) -> list[ErrorCode]:
    """The error codes the regression provokes on ``config``: :data:`~sim.coverage.PROVOKED`
    but ``INPUT_LANE`` when an element fills its lane (every lane is a sign extension)
    and ``BLOCK_K_ZERO`` without the ``topk`` selector (no ``block_k``)."""
    return [c for c in sorted(PROVOKED) if provokable(c, config)]


def random_error_case(rng: random.Random, config: HDPConfig, n: int, d: int,
                      want=()) -> ErrorCase | None:
    """The error case of a head of ``n`` x ``d`` tokens, or None (most heads): one of
    :func:`error_codes` with probability :data:`ERROR_CASE_P`, or steered toward the
    ``want`` bins of stage ``"error"``."""
    code = steer(want, "error", rng, config=config).get("code")
    if code is None:
        if rng.random() >= ERROR_CASE_P:
            return None
        code = rng.choice(error_codes(config))
    return _error_case(rng, config, n, d, ErrorCode(code))


def _outside(rng: random.Random, mask: int) -> int:
    """A random bit outside ``mask``."""
    return 1 << rng.choice([b for b in range(32) if not mask >> b & 1])


def _error_case(rng: random.Random, config: HDPConfig, n: int, d: int,
                code: ErrorCode) -> ErrorCase:
    rmap = registers_by_name(config)
    if code == ErrorCode.SEQ_LEN_ZERO:
        return ErrorCase(code, "seq_len", value=0)
    if code == ErrorCode.SEQ_LEN_TOO_BIG:       # past seq_max, or a bit above the field
        mask = rmap["seq_len"].mask
        values = [config.seq_max + 1, rng.randint(config.seq_max + 1, WORD) & mask,
                  _outside(rng, mask) | rng.randint(1, config.seq_max)]
        # the field's bits not all 0 (seq_max + 1 = 2**k is 0 in a k-bit field): the
        # start checks would stop at SEQ_LEN_ZERO first
        values = [v for v in values if v & mask and (v > mask or v > config.seq_max)]
        return ErrorCase(code, "seq_len", value=rng.choice(values))
    if code == ErrorCode.FLAGS_RESERVED:
        value = _outside(rng, rmap["flags"].mask) | rng.getrandbits(len(FLAG_FIELDS))
        return ErrorCase(code, "flags", value=value)
    if code == ErrorCode.RHO_RANGE:
        rho = rng.choice([RHO_ONE + 1, -RHO_ONE - 1, rng.randint(RHO_ONE + 2, 2**31 - 1),
                          rng.randint(-2**31, -RHO_ONE - 2)])
        return ErrorCase(code, "rho", value=rho & WORD)
    if code == ErrorCode.FIELD_OVERFLOW:
        # a register the driver programs for every head (so the next head's programming
        # undoes the bad word) whose field leaves bits free
        programmed = {name for name, _, _ in register_writes(Registers(seq_len=1), config)}
        name = rng.choice([r.name for r in rmap.values() if r.name in programmed
                           and r.overflow_error == code and r.mask != WORD])
        mask = rmap[name].mask
        return ErrorCase(code, name, value=_outside(rng, mask) | rng.getrandbits(32) & mask)
    if code == ErrorCode.BAD_ADDRESS:           # read-only, or no register at all
        offsets = {r.offset: r for r in rmap.values()}
        read_only = [o for o, r in offsets.items() if r.access == "ro"]
        reserved = [o for o in range(0, 1 << AXIL_ADDR_BITS, 4) if o not in offsets]
        return ErrorCase(code, address=rng.choice([rng.choice(read_only), rng.choice(reserved)]),
                         value=rng.getrandbits(32))
    if code == ErrorCode.START_WHILE_BUSY:
        return ErrorCase(code)
    if code == ErrorCode.BLOCK_K_ZERO:          # 0 refuses only with pruning on
        flags = rmap["flags"]
        others = rng.getrandbits(len(FLAG_FIELDS)) & ~flags.field("block_prune_enable").mask
        return ErrorCase(code, "block_k", value=0,
                         also=(("flags", others | flags.word(block_prune_enable=1)),))
    if code == ErrorCode.INPUT_LANE:
        b, lane = config.data_bits, config.in_lane_bits
        low = rng.getrandbits(b)
        sign = ((1 << (lane - b)) - 1) if low >> (b - 1) else 0    # the lane's upper bits
        upper = rng.choice([u for u in range(1 << (lane - b)) if u != sign])
        return ErrorCase(code, value=upper << b | low, at=(rng.randrange(n), rng.randrange(d)))
    if code != ErrorCode.INPUT_TLAST:
        raise ValueError(f"no error case provokes {code!r}")
    beats = n * config.beats_per_row            # in a tensor of `beats` beats
    if beats > 1 and rng.random() < 0.5:
        return ErrorCase(code, variant="early", at=(rng.randrange(3), rng.randint(1, beats - 1)))
    return ErrorCase(code, variant="missing", at=(rng.randrange(2),))
