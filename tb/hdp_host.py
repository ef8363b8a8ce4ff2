"""The host side of the top-level testbench: registers over AXI4-Lite (cocotbext-axi),
heads in and out over AXI4-Stream, and the golden model as the checker."""
from __future__ import annotations

import logging
import random

import numpy as np
from cocotb.triggers import RisingEdge
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink,
                           AxiStreamSource)

import golden
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.regmap import COUNTERS, FLAG_FIELDS, register_map

__all__ = ["HDPHost", "expected_counters"]


def _pause(rng: random.Random, prob: float):
    while True:
        yield prob > 0 and rng.random() < prob


def expected_counters(config: HDPConfig, res: golden.HeadResult, n: int) -> dict:
    """The counters the core must report for golden result ``res``."""
    return {
        "blocks_kept": res.blocks_kept, "blocks_pruned": res.blocks_pruned,
        "int_macs": res.int_macs, "score_macs": res.score_macs, "pv_macs": res.pv_macs,
        "words_in": 3 * n * config.beats_per_row, "words_out": n * config.beats_per_row,
    }


class HDPHost:
    """Plays the host of one ``HDPCoprocessor``."""

    def __init__(self, dut, config: HDPConfig, *, idle: float = 0.0, backpressure: float = 0.0,
                 seed: int = 0):
        self.dut, self.config = dut, config
        self.regs = {r.name: r for r in register_map(config)}
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
            model.log.setLevel(logging.WARNING)   # frames are logged whole at INFO: slow
        rng = random.Random(seed)
        self.source.set_pause_generator(_pause(random.Random(rng.random()), idle))
        self.sink.set_pause_generator(_pause(random.Random(rng.random()), backpressure))

    async def write(self, name: str, value: int) -> None:
        await self.axil.write_dword(self.regs[name].offset, value & 0xFFFF_FFFF)

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(self.regs[name].offset)

    async def write_registers(self, regs: Registers) -> None:
        flags = sum(int(getattr(regs, f)) << i for i, f in enumerate(FLAG_FIELDS))
        await self.write("seq_len", regs.seq_len)
        await self.write("flags", flags)
        await self.write("head_threshold", regs.head_threshold & 0xFFFF_FFFF)
        if "head_threshold_hi" in self.regs and self.regs["head_threshold_hi"].fields:
            await self.write("head_threshold_hi", regs.head_threshold >> 32)
        await self.write("rho", regs.rho)
        await self.write("delta", regs.delta)
        await self.write("score_scale", regs.score_scale)

    async def status(self) -> dict:
        word = await self.read("status")
        return {f.name: (word >> f.lsb) & ((1 << f.width) - 1) for f in self.regs["status"].fields}

    async def counters(self) -> dict:
        return {name: await self.read(name) for name in COUNTERS}

    def _pack_tensor(self, x) -> bytes:
        cfg = self.config
        full = np.zeros((x.shape[0], cfg.head_dim), dtype=np.int64)
        full[:, :x.shape[1]] = x
        dtype = {8: "<i1", 16: "<i2"}[cfg.in_lane_bits]
        return full.astype(dtype).tobytes()

    def _unpack_out(self, data: bytes, n: int):
        dtype = {16: "<i2", 32: "<i4"}[self.config.out_lane_bits]
        return np.frombuffer(bytes(data), dtype=dtype).astype(np.int64).reshape(n, self.config.head_dim)

    async def run_head(self, q, k, v, regs: Registers, *, timeout_cycles: int = 2_000_000):
        """Write the registers, start, stream Q/K/V, return (out, counters, status)."""
        await self.write_registers(regs)
        await self.write("ctrl", 1)
        for x in (q, k, v):
            await self.source.send(self._pack_tensor(np.asarray(x)))
        frame = await self.sink.recv()
        out = self._unpack_out(frame.tdata, regs.seq_len)
        for _ in range(timeout_cycles):
            st = await self.status()
            if not st["busy"]:
                break
        else:
            raise AssertionError("core still busy after the output")
        return out, await self.counters(), st

    async def check_head(self, q, k, v, regs: Registers, *, label: str = "") -> dict:
        """Run a head and compare every output word and counter with the golden model."""
        res = golden.attention_head(q, k, v, self.config, regs)
        out, counters, st = await self.run_head(q, k, v, regs)
        bad = np.argwhere(out != res.out)
        assert bad.size == 0, (f"{label}: {len(bad)} output words differ, first at {bad[0]}: "
                               f"got {out[tuple(bad[0])]}, expected {res.out[tuple(bad[0])]}; "
                               f"status {st}, counters {counters}, golden HI "
                               f"{res.head_importance} kept blocks {res.blocks_kept}")
        for name, want in expected_counters(self.config, res, regs.seq_len).items():
            assert counters[name] == want, f"{label}: counter {name} = {counters[name]}, expected {want}"
        assert st["done"] == 1 and st["error"] == 0, f"{label}: status {st}"
        assert st["head_pruned"] == int(res.head_pruned), f"{label}: head_pruned {st}"
        self.dut._log.info("%s: n=%d kept %d/%d pairs, %d cycles (load %d, int %d, attn %d, out %d)",
                           label, regs.seq_len, res.pairs_kept, res.pairs_valid,
                           counters["cycles_total"], counters["cycles_load"], counters["cycles_int"],
                           counters["cycles_attn"], counters["cycles_out"])
        return counters

    async def wait_cycles(self, n: int) -> None:
        for _ in range(n):
            await RisingEdge(self.dut.clk)
