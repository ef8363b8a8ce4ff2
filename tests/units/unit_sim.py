"""Helpers for the amaranth.sim unit tests: the run, and stream drivers with random stalls."""
import random
from types import SimpleNamespace

from amaranth.hdl import Cat
from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["run_sim", "send_stream", "recv_stream", "recv_rows", "axis_port"]

PERIOD = 1e-8


def run_sim(dut, *benches, deadline_cycles: int = 200_000, extra=()):
    """Run the async testbenches ``benches`` on ``dut`` (with a clock) until they all
    return; ``extra`` are background processes (monitors).

    Raises
    ------
    AssertionError
        When the testbenches are still running after ``deadline_cycles`` cycles.
    """
    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    for bench in benches:
        sim.add_testbench(bench)
    for process in extra:
        sim.add_process(process)

    async def watchdog(ctx):
        await ctx.delay(deadline_cycles * PERIOD)
        raise AssertionError(f"the testbenches did not finish in {deadline_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.run()
    return sim


def axis_port(dut, prefix: str):
    """The AXI4-Stream port ``<prefix>_t*`` of ``dut`` as a stream for :func:`send_stream`
    and :func:`recv_stream`: payload fields ``tdata`` and ``tlast``."""
    tdata, tlast = getattr(dut, f"{prefix}_tdata"), getattr(dut, f"{prefix}_tlast")
    layout = data.StructLayout({"tdata": len(tdata), "tlast": 1})
    return SimpleNamespace(valid=getattr(dut, f"{prefix}_tvalid"),
                           ready=getattr(dut, f"{prefix}_tready"),
                           payload=data.View(layout, Cat(tdata, tlast)))


async def send_stream(ctx, port, items, *, rng: random.Random, idle: float = 0.0):
    """Drive ``items`` (dicts for the payload layout) on stream ``port`` with random gaps."""
    for item in items:
        while idle and rng.random() < idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, item)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def recv_stream(ctx, port, count: int, *, rng: random.Random, backpressure: float = 0.0):
    """Collect ``count`` payloads from stream ``port`` with random back-pressure; checks
    that valid and payload hold while stalled."""
    got = []
    held = None
    while len(got) < count:
        ready = not (backpressure and rng.random() < backpressure)
        ctx.set(port.ready, int(ready))
        await ctx.delay(1e-9)          # let combinational outputs settle for this cycle
        valid = ctx.get(port.valid)
        payload = ctx.get(port.payload)
        if held is not None:
            assert valid, "valid dropped while stalled"
            assert payload == held, "payload changed while stalled"
        held = None
        await ctx.tick()
        if valid and ready:
            got.append(payload)
        elif valid:
            held = payload
    ctx.set(port.ready, 0)
    return got


async def recv_rows(ctx, mac, count: int, *, rng: random.Random, hold: float = 0.0,
                    hold_first: int = 0):
    """Collect ``count`` output rows from the MAC array's ``o_chunk`` (chunks gathered
    into lists of ``head_dim`` ints), as the serializer does, and free each on
    ``i_row_free`` after a random while (``hold``: the probability a row stays held
    another cycle; nothing is freed in the first ``hold_first`` cycles). Checks that the
    array keeps to its credits (never more than ``out_rows`` rows held) and puts
    ``last`` on each row's last chunk only."""
    rows, row, held, cycle = [], [], 0, 0
    while len(rows) < count:
        free = held > 0 and cycle >= hold_first and not (hold and rng.random() < hold)
        ctx.set(mac.i_row_free, int(free))
        await ctx.delay(1e-9)          # let combinational outputs settle for this cycle
        valid, payload = ctx.get(mac.o_chunk.valid), ctx.get(mac.o_chunk.payload)
        await ctx.tick()
        cycle += 1
        held -= free
        if valid:
            row.extend(int(x) for x in payload.out)
            at_end = len(row) == mac.head_dim
            assert bool(payload.last) == at_end, "last on the wrong chunk of a row"
            if at_end:
                held += 1
                assert held <= mac.out_rows, f"{held} rows held in {mac.out_rows} places"
                rows.append(row)
                row = []
    ctx.set(mac.i_row_free, 0)
    return rows
