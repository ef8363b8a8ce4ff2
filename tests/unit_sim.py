"""Helpers for the amaranth.sim unit tests: stream drivers with random stalls."""
import random

from amaranth.sim import Simulator

__all__ = ["run_sim", "send_stream", "recv_stream"]


def run_sim(dut, *benches, deadline_cycles: int = 200_000, extra=None):
    """Run async testbenches on ``dut`` with a clock; fail if they take too long."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    for process in extra or ():
        sim.add_process(process)
    sim.run_until(deadline_cycles * 1e-8)
    return sim


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
