"""Output serializer: computed rows (chunk by chunk, on credits) and zero-row tokens to
m_axis beats in row order, sign-extended lanes, tlast, row_done, row_free,
last_row_held and done, under random idle and back-pressure; ``stop`` and a clear (an
abort), in amaranth.sim and as generated Verilog."""
import random

import pytest
from amaranth.hdl import Elaboratable, Module, ResetInserter, Signal

from hdp_rtl.config import HDPConfig
from hdp_rtl.rtl.serializer import OutputSerializer
from tb.beats import output_rows
from cases import EDGE, run_unit_verilog
from unit_sim import axis_port, recv_stream, run_sim, send_stream

CONFIGS = {
    "edge": HDPConfig.preset("edge"),                       # 16-bit outputs, 8 beats a row
    "out12": HDPConfig(seq_max=8, head_dim=8, int_lanes=2, mac_lanes=2, axis_elems=2,
                       out_bits=12, out_frac=8),            # 12 bits in 16-bit lanes
    "out20-bpr1": HDPConfig(seq_max=6, head_dim=4, int_lanes=4, mac_lanes=4, axis_elems=4,
                            out_bits=20, out_frac=10),      # 20 bits in 32-bit lanes
    # one row in the RAM: a row's chunks wait for the row before to have been sent
    "edge-1buf": HDPConfig.preset("edge").replace(out_row_buffers=1),
    "bpr1-1buf": HDPConfig(seq_max=6, head_dim=4, int_lanes=4, mac_lanes=4, axis_elems=4,
                           out_row_buffers=1),
    "edge-4buf": HDPConfig.preset("edge").replace(out_row_buffers=4),
    # two chunks gathered into a RAM word of one beat
    "lanes2-beat4": HDPConfig(seq_max=8, head_dim=8, int_lanes=2, mac_lanes=2, axis_elems=4),
    # a RAM word of four beats (a chunk each), one row
    "lanes8-beat2": HDPConfig(seq_max=8, head_dim=16, int_lanes=8, mac_lanes=8, axis_elems=2,
                              out_row_buffers=1),
}


def _head(config, n, rng):
    """Output rows of ``n`` tokens, about half of them zero rows (``None``)."""
    lo, hi = -(1 << (config.out_bits - 1)), (1 << (config.out_bits - 1)) - 1
    return [None if rng.random() < 0.4 else
            [rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(config.head_dim)]
            for _ in range(n)]


async def _until(ctx, condition):
    while not condition():
        await ctx.tick()


