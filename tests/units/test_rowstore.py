"""Row store: rows written word by word by tensor, read back on five ports; the shared Q and K ports
handed over by int_phase in the same cycle (tb/rowstore_script.py), in amaranth.sim and
as generated Verilog."""
import random

import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.rowstore import RowStore
from tb.rowstore_script import PORTS, random_rows, read_cycles, read_results, word_at, writes
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim

CONFIGS = {"edge": HDPConfig.preset("edge"),      # 8 words a row
           "seq5": HDPConfig(seq_max=5, head_dim=4, int_lanes=4, mac_lanes=4, axis_elems=4),
           "seq5-words": HDPConfig(seq_max=5, head_dim=8, int_lanes=2, mac_lanes=2,
                                   axis_elems=2)}  # 4 words a row, 5 rows: 20 words


@pytest.mark.parametrize("name", CONFIGS)
def test_reads_follow_int_phase(name):
    """Two heads: each written with gaps, then read for 150 cycles."""
    config = CONFIGS[name]
    rng = random.Random(name)
    dut = RowStore.from_config(config)

    async def bench(ctx):
        for _ in range(2):
            rows = random_rows(config, rng)
            for payload in writes(config, rows, rng):
                ctx.set(dut.i_word.payload, payload)
                ctx.set(dut.i_word.valid, 1)
                assert ctx.get(dut.i_word.ready)
                await ctx.tick()
                ctx.set(dut.i_word.valid, 0)
                if rng.random() < 0.3:
                    await ctx.tick()
            cycles = read_cycles(config, rng, 150)
            for inputs, want in zip(cycles, read_results(cycles)):
                ctx.set(dut.int_phase, inputs["int_phase"])
                for port in PORTS:
                    en, addr = inputs[port]
                    ctx.set(getattr(dut, port).en, en)
                    ctx.set(getattr(dut, port).addr, addr)
                await ctx.tick()
                for port, word in want.items():
                    if word is not None:
                        got = ctx.get(getattr(dut, port).data)
                        assert [got[i] for i in range(config.row_word_elems)] == \
                            word_at(config, rows, *word), port

    run_sim(dut, bench, deadline_cycles=10_000)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("rowstore", preset, simulator)
