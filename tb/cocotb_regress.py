"""Random heads with random registers on one random config (driven by sim/regress.py).

HDP_SEED names the config (``sim.random_configs.random_config``) and seeds the heads;
HDP_HEADS heads run back to back under random idle and back-pressure, each checked
word for word and counter for counter against the golden model. HDP_FIRST_HEAD (default
0) numbers the first of them: the regression runs a seed's heads in batches, each its
own random stream drawn from the seed and its first head. A failure names the seed and
the head; the seed, the first head and the head count are all it takes to reproduce it.
"""
import random

import cocotb
import numpy as np

import golden
from hdp_host import HDPHost
from hdp_rtl.config import ConfigError, Registers
from sim.random_configs import random_config, random_registers
from streams import env_json, past_time_zero, start_clock_and_reset

SEED = int(env_json("HDP_SEED", 0))
HEADS = int(env_json("HDP_HEADS", 10))
FIRST_HEAD = int(env_json("HDP_FIRST_HEAD", 0))
CONFIG = random_config(SEED)


def _random_streams(seed: int, first_head: int) -> tuple[random.Random, np.random.Generator, int]:
    """The batch's Python and NumPy generators and the bus's seed. The batch from head 0
    draws from the seed alone, as every run did before batches (the same heads as then);
    a later batch from the seed and its first head, so that batches draw different heads."""
    if first_head == 0:
        return random.Random(seed * 7919 + 1), np.random.default_rng(seed), seed
    rng = random.Random(f"regress seed {seed} first head {first_head}")
    return rng, np.random.default_rng([seed, first_head]), rng.getrandbits(32)


def _random_head(rng: random.Random, nrng: np.random.Generator):
    cfg = CONFIG
    n = rng.choice([1, cfg.seq_max, rng.randint(1, cfg.seq_max)])
    d = rng.choice([cfg.head_dim, rng.randint(1, cfg.head_dim)])
    kind = rng.choice(["normal", "peaked", "zeros", "extremes", "constant"])
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
    hi_val = golden.attention_head(q, k, v, cfg, Registers(seq_len=n, score_scale=scale,
                                                            block_prune_enable=False)).head_importance
    fields = random_registers(rng, cfg, n, scale, hi_val)
    return q, k, v, Registers(**fields), kind


@cocotb.test()
async def random_config_heads(dut):
    """HDP_HEADS random heads, from head HDP_FIRST_HEAD on, on the config of HDP_SEED."""
    await past_time_zero()
    rng, nrng, bus_seed = _random_streams(SEED, FIRST_HEAD)
    stall = rng.choice([0.0, 0.2, 0.5])
    host = HDPHost(dut, CONFIG, idle=stall, backpressure=stall, seed=bus_seed)
    await start_clock_and_reset(dut)
    await host.driver.read_config_hash()      # the Verilog is this seed's config
    dut._log.info("seed %d, heads %d to %d: %s", SEED, FIRST_HEAD, FIRST_HEAD + HEADS - 1,
                  CONFIG)
    for i in range(FIRST_HEAD, FIRST_HEAD + HEADS):
        q, k, v, regs, kind = _random_head(rng, nrng)
        await host.check_head(q, k, v, regs, label=f"seed {SEED} head {i} ({kind}, {regs})")