@pytest.mark.parametrize("name", CONFIGS)
def test_rows_in_order(name):
    """Two heads back to back; a zero-row token is offered as soon as the rows before it
    were offered (often while they are still being sent), a computed row only once every
    zero row before it was taken (as the pair generator and MAC array do)."""
    config = CONFIGS[name]
    bpr = config.beats_per_row
    rng = random.Random(name)
    heads = [_head(config, n, rng) for n in (config.seq_max, 3)]
    heads[1][0], heads[1][-1] = None, None              # zero rows first and last
    dut = OutputSerializer.from_config(config)
    m_axis = axis_port(dut, "m_axis")
    state = {"head": -1, "received": 0, "zeros_taken": set(), "freed": 0}
    cycles = []     # per cycle: start, beat, zero row taken, row_done, held, done, tvalid
    beats = []

    async def control(ctx):
        for h, rows in enumerate(heads):
            ctx.set(dut.seq_len, 0)                     # valid from the next cycle
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.seq_len, len(rows))
            state["head"], state["zeros_taken"] = h, set()
            await _until(ctx, lambda: state["received"] > h)

    async def computed_rows(ctx):
        """As the MAC array: a row on a credit (out_row_buffers of them, given back on
        row_free), its chunks in order with random gaps."""
        L, sent = config.mac_lanes, 0
        for h, rows in enumerate(heads):
            await _until(ctx, lambda: state["head"] == h)
            for r, row in enumerate(rows):
                if row is not None:
                    zeros = {z for z in range(r) if rows[z] is None}
                    await _until(ctx, lambda: zeros <= state["zeros_taken"]
                                 and sent - state["freed"] < config.out_row_buffers)
                    sent += 1
                    chunks = [row[i:i + L] for i in range(0, len(row), L)]
                    for i, chunk in enumerate(chunks):
                        while rng.random() < 0.3:
                            await ctx.tick()
                        ctx.set(dut.i_chunk.payload, {"out": chunk,
                                                      "last": int(i == len(chunks) - 1)})
                        ctx.set(dut.i_chunk.valid, 1)
                        await ctx.tick()
                        ctx.set(dut.i_chunk.valid, 0)

    async def zero_rows(ctx):
        for h, rows in enumerate(heads):
            await _until(ctx, lambda: state["head"] == h)
            tokens = [{"row": r} for r, row in enumerate(rows) if row is None]
            await send_stream(ctx, dut.i_zero_row, tokens, rng=rng, idle=0.3)

    async def sink(ctx):
        for rows in heads:
            beats.append(await recv_stream(ctx, m_axis, len(rows) * bpr, rng=rng,
                                           backpressure=0.4))
            state["received"] += 1

    async def monitor(ctx):
        async for _c, _r, start, beat, zv, zr, zrow, free, last, *flags in ctx.tick().sample(
                dut.start, dut.beat, dut.i_zero_row.valid, dut.i_zero_row.ready,
                dut.i_zero_row.payload.row, dut.row_free, dut.m_axis_tlast, dut.row_done,
                dut.last_row_held, dut.done, dut.m_axis_tvalid):
            if zv and zr:
                state["zeros_taken"].add(zrow)
            state["freed"] += free
            cycles.append((start, beat, zrow if zv and zr else None, *flags))

    run_sim(dut, control, computed_rows, zero_rows, sink, extra=[monitor],
            deadline_cycles=20_000)
    starts = [i for i, c in enumerate(cycles) if c[0]] + [len(cycles)]
    for h, rows in enumerate(heads):
        n = len(rows)
        assert output_rows(config, [b.tdata for b in beats[h]]) == \
            [row or [0] * config.head_dim for row in rows]
        assert [b.tlast for b in beats[h]] == [0] * (n * bpr - 1) + [1]
        sent = 0
        for _, beat, zero, _, held, done, valid in cycles[starts[h] + 1:starts[h + 1]]:
            if zero is not None:
                assert sent == zero * bpr, "a zero row taken before the rows above it were sent"
            assert done == (sent == n * bpr)
            if held:                               # only while the last row is sent
                assert valid and (n - 1) * bpr <= sent < n * bpr, "last_row_held wrong"
            if beat and sent >= (n - 1) * bpr:
                assert held, "the last row sent without last_row_held"
            sent += beat
        assert sum(c[3] for c in cycles[starts[h] + 1:starts[h + 1]]) == n    # row_done
    computed = sum(row is not None for rows in heads for row in rows)
    assert state["freed"] == computed, "row_free: one pulse per computed row"


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("serializer", preset, simulator)


class _Flushable(Elaboratable):
    """The serializer under a synchronous clear ``flush``, as the top wraps it."""

    def __init__(self, ser):
        self.ser, self.flush = ser, Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.ser = ResetInserter(self.flush)(self.ser)
        return m


