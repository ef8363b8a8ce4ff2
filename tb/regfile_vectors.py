"""Register words and start-check sequences for the register file's tests, made from the
register map (:mod:`hdp_rtl.regmap`); shared by the amaranth.sim tests
(``tests/units/test_regfile.py``) and the cocotb run (``tb/cocotb_regfile.py``)."""
from __future__ import annotations

import random

from hdp_rtl.config import RHO_ONE, HDPConfig, Registers
from hdp_rtl.regmap import FLAG_FIELDS, ErrorCode, registers_by_name

__all__ = ["WORD", "RESERVED", "register_words", "run_fields", "random_registers",
           "start_check_steps", "outside_bit"]

#: Every bit of a register word.
WORD = 0xFFFF_FFFF
#: A word address with no register (below the counters), in every config.
RESERVED = 0x3C
assert all(r.offset != RESERVED for r in registers_by_name(HDPConfig.preset("server")).values())


def register_words(config: HDPConfig, regs: Registers, channel_drop: int = 0) -> dict[str, int]:
    """The word a host writes into each writable register for ``regs`` (and
    ``channel_drop`` when the config has it)."""
    rmap = registers_by_name(config)
    low = rmap["head_threshold"].field("head_threshold").width
    hi = rmap["head_threshold_hi"]
    return {
        "seq_len": rmap["seq_len"].word(seq_len=regs.seq_len),
        "flags": rmap["flags"].word(**{f: int(getattr(regs, f)) for f in FLAG_FIELDS}),
        "head_threshold": rmap["head_threshold"].word(head_threshold=regs.head_threshold),
        "head_threshold_hi": hi.word(head_threshold_hi=regs.head_threshold >> low)
        if hi.fields else 0,
        "rho": rmap["rho"].word(rho=regs.rho),
        "delta": rmap["delta"].word(delta=regs.delta),
        "score_scale": rmap["score_scale"].word(score_scale=regs.score_scale),
        **({"block_k": rmap["block_k"].word(block_k=regs.block_k)} if "block_k" in rmap else {}),
        **({"score_threshold": rmap["score_threshold"].word(score_threshold=regs.score_threshold)}
           if "score_threshold" in rmap else {}),
        **({"pq_threshold": rmap["pq_threshold"].word(pq_threshold=regs.pq_threshold)}
           if "pq_threshold" in rmap else {}),
        **({"channel_drop": rmap["channel_drop"].word(channel_drop=channel_drop)}
           if "channel_drop" in rmap else {}),
    }


def run_fields(regs: Registers, config: HDPConfig, channel_drop: int = 0) -> dict:
    """The register file's ``run`` struct (as :func:`sim.packing.unpack` gives it) after
    an accepted start with ``regs`` (``block_k``, ``score_threshold``, ``pq_threshold``
    when ``config``'s map has them)."""
    rmap = registers_by_name(config)
    return {"seq_len": regs.seq_len, "flags": {f: int(getattr(regs, f)) for f in FLAG_FIELDS},
            "head_threshold": regs.head_threshold, "rho": regs.rho, "delta": regs.delta,
            "score_scale": regs.score_scale,
            **({"block_k": regs.block_k} if "block_k" in rmap else {}),
            **({"score_threshold": regs.score_threshold} if "score_threshold" in rmap else {}),
            **({"pq_threshold": regs.pq_threshold} if "pq_threshold" in rmap else {}),
            **({"channel_drop": channel_drop} if "channel_drop" in rmap else {})}


def random_registers(config: HDPConfig, rng: random.Random) -> Registers:
    """Registers with every field drawn at random over its whole valid range
    (``block_k``, ``score_threshold`` and ``pq_threshold`` over their fields when the
    config has the register, else the default)."""
    regs = Registers(
        seq_len=rng.randint(1, config.seq_max),
        **{f: rng.random() < 0.5 for f in FLAG_FIELDS if f != "block_rule"},
        block_rule=rng.randint(0, 1),
        head_threshold=rng.getrandbits(config.hi_bits),
        rho=rng.randint(-RHO_ONE, RHO_ONE),
        delta=rng.getrandbits(config.delta_bits),
        score_scale=rng.getrandbits(config.score_scale_bits))
    if "block_k" in registers_by_name(config):
        lowest = int(regs.block_prune_enable)          # 0 refuses the start with pruning on
        regs = regs.replace(block_k=rng.randint(lowest, (1 << config.block_k_bits) - 1))
    if "score_threshold" in registers_by_name(config):
        half = 1 << (config.sint_bits - 1)
        regs = regs.replace(score_threshold=rng.choice([-half, half - 1, rng.randrange(-half, half)]))
    if "pq_threshold" in registers_by_name(config):
        regs = regs.replace(pq_threshold=rng.getrandbits(config.prob_bits + 1))
    return regs


