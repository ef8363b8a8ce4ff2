"""Importance unit: each key's summed probability (read-add-write with forwarding, any
column order, a probability every cycle or with gaps) and the head's output magnitude,
against the golden functions, over several heads (the start's sweep clears the sums)."""
import random

import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.importance import ImportanceUnit
from tb.importance_events import random_head
from cases import run_unit_verilog
from unit_sim import run_sim

CONFIGS = {"edge": HDPConfig.preset("edge"), "default": HDPConfig.preset("default")}


@pytest.mark.parametrize("gap", [0.0, 0.5], ids=["every-cycle", "gaps"])
@pytest.mark.parametrize("name", CONFIGS)
def test_importances_match_golden(name, gap):
    config = CONFIGS[name]
    rng = random.Random(f"{name}{gap}")
    dut = ImportanceUnit.from_config(config)

    async def bench(ctx):
        for head in range(3):
            n = rng.choice([1, 2, config.seq_max, rng.randint(1, config.seq_max)])
            events, keys, out_imp = random_head(config, rng, n, gap)
            ctx.set(dut.busy, 1)
            ctx.set(dut.seq_len, n)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().repeat(n)         # the sweep (the core's K load)
            for prob, chunk in events:
                ctx.set(dut.prob_valid, prob is not None)
                if prob is not None:
                    ctx.set(dut.prob_col, prob[0])
                    ctx.set(dut.prob, prob[1])
                ctx.set(dut.chunk_valid, chunk is not None)
                if chunk is not None:
                    for lane, v in enumerate(chunk):
                        ctx.set(dut.chunk_out[lane], v)
                await ctx.tick()
            ctx.set(dut.prob_valid, 0)
            ctx.set(dut.chunk_valid, 0)
            await ctx.tick().repeat(dut.out_latency())
            assert ctx.get(dut.out_importance) == out_imp, f"head {head}"
            ctx.set(dut.busy, 0)
            for key in [*range(n), *(range(n, min(n + 2, config.seq_max)))]:
                ctx.set(dut.key_index, key)
                await ctx.tick()
                want = keys[key] if key < n else 0
                assert ctx.get(dut.key_importance) == want, f"head {head} key {key}"

    run_sim(dut, bench)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_importance_verilog(simulator):
    run_unit_verilog("importance", "edge", simulator)
