"""Progressive-quantization flags unit: each row flagged exactly as
golden.spatten.progressive_rows, the words and the count read back after the head, with
the softmax's row maxima and the serializer's rows arriving as in the core (maxima in
computed-row order, up to rows_in_flight ahead of the rows; zero rows among them; a
row's maximum as late as the cycle before its row), over several heads (a shorter head
after a longer one: its words past seq_len read 0)."""
import random

import numpy as np
import pytest

from golden.spatten import progressive_rows
from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import PQ_ROWS_PER_WORD
from hdp_rtl.rtl.progressive import ProgressiveFlags
from unit_sim import run_sim

CONFIGS = {"default": HDPConfig.preset("default"),
           "seq40": HDPConfig.preset("edge").replace(seq_max=40),   # 2 words, the last partial
           "seq12": HDPConfig.preset("edge").replace(seq_max=12)}   # one word of 12 rows


def _head(cfg, rng: random.Random, n: int):
    """``(row_max, kept, threshold)``: per row its largest probability and whether it has
    a kept pair; ``threshold`` at an edge case or inside the range."""
    top = 1 << cfg.prob_bits
    kind = rng.random()
    kept = [rng.random() < (0.0 if kind < 0.1 else 0.8) for _ in range(n)]
    row_max = [rng.choice([0, 1, top, top - 1, rng.randint(0, top)]) for _ in range(n)]
    threshold = rng.choice([0, 1, top, top + 1, (1 << (cfg.prob_bits + 1)) - 1,
                            rng.randint(0, top), *row_max[:3]])
    return row_max, kept, threshold


def _schedule(rng: random.Random, kept, in_flight: int, tight: bool):
    """Per cycle ``(max_row or None, done_row or None)``: the maxima of the kept rows in
    order, each at least a cycle before its row is done, at most ``in_flight`` rows
    (from its maximum) not yet done; rows done in order."""
    n = len(kept)
    computed = [r for r in range(n) if kept[r]]
    sent_at, events, nxt_max, nxt_done, cycle = {}, [], 0, 0, 0
    while nxt_done < n:
        ev_max = ev_done = None
        if (nxt_max < len(computed) and computed[nxt_max] - nxt_done < in_flight
                and rng.random() < 0.7):
            ev_max = computed[nxt_max]
            sent_at[ev_max] = cycle
            nxt_max += 1
        r = nxt_done
        ready = not kept[r] or (r in sent_at and sent_at[r] < cycle)
        if ready and (tight or rng.random() < 0.6):
            ev_done, nxt_done = r, r + 1
        events.append((ev_max, ev_done))
        cycle += 1
    return events


@pytest.mark.parametrize("name", CONFIGS)
def test_flags_match_golden(name):
    cfg = CONFIGS[name]
    rng = random.Random(name)
    dut = ProgressiveFlags.from_config(cfg)
    in_flight = 6

    async def bench(ctx):
        ns = [cfg.seq_max, 1, rng.randint(1, cfg.seq_max), cfg.seq_max,
              max(1, cfg.seq_max // 3), rng.randint(1, cfg.seq_max)]
        for head, n in enumerate(ns):
            row_max, kept, threshold = _head(cfg, rng, n)
            ctx.set(dut.busy, 1)
            ctx.set(dut.seq_len, n)
            ctx.set(dut.threshold, threshold)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().repeat(rng.randint(1, 3))
            for ev_max, ev_done in _schedule(rng, kept, in_flight, tight=head % 2 == 1):
                ctx.set(dut.row_max_valid, ev_max is not None)
                ctx.set(dut.row_max, row_max[ev_max] if ev_max is not None else
                        rng.getrandbits(cfg.prob_bits + 1))           # ignored when not valid
                ctx.set(dut.row_done, ev_done is not None)
                ctx.set(dut.zero_row, ev_done is not None and not kept[ev_done])
                # while busy the flags read 0
                assert ctx.get(dut.flags) == 0
                await ctx.tick()
            ctx.set(dut.row_max_valid, 0)
            ctx.set(dut.row_done, 0)
            ctx.set(dut.zero_row, 0)
            await ctx.tick().repeat(2)
            ctx.set(dut.busy, 0)
            p = np.array(row_max)[:, None]
            want = progressive_rows(p, np.array(kept)[:, None], threshold)
            assert ctx.get(dut.count) == int(want.sum()), f"head {head}"
            for word in range(dut.words + (dut.words < (1 << dut.index_bits))):
                ctx.set(dut.index, word)
                await ctx.tick()
                rows = want[word * PQ_ROWS_PER_WORD:(word + 1) * PQ_ROWS_PER_WORD]
                bits = sum(int(f) << i for i, f in enumerate(rows))
                assert ctx.get(dut.flags) == bits, f"head {head} of {n} rows, word {word}"

    run_sim(dut, bench, deadline_cycles=100_000)
