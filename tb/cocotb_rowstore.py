"""Row store Verilog: rows written word by word by tensor, read back on five ports, the shared Q and K
ports handed over by int_phase in the same cycle (tb/rowstore_script.py)."""
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.rowmem import row_layout
from hdp_rtl.rtl.unpacker import word_write_layout
from sim.packing import unpack
from streams import StreamSource, env_json, past_time_zero, start_clock_and_reset
from tb.rowstore_script import PORTS, random_rows, read_cycles, read_results, word_at, writes

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
WORD = row_layout(head_dim=CONFIG.row_word_elems, data_bits=CONFIG.data_bits)


@cocotb.test()
async def reads_follow_int_phase(dut):
    await past_time_zero()
    source = StreamSource(dut, "i_word", word_write_layout(
        seq_bits=CONFIG.seq_bits, words=CONFIG.row_words, word_elems=CONFIG.row_word_elems,
        data_bits=CONFIG.data_bits), idle=0.3, seed=1)
    dut.int_phase.value = 0
    for port in PORTS:
        getattr(dut, f"{port}__en").value = getattr(dut, f"{port}__addr").value = 0
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    rng = random.Random(2)
    rows = random_rows(CONFIG, rng)
    source.send_all(writes(CONFIG, rows, rng))
    await source.wait_idle()
    cycles = read_cycles(CONFIG, rng, 200)
    for inputs, want in zip(cycles, read_results(cycles)):
        dut.int_phase.value = inputs["int_phase"]
        for port in PORTS:
            en, addr = inputs[port]
            getattr(dut, f"{port}__en").value = en
            getattr(dut, f"{port}__addr").value = addr
        await RisingEdge(dut.clk)
        await ReadOnly()
        for port, word in want.items():
            if word is not None:
                got = unpack(WORD, getattr(dut, f"{port}__data").value.to_unsigned())
                assert got == word_at(CONFIG, rows, *word), port
        await Timer(1, "ns")              # out of the read-only phase
