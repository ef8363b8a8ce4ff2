"""Register file: every register of the map (masks, strobes, overflow, start checks, error
latch, status, counters), in amaranth.sim on its strobes, and as generated Verilog."""
import itertools
import random

import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import AXIL_ADDR_BITS, COUNTERS, ErrorCode, registers_by_name
from hdp_rtl.rtl.regfile import RegisterFile, run_layout
from sim.packing import unpack
from tb.regfile_vectors import (RESERVED, WORD, outside_bit, random_registers,
                                register_words, run_fields, start_check_steps)
from cases import EDGE, run_unit_verilog
from unit_sim import run_sim

CONFIGS = {"edge": HDPConfig.preset("edge"),        # head_threshold_hi holds no field
           "server": HDPConfig.preset("server"),    # head_threshold_hi holds 2 bits
           # the block_k register (0x2C) and its start check (error 12)
           "edge-topk": HDPConfig.preset("edge").replace(selector="topk"),
           # the signed score_threshold register (0x30)
           "edge-threshold": HDPConfig.preset("edge").replace(selector="threshold")}


class RegBus:
    """The register strobes and status inputs of a :class:`RegisterFile`, from an
    amaranth.sim testbench. Each write takes one cycle; reads are combinational."""

    def __init__(self, ctx, dut: RegisterFile, config: HDPConfig):
        self.ctx, self.dut, self.config = ctx, dut, config
        self.regs = registers_by_name(config)
        self.rw = [r for r in self.regs.values() if r.access == "rw"]

    def _addr(self, reg) -> int:
        return self.regs[reg].offset if isinstance(reg, str) else reg

    async def write(self, reg, word: int, strb: int = 0xF) -> tuple[int, int]:
        """Write ``word`` to ``reg`` (a name or an address); returns ``(wr_error, start)``
        of the write's cycle."""
        ctx, bus = self.ctx, self.dut.bus
        ctx.set(bus.wr_en, 1)
        ctx.set(bus.wr_addr, self._addr(reg))
        ctx.set(bus.wr_data, word)
        ctx.set(bus.wr_strb, strb)
        answer = ctx.get(bus.wr_error), ctx.get(self.dut.start)
        await self.ctx.tick()
        ctx.set(bus.wr_en, 0)
        return answer

    async def write_all(self, words: dict) -> None:
        for name, word in words.items():
            assert await self.write(name, word) == (0, 0)

    async def ctrl(self, **bits) -> int:
        """Write ``ctrl`` with ``bits``; returns the ``start`` pulse."""
        error, start = await self.write("ctrl", self.regs["ctrl"].word(**bits))
        assert not error
        return start

    async def read(self, reg) -> tuple[int, int]:
        """``(rd_data, rd_error)`` of a read of ``reg`` (a name or an address): the values
        of the strobe's cycle, answered ``RD_LATENCY`` cycles later."""
        ctx, bus = self.ctx, self.dut.bus
        ctx.set(bus.rd_en, 1)
        ctx.set(bus.rd_addr, self._addr(reg))
        for _ in range(RegisterFile.RD_LATENCY):
            await ctx.tick()
            ctx.set(bus.rd_en, 0)
        return ctx.get(bus.rd_data), ctx.get(bus.rd_error)

    async def status(self) -> dict:
        word, error = await self.read("status")
        assert not error and not word & ~self.regs["status"].mask, hex(word)
        return self.regs["status"].decode(word)

    async def error(self) -> int:
        """The latched error code (0: none)."""
        status = await self.status()
        assert status["error"] == (status["error_code"] != 0), status
        return status["error_code"]

    def run(self) -> dict:
        return unpack(run_layout(self.regs), self.ctx.get(self.dut.run.as_value()))

    async def pulse_error(self, code: int) -> None:
        self.ctx.set(self.dut.i_error, code)
        await self.ctx.tick()
        self.ctx.set(self.dut.i_error, 0)


def _run(config, bench):
    dut = RegisterFile.from_config(config)

    async def testbench(ctx):
        await bench(RegBus(ctx, dut, config))

    run_sim(dut, testbench, deadline_cycles=20_000)


