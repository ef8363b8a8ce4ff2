"""Seeded random valid ``HDPConfig``s for the random-config regression.

``random_config(seed)`` draws every elaboration parameter the generator accepts, within
sizes that simulate in seconds; the same seed always gives the same config, so every
mismatch the regression reports can be reproduced from its seed alone.
"""
from __future__ import annotations

import random

from hdp_rtl.config import ConfigError, HDPConfig

__all__ = ["random_config", "random_registers"]


def _pow2_upto(rng: random.Random, hi: int, lo: int = 1) -> int:
    choices = [1 << i for i in range(hi.bit_length()) if lo <= 1 << i <= hi]
    return rng.choice(choices)


def _retired_draws(rng: random.Random) -> dict:
    """Two draws for the FIFO depths the config no longer has: made and dropped so that
    every seed still names the config it named before (docs/verification.md)."""
    _pow2_upto(rng, 16, 2), _pow2_upto(rng, 16, 2)
    return {}


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
                axis_elems=_pow2_upto(rng, head_dim),
                **_retired_draws(rng))
        except ConfigError:
            continue
    raise RuntimeError(f"no valid config drawn from seed {seed}")


def random_registers(rng: random.Random, config: HDPConfig, n: int, score_scale: int,
                     head_importance: int | None = None) -> dict:
    """Random run-time register fields for a head of ``n`` tokens."""
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
    return fields
