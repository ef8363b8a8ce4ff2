"""Block-RAM FIFO: every word once, in order, under random writes and reads; r_data and
r_rdy held until popped; w_rdy low exactly when depth + 1 words are held (the RAM and
the read register); the first word readable two cycles after its write."""
import random

import pytest

from hdp_rtl.rtl.bram_fifo import BramFIFO
from unit_sim import run_sim


@pytest.mark.parametrize("depth", [2, 8])
@pytest.mark.parametrize("write_rate,read_rate", [(0.9, 0.3), (0.3, 0.9), (0.7, 0.7)],
                         ids=["fills", "drains", "even"])
def test_words_in_order(depth, write_rate, read_rate):
    dut = BramFIFO(width=12, depth=depth)
    rng = random.Random(f"{depth}-{write_rate}-{read_rate}")
    words = [rng.randrange(1 << 12) for _ in range(300)]
    got = []

    async def bench(ctx):
        sent = held = 0
        last = None                  # (r_rdy, r_data) of a word not popped last cycle
        while len(got) < len(words):
            w = sent < len(words) and rng.random() < write_rate
            r = rng.random() < read_rate
            ctx.set(dut.w_data, words[min(sent, len(words) - 1)])
            ctx.set(dut.w_en, int(w))
            ctx.set(dut.r_en, int(r))
            await ctx.delay(1e-9)
            w_rdy, r_rdy, r_data = ctx.get(dut.w_rdy), ctx.get(dut.r_rdy), ctx.get(dut.r_data)
            if last is not None:
                assert (r_rdy, r_data) == last, "head word changed before it was popped"
            assert w_rdy == (held < depth + 1), f"w_rdy {w_rdy} with {held} words held"
            await ctx.tick()
            if w and w_rdy:
                sent += 1
                held += 1
            if r and r_rdy:
                got.append(r_data)
                held -= 1
            last = (r_rdy, r_data) if r_rdy and not r else None

    run_sim(dut, bench, deadline_cycles=20_000)
    assert got == words




def test_first_word_two_cycles_after_its_write():
    dut = BramFIFO(width=8, depth=4)
    seen = []

    async def bench(ctx):
        ctx.set(dut.w_data, 0xA5)
        ctx.set(dut.w_en, 1)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        for _ in range(3):
            seen.append((ctx.get(dut.r_rdy), ctx.get(dut.r_data)))
            await ctx.tick()

    run_sim(dut, bench)
    assert [rdy for rdy, _ in seen] == [0, 1, 1]
    assert seen[1][1] == 0xA5