@pytest.mark.parametrize("name", CONFIGS)
def test_rw_registers_read_back_masked(name):
    rng = random.Random(name)

    async def bench(bus):
        for reg in bus.rw:
            for word in (WORD, rng.getrandbits(32), rng.getrandbits(32), 0x5555_5555, 0):
                assert await bus.write(reg.name, word) == (0, 0)
                assert await bus.read(reg.name) == (word & reg.mask, 0), reg.name

    _run(CONFIGS[name], bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_byte_strobes(name):
    """A write changes only its strobed bytes (and only their field bits); a bit outside
    the fields in an unstrobed byte is no overflow; ``ctrl`` acts only with byte 0."""
    rng = random.Random(name)

    async def bench(bus):
        seq = bus.regs["seq_len"]
        await bus.write("seq_len", WORD & ~0xFF | 1, strb=0b0001)
        assert await bus.read("seq_len") == (1, 0)
        assert await bus.ctrl(start=1)                   # no overflow: bytes 1-3 unstrobed
        await bus.write("seq_len", WORD, strb=0b0010)     # byte 1 is beyond the field
        assert await bus.read("seq_len") == (WORD & 0xFF00 & seq.mask | 1, 0)
        assert not await bus.ctrl(start=1)
        assert await bus.error() == seq.overflow_error
        word = bus.regs["ctrl"].word(start=1, clear_error=1)
        assert await bus.write("ctrl", word, strb=0b1110) == (0, 0)
        assert await bus.error() == seq.overflow_error         # no clear, no start without byte 0
        stored = {r.name: (await bus.read(r.name))[0] for r in bus.rw}
        for _ in range(80):
            reg, word, strb = rng.choice(bus.rw), rng.getrandbits(32), rng.randrange(16)
            lanes = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
            stored[reg.name] = (stored[reg.name] & ~lanes | word & lanes) & reg.mask
            assert await bus.write(reg.name, word, strb) == (0, 0)
            assert {r.name: (await bus.read(r.name))[0] for r in bus.rw} == stored

    _run(CONFIGS[name], bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_overflow_remembered_per_register(name):
    """A bit written outside a register's fields refuses the start with the register's
    ``overflow_error`` until a fitting write to that register, whatever else is written."""
    config = CONFIGS[name]
    rng = random.Random(name)

    async def bench(bus):
        overflowing = [r for r in bus.rw if r.mask != WORD]
        fit = {r.name: int(r.name == "seq_len") for r in overflowing}   # passes every check
        await bus.write("seq_len", 1)
        for reg in overflowing:                      # one at a time
            await bus.write(reg.name, fit[reg.name] | outside_bit(config, reg.name))
            assert await bus.read(reg.name) == (fit[reg.name], 0)
            assert not await bus.ctrl(clear_error=1, start=1)
            assert await bus.error() == reg.overflow_error, reg.name
            await bus.write(reg.name, fit[reg.name])
            assert await bus.ctrl(clear_error=1, start=1)
            assert await bus.error() == ErrorCode.NONE
        for reg in overflowing:                      # all at once, fixed in random order
            await bus.write(reg.name, fit[reg.name] | outside_bit(config, reg.name))
        pending = list(overflowing)
        rng.shuffle(pending)
        while pending:
            assert not await bus.ctrl(start=1)
            assert await bus.error() == min(r.overflow_error for r in pending)
            reg = pending.pop()
            await bus.write(reg.name, fit[reg.name])
        assert await bus.ctrl(start=1)

    _run(config, bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_start_checks_in_code_order(name):
    config = CONFIGS[name]

    async def bench(bus):
        for writes, code in start_check_steps(config):
            before = await bus.error()
            await bus.write_all(writes)
            started = await bus.ctrl(start=1)
            assert started == (code == ErrorCode.NONE), writes
            # a refused start raises its code; an accepted one raises nothing
            assert await bus.error() == (code or before), writes

    _run(config, bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_run_latched_only_by_accepted_start(name):
    config = CONFIGS[name]
    rng = random.Random(name)

    async def bench(bus):
        first, second = (random_registers(config, rng) for _ in range(2))
        # (channel_drop, a register of the channel_pruning configs: 0 .. head_dim)
        d1, d2 = (rng.randint(0, config.head_dim) for _ in range(2))
        await bus.write_all(register_words(config, first, d1))
        assert await bus.ctrl(start=1)
        assert bus.run() == run_fields(first, config, d1)
        await bus.write_all(register_words(config, second, d2))
        assert bus.run() == run_fields(first, config, d1)      # writes alone change nothing
        await bus.write("seq_len", 0)
        assert not await bus.ctrl(start=1)                  # refused: run unchanged
        assert bus.run() == run_fields(first, config, d1)
        await bus.write_all(register_words(config, second, d2))
        bus.ctx.set(bus.dut.busy, 1)
        assert not await bus.ctrl(start=1)                  # while busy: ignored
        assert await bus.error() == ErrorCode.START_WHILE_BUSY
        assert bus.run() == run_fields(first, config, d1)
        bus.ctx.set(bus.dut.busy, 0)
        assert await bus.ctrl(start=1)
        assert bus.run() == run_fields(second, config, d2)

    _run(config, bench)


def test_start_while_busy_checks_nothing_else():
    """While busy, even a start with failing registers raises 7, not their code."""
    async def bench(bus):
        bus.ctx.set(bus.dut.busy, 1)
        assert not await bus.ctrl(start=1)                  # seq_len is 0 after reset
        assert await bus.error() == ErrorCode.START_WHILE_BUSY

    _run(CONFIGS["edge"], bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_address_decoding(name):
    """Writes to an address with no writable register (reserved, read-only, unaligned)
    answer wr_error, raise error 5 and write nothing; reads of an address with no
    readable register answer rd_error with 0."""
    config = CONFIGS[name]
    rng = random.Random(name)

    async def bench(bus):
        writable = {r.offset for r in bus.rw} | {bus.regs["ctrl"].offset}
        readable = {r.offset for r in bus.regs.values() if r.access != "wo"}
        words = register_words(config, random_registers(config, rng))
        await bus.write_all(words)
        for addr in range(1 << AXIL_ADDR_BITS):
            data, error = await bus.read(addr)
            assert error == (addr not in readable), hex(addr)
            assert not error or data == 0, hex(addr)
            if addr in writable:                 # its wr_error, without writing
                bus.ctx.set(bus.dut.bus.wr_addr, addr)
                bus.ctx.set(bus.dut.bus.wr_en, 1)
                assert not bus.ctx.get(bus.dut.bus.wr_error), hex(addr)
                bus.ctx.set(bus.dut.bus.wr_en, 0)
                continue
            await bus.ctrl(clear_error=1)
            assert await bus.write(addr, rng.getrandbits(32)) == (1, 0), hex(addr)
            assert await bus.error() == ErrorCode.BAD_ADDRESS, hex(addr)
        assert {name: (await bus.read(name))[0] for name in words} == words

    _run(config, bench)


def test_clear_error():
    """clear_error clears; with start in the same word it clears first, then starts."""
    async def bench(bus):
        await bus.pulse_error(ErrorCode.INPUT_LANE)
        assert await bus.error() == ErrorCode.INPUT_LANE
        assert not await bus.ctrl(clear_error=1)
        assert await bus.error() == ErrorCode.NONE and not (await bus.status())["error"]
        await bus.pulse_error(ErrorCode.INPUT_TLAST)
        assert not await bus.ctrl(clear_error=1, start=1)   # seq_len 0: refused
        assert await bus.error() == ErrorCode.SEQ_LEN_ZERO
        await bus.write("seq_len", 1)
        assert await bus.ctrl(clear_error=1, start=1)
        assert await bus.error() == ErrorCode.NONE

    _run(CONFIGS["edge"], bench)


def test_error_latch_and_same_cycle_priority():
    """The latest error wins; in one cycle the bus's error (5, a refused start, 7) wins
    over i_error's."""
    async def bench(bus):
        for code in range(1, 16):                           # every i_error code latches
            await bus.pulse_error(code)
            assert await bus.error() == code
            await bus.ctx.tick()
            assert await bus.error() == code                      # and stays
        cases = [  # (seq_len written first, busy, the access, the error that wins)
            (0, 0, "bad address", ErrorCode.BAD_ADDRESS),
            (0, 0, "start", ErrorCode.SEQ_LEN_ZERO),
            (1, 1, "start", ErrorCode.START_WHILE_BUSY),
        ]
        for seq_len, busy, access, want in cases:
            await bus.write("seq_len", seq_len)
            bus.ctx.set(bus.dut.busy, busy)
            bus.ctx.set(bus.dut.i_error, ErrorCode.INPUT_TLAST)
            if access == "start":
                await bus.ctrl(start=1)
            else:
                await bus.write(RESERVED, 0)                # reserved
            bus.ctx.set(bus.dut.i_error, 0)
            bus.ctx.set(bus.dut.busy, 0)
            assert await bus.error() == want, access

    _run(CONFIGS["edge"], bench)


def test_i_error_latched_in_the_cycle_of_an_accepted_start():
    """An accepted start raises no error, so i_error's of the same cycle is latched."""
    async def bench(bus):
        await bus.write("seq_len", 1)
        bus.ctx.set(bus.dut.i_error, ErrorCode.INPUT_TLAST)
        assert await bus.ctrl(start=1)
        bus.ctx.set(bus.dut.i_error, 0)
        assert await bus.error() == ErrorCode.INPUT_TLAST

    _run(CONFIGS["edge"], bench)


def test_abort_pulse_and_input_timeout():
    """ctrl.abort pulses abort_req in the write's cycle, busy or not, alone or with start
    and clear_error (which act as without it), only with wstrb[0]; input_timeout shows
    the register's field at once, not latched by a start."""
    async def bench(bus):
        ctx, dut, ctrl = bus.ctx, bus.dut, bus.regs["ctrl"]

        async def write_ctrl(strb=0xF, **bits):
            ctx.set(dut.bus.wr_en, 1)
            ctx.set(dut.bus.wr_addr, ctrl.offset)
            ctx.set(dut.bus.wr_data, ctrl.word(**bits))
            ctx.set(dut.bus.wr_strb, strb)
            answer = ctx.get(dut.abort_req), ctx.get(dut.start)
            await ctx.tick()
            ctx.set(dut.bus.wr_en, 0)
            assert not ctx.get(dut.abort_req)              # one cycle only
            return answer

        assert not ctx.get(dut.abort_req)
        await bus.write("seq_len", 1)
        for busy in (0, 1):
            ctx.set(dut.busy, busy)
            assert await write_ctrl(abort=1) == (1, 0)
            assert await write_ctrl(abort=1, strb=0b1110) == (0, 0)
            assert await bus.error() == ErrorCode.NONE     # an abort raises nothing here
            assert await write_ctrl(abort=1, start=1) == (1, 1 - busy)
            assert await bus.error() == (ErrorCode.START_WHILE_BUSY if busy else 0)
            await bus.pulse_error(ErrorCode.INPUT_LANE)
            assert await write_ctrl(abort=1, clear_error=1) == (1, 0)
            assert await bus.error() == ErrorCode.NONE
        for word in (0, 1, 0xABCDE, WORD):
            await bus.write("input_timeout", word)
            field = bus.regs["input_timeout"].field("input_timeout")
            assert ctx.get(dut.input_timeout) == field.get(word)
        assert await write_ctrl(start=1) == (0, 0)         # busy: refused, timeout unchanged
        assert ctx.get(dut.input_timeout) == field.get(WORD)

    _run(CONFIGS["edge"], bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_status_word(name):
    """Status bits and error code in the register map's layout, nothing else set."""
    async def bench(bus):
        for busy, done, pruned in itertools.product((0, 1), repeat=3):
            for code in (0, ErrorCode.BAD_ADDRESS, 0xF):
                if code:
                    await bus.pulse_error(code)
                else:
                    await bus.ctrl(clear_error=1)
                for port, value in ((bus.dut.busy, busy), (bus.dut.done, done),
                                    (bus.dut.head_pruned, pruned)):
                    bus.ctx.set(port, value)
                assert await bus.status() == {"busy": busy, "done": done, "error": int(code != 0),
                                        "head_pruned": pruned, "error_code": code}

    _run(CONFIGS[name], bench)


@pytest.mark.parametrize("name", CONFIGS)
def test_counters_and_config_hash_readable(name):
    """Counters are ``counter_bits`` wide (edge 20, server 32) and read zero-extended."""
    config = CONFIGS[name]
    rng = random.Random(name)
    top = (1 << config.counter_bits) - 1

    async def bench(bus):
        assert len(bus.dut.counters[0]) == config.counter_bits
        for values in ([top] * len(COUNTERS),
                       *([rng.getrandbits(config.counter_bits) for _ in COUNTERS]
                         for _ in range(3))):
            bus.ctx.set(bus.dut.counters, values)
            assert {c: await bus.read(c) for c in COUNTERS} == \
                {c: (v, 0) for c, v in zip(COUNTERS, values)}
        assert await bus.read("config_hash") == (int(config.digest(), 16) & WORD, 0)

    _run(config, bench)


def test_progressive_registers():
    """server (progressive_report): pq_index drives the unit's index as written,
    pq_flags and pq_count read the unit's values; they are read-only."""
    config = CONFIGS["server"]
    rng = random.Random("pq")

    async def bench(bus):
        dut = bus.dut
        assert len(dut.pq_flags) == 32 and len(dut.pq_count) == config.seq_len_bits
        for _ in range(4):
            index = rng.getrandbits(len(dut.pq_index))
            assert await bus.write("pq_index", index) == (0, 0)
            assert bus.ctx.get(dut.pq_index) == index
            flags, count = rng.getrandbits(32), rng.randint(0, config.seq_max)
            bus.ctx.set(dut.pq_flags, flags)
            bus.ctx.set(dut.pq_count, count)
            assert await bus.read("pq_flags") == (flags, 0)
            assert await bus.read("pq_count") == (count, 0)
        for name in ("pq_flags", "pq_count"):   # read-only: error 5
            assert (await bus.write(name, 1))[0]

    _run(config, bench)


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("regfile", preset, simulator)