@pytest.mark.parametrize("name", ["edge", "lanes8-beat2", "bpr1-1buf"])
def test_stop_then_flush(name):
    """``stop`` (an abort) at a random cycle of a head: the beat offered then stays until
    taken and is the last one (AXI4-Stream rules hold in every cycle), no zero row is
    taken while stopped, and after ``flush`` the next head is sent whole and in order.
    The MAC array and the pair generator are modelled cycle by cycle, cleared by the
    same flush."""
    config = CONFIGS[name]
    bpr = config.beats_per_row
    rng = random.Random(name)
    ser = OutputSerializer.from_config(config)
    dut = _Flushable(ser)
    m_axis = axis_port(ser, "m_axis")
    trials = []

    async def bench(ctx):
        for trial in range(12):
            n = rng.randint(1, config.seq_max)
            rows = _head(config, n, rng)
            stop_at = rng.randint(0, 6 * n * bpr) if trial % 3 else None   # None: no abort
            ctx.set(ser.seq_len, 0)
            ctx.set(ser.start, 1)
            await ctx.tick()
            ctx.set(ser.start, 0)
            ctx.set(ser.seq_len, n)
            zeros = [r for r, row in enumerate(rows) if row is None]
            computed = [r for r, row in enumerate(rows) if row is not None]
            zeros_taken, credits, chunks, beats = set(), config.out_row_buffers, [], []
            stopped_at, low_since, held, cycle = None, None, None, 0
            while True:
                stop = stop_at is not None and cycle >= stop_at
                ctx.set(ser.stop, int(stop))
                ready = rng.random() >= 0.4
                ctx.set(m_axis.ready, int(ready))
                # the pair generator: zero-row tokens in order, as soon as possible
                offered_zero = zeros[0] if zeros else None
                ctx.set(ser.i_zero_row.valid, int(offered_zero is not None))
                ctx.set(ser.i_zero_row.payload.row, offered_zero or 0)
                # the MAC array: a computed row on a credit, once the zero rows before it
                # were taken, its chunks with random gaps
                if not chunks and computed and credits and \
                        all(z in zeros_taken for z in range(computed[0]) if rows[z] is None):
                    row = rows[computed.pop(0)]
                    L = config.mac_lanes
                    chunks = [row[i:i + L] for i in range(0, len(row), L)]
                    credits -= 1
                send = bool(chunks) and rng.random() >= 0.3
                if send:
                    ctx.set(ser.i_chunk.payload, {"out": chunks[0], "last": int(len(chunks) == 1)})
                ctx.set(ser.i_chunk.valid, int(send))
                valid, payload = ctx.get(m_axis.valid), ctx.get(m_axis.payload)
                zero_taken = offered_zero is not None and ctx.get(ser.i_zero_row.ready)
                free = ctx.get(ser.row_free)
                if held is not None:
                    assert valid and payload == held, f"{name} trial {trial}: beat withdrawn"
                held = payload if valid and not ready else None
                if stop:
                    assert not zero_taken, f"{name} trial {trial}: a zero row taken while stopped"
                    if low_since is not None:
                        assert not valid, f"{name} trial {trial}: a beat offered after the stop"
                    elif not valid:
                        low_since = cycle
                    if stopped_at is None:
                        stopped_at = (cycle, len(beats), valid)
                await ctx.tick()
                cycle += 1
                credits += free
                if send:
                    chunks.pop(0)
                if zero_taken:
                    zeros_taken.add(zeros.pop(0))
                if valid and ready:
                    beats.append(payload)
                if stop and low_since is not None:
                    ctx.set(dut.flush, 1)              # cleared, as the top does
                    ctx.set(ser.i_chunk.valid, 0)
                    ctx.set(ser.i_zero_row.valid, 0)
                    ctx.set(ser.stop, 0)
                    await ctx.tick()
                    ctx.set(dut.flush, 0)
                    assert not ctx.get(m_axis.valid), f"{name} trial {trial}: valid after flush"
                    break
                if stop_at is None and len(beats) == n * bpr:
                    break
                assert cycle < 100 * n * bpr, f"{name} trial {trial}: hung"
            trials.append((rows, stop_at, stopped_at, beats))

    run_sim(dut, bench, deadline_cycles=200_000)
    for trial, (rows, stop_at, stopped_at, beats) in enumerate(trials):
        want = [row or [0] * config.head_dim for row in rows]
        n = len(rows)
        got = output_rows(config, [b.tdata for b in beats]) if beats else []
        if stop_at is None:
            assert got == want and [b.tlast for b in beats] == [0] * (n * bpr - 1) + [1], trial
            continue
        _, sent_before, offered = stopped_at
        # the beats are the head's, in order; after the stop only the beat offered then
        assert len(beats) - sent_before == int(offered), (trial, stopped_at, len(beats))
        flat = [v for row in want for v in row]
        assert [v for row in got for v in row] == flat[:len(beats) * config.axis_elems], trial
        assert [b.tlast for b in beats] == [int(i == n * bpr - 1) for i in range(len(beats))]
    aborted = [t for t in trials if t[1] is not None]
    assert any(t[2][2] for t in aborted), "no trial stopped with a beat offered"
    assert any(not t[2][2] for t in aborted), "no trial stopped with no beat offered"
