"""Register file Verilog on its strobes: fields masked, start checks in code order, ``run``
latched, address errors, status layout and counters, all from the register map."""
import random

import cocotb
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import COUNTERS, ErrorCode, registers_by_name
from hdp_rtl.rtl.regfile import RegisterFile, run_layout
from sim.packing import pack, unpack
from streams import env_json, past_time_zero, start_clock_and_reset
from tb.regfile_vectors import (RESERVED, WORD, random_registers, register_words, run_fields,
                                start_check_steps)

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))
REGS = registers_by_name(CONFIG)


class RegPorts:
    """The strobes of the register file: one access at a time, outputs sampled in the
    write's cycle or the read's answer cycle."""

    def __init__(self, dut):
        self.dut = dut
        for name in ("bus__wr_en", "bus__rd_en", "busy", "done", "head_pruned", "i_error"):
            getattr(dut, name).value = 0
        dut.bus__wr_addr.value = dut.bus__wr_data.value = dut.bus__rd_addr.value = 0
        dut.bus__wr_strb.value = 0xF
        dut.counters.value = 0

    async def write(self, reg, word: int) -> tuple[int, int]:
        """Write ``word`` to ``reg`` (a name or an address); ``(wr_error, start)``."""
        dut = self.dut
        dut.bus__wr_en.value = 1
        dut.bus__wr_addr.value = REGS[reg].offset if isinstance(reg, str) else reg
        dut.bus__wr_data.value = word
        await ReadOnly()
        answer = int(dut.bus__wr_error.value), int(dut.start.value)
        await RisingEdge(dut.clk)
        dut.bus__wr_en.value = 0
        return answer

    async def read(self, reg) -> tuple[int, int]:
        """``(rd_data, rd_error)`` of a read of ``reg`` (a name or an address), answered
        ``RD_LATENCY`` cycles after the strobe."""
        dut = self.dut
        dut.bus__rd_en.value = 1
        dut.bus__rd_addr.value = REGS[reg].offset if isinstance(reg, str) else reg
        for _ in range(RegisterFile.RD_LATENCY):
            await RisingEdge(dut.clk)
            dut.bus__rd_en.value = 0
        await ReadOnly()
        answer = dut.bus__rd_data.value.to_unsigned(), int(dut.bus__rd_error.value)
        await RisingEdge(dut.clk)
        dut.bus__rd_en.value = 0
        return answer

    async def start(self) -> int:
        return (await self.write("ctrl", REGS["ctrl"].word(start=1)))[1]

    async def status(self) -> dict:
        word, error = await self.read("status")
        assert not error and not word & ~REGS["status"].mask, hex(word)
        return REGS["status"].decode(word)


async def _setup(dut) -> RegPorts:
    await past_time_zero()
    ports = RegPorts(dut)
    await start_clock_and_reset(dut)      # after the drivers: no input is X at reset
    return ports


@cocotb.test()
async def fields_and_start_checks(dut):
    """Every writable register reads back masked to its fields; the start checks raise
    their codes in order; ``run`` holds the registers of the accepted start."""
    ports = await _setup(dut)
    rng = random.Random(1)
    for reg in (r for r in REGS.values() if r.access == "rw"):
        for word in (WORD, rng.getrandbits(32)):
            assert await ports.write(reg.name, word) == (0, 0)
            assert await ports.read(reg.name) == (word & reg.mask, 0), reg.name
        await ports.write(reg.name, 0)        # no overflow left for the checks below
    for writes, code in start_check_steps(CONFIG):
        for name, word in writes.items():
            await ports.write(name, word)
        assert await ports.start() == (code == ErrorCode.NONE), writes
        if code:
            assert (await ports.status())["error_code"] == code, writes
    regs = random_registers(CONFIG, rng)
    for name, word in register_words(CONFIG, regs).items():
        await ports.write(name, word)
    assert await ports.start()
    await ReadOnly()                      # the edge's register updates
    assert unpack(run_layout(REGS), dut.run.value.to_unsigned()) == run_fields(regs, CONFIG)


@cocotb.test()
async def addresses_status_and_counters(dut):
    """Bad writes answer wr_error and raise 5; unknown reads answer rd_error with 0; the
    status word and the counters are where the register map puts them."""
    ports = await _setup(dut)
    for addr in (RESERVED, REGS["status"].offset, REGS["seq_len"].offset + 1):
        assert await ports.write(addr, 1) == (1, 0), hex(addr)
        assert (await ports.status())["error_code"] == ErrorCode.BAD_ADDRESS
        await ports.write("ctrl", REGS["ctrl"].word(clear_error=1))
    for addr in (RESERVED, REGS["ctrl"].offset, 0x05):
        assert await ports.read(addr) == (0, 1), hex(addr)
    dut.busy.value, dut.head_pruned.value = 1, 1
    dut.i_error.value = ErrorCode.INPUT_TLAST
    await RisingEdge(dut.clk)
    dut.i_error.value = 0
    assert await ports.status() == {"busy": 1, "done": 0, "error": 1, "head_pruned": 1,
                                    "error_code": ErrorCode.INPUT_TLAST}
    rng = random.Random(2)
    # counter_bits wide, read zero-extended to 32 bits
    values = [rng.getrandbits(CONFIG.counter_bits) for _ in COUNTERS]
    values[0] = (1 << CONFIG.counter_bits) - 1
    dut.counters.value = pack(data.ArrayLayout(CONFIG.counter_bits, len(COUNTERS)), values)
    for name, value in zip(COUNTERS, values):
        assert await ports.read(name) == (value, 0), name
    assert await ports.read("config_hash") == (int(CONFIG.digest(), 16) & WORD, 0)


@cocotb.test()
async def abort_pulse_and_input_timeout(dut):
    """ctrl.abort pulses abort_req in the write's cycle (with start refused while busy);
    input_timeout shows the register's field."""
    ports = await _setup(dut)
    ctrl, field = REGS["ctrl"], REGS["input_timeout"].field("input_timeout")
    await ports.write("seq_len", 1)
    for busy in (0, 1):
        dut.busy.value = busy
        dut.bus__wr_en.value = 1
        dut.bus__wr_addr.value = ctrl.offset
        dut.bus__wr_data.value = ctrl.word(abort=1, start=1)
        await ReadOnly()
        assert (int(dut.abort_req.value), int(dut.start.value)) == (1, 1 - busy), busy
        await RisingEdge(dut.clk)
        dut.bus__wr_en.value = 0
        await ReadOnly()
        assert not int(dut.abort_req.value)
        await RisingEdge(dut.clk)
    for word in (0, 0xABCDE, WORD):
        await ports.write("input_timeout", word)
        await ReadOnly()
        assert dut.input_timeout.value.to_unsigned() == field.get(word), hex(word)
        await RisingEdge(dut.clk)