def outside_bit(config: HDPConfig, name: str) -> int:
    """The lowest bit of register ``name`` that holds no field."""
    mask = registers_by_name(config)[name].mask
    return (~mask & (mask + 1)) if mask != WORD else 0


def start_check_steps(config: HDPConfig) -> list[tuple[dict[str, int], ErrorCode]]:
    """Register writes, each followed by a start, and the error that start raises
    (``NONE``: the start is accepted): every check failing at first, then fixed one at a
    time, so each start shows the lowest failing code."""
    rmap = registers_by_name(config)
    seq_field = rmap["seq_len"].field("seq_len")
    assert config.seq_max + 1 < 1 << seq_field.width, "seq_max + 1 must fit the field"
    all_flags = rmap["flags"].mask
    fit_delta = (1 << config.delta_bits) - 1
    first = {"seq_len": 0, "flags": outside_bit(config, "flags"), "rho": (RHO_ONE + 44) & WORD,
             "delta": outside_bit(config, "delta")}
    if "score_threshold" in rmap:
        # -1 sign-extended to 32 bits sets the bits above the field (error 6), the
        # field's own two's complement of -1 does not
        field = rmap["score_threshold"].field("score_threshold")
        return [
            ({**first, "score_threshold": WORD}, ErrorCode.SEQ_LEN_ZERO),
            *_common_steps(config, all_flags),
            ({"delta": fit_delta}, ErrorCode.FIELD_OVERFLOW),     # score_threshold's bits
            ({"score_threshold": field.put(-1)}, ErrorCode.NONE),
            ({"rho": RHO_ONE, "flags": 0, "score_threshold": field.put(-(1 << (field.width - 1)))},
             ErrorCode.NONE),
            ({"seq_len": 1, "score_threshold": 1 << field.width}, ErrorCode.FIELD_OVERFLOW),
            ({"score_threshold": field.put((1 << (field.width - 1)) - 1)}, ErrorCode.NONE),
        ]
    if "block_k" not in rmap:
        return [
            (first, ErrorCode.SEQ_LEN_ZERO),
            *_common_steps(config, all_flags),
            ({"delta": fit_delta}, ErrorCode.NONE),
            ({"rho": RHO_ONE, "flags": 0}, ErrorCode.NONE),
            ({"seq_len": 1}, ErrorCode.NONE),
        ]
    # block_k: 0 with a bit above its field (errors 6 and 12 pending), then each fixed
    prune = rmap["flags"].word(block_prune_enable=1)
    top_k = (1 << config.block_k_bits) - 1
    return [
        ({**first, "block_k": outside_bit(config, "block_k")}, ErrorCode.SEQ_LEN_ZERO),
        *_common_steps(config, all_flags),
        ({"delta": fit_delta}, ErrorCode.FIELD_OVERFLOW),         # block_k's bit is left
        ({"block_k": 0}, ErrorCode.BLOCK_K_ZERO),                 # pruning on (all flags)
        ({"flags": all_flags & ~prune}, ErrorCode.NONE),          # off: k is not read
        ({"rho": RHO_ONE, "flags": prune}, ErrorCode.BLOCK_K_ZERO),
        ({"block_k": 1}, ErrorCode.NONE),
        ({"block_k": top_k, "seq_len": 1}, ErrorCode.NONE),       # above block_col_count
        ({"block_k": 0, "flags": 0}, ErrorCode.NONE),
    ]


def _common_steps(config: HDPConfig, all_flags: int) -> list:
    """The steps from seq_len's errors to the field overflow of ``delta``."""
    return [
        ({"seq_len": config.seq_max + 1}, ErrorCode.SEQ_LEN_TOO_BIG),
        ({"seq_len": config.seq_max}, ErrorCode.FLAGS_RESERVED),
        ({"flags": all_flags}, ErrorCode.RHO_RANGE),
        ({"rho": -(RHO_ONE + 1) & WORD}, ErrorCode.RHO_RANGE),
        ({"rho": RHO_ONE + 1}, ErrorCode.RHO_RANGE),
        ({"rho": 0x8000_0000}, ErrorCode.RHO_RANGE),
        ({"rho": -RHO_ONE & WORD}, ErrorCode.FIELD_OVERFLOW),
    ]
