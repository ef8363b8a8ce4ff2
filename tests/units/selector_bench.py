"""What the selector units' amaranth.sim tests share (selectors behind the seam,
hdp_rtl/rtl/selectors.py): small configs, random block rows, a driver of heads with
random stalls on both streams, and the golden mask of a row."""
import random

import numpy as np

import golden
from hdp_rtl.config import HDPConfig, Registers
from unit_sim import recv_stream, run_sim

__all__ = ["STALLS", "configs_for", "golden_mask", "random_rows", "run_heads", "check_masks"]

#: (idle on i_block, back-pressure on o_mask)
STALLS = {"no-stall": (0.0, 0.0), "idle-backpressure": (0.3, 0.4), "heavy": (0.6, 0.8)}


def configs_for(selector: str) -> dict[str, HDPConfig]:
    """8 blocks a row of 10-bit BI; 6 blocks a row of narrow (8-bit) BI; one block a row."""
    return {
        "bcc8": HDPConfig(seq_max=32, head_dim=8, block_cols=4, int_lanes=4, mac_lanes=4,
                          axis_elems=4, selector=selector),
        "bcc6": HDPConfig(seq_max=12, head_dim=4, block_cols=2, int_bits=3, int_lanes=4,
                          mac_lanes=4, axis_elems=4, selector=selector),
        "bcc1": HDPConfig(seq_max=4, head_dim=4, block_cols=4, int_lanes=4, mac_lanes=4,
                          axis_elems=4, selector=selector),
    }


def golden_mask(bi, regs: Registers, config: HDPConfig) -> int:
    """The mask of one block row of valid blocks ``bi`` (columns 0 .. len(bi) - 1) under
    the config's selector policy."""
    full = np.zeros((1, config.block_col_count), dtype=np.int64)
    valid = np.zeros_like(full, dtype=bool)
    full[0, :len(bi)], valid[0, :len(bi)] = bi, True
    keep = golden.SELECTORS[config.selector](full, valid, regs, config)[0]
    return sum(int(k) << c for c, k in enumerate(keep))


def random_rows(rng: random.Random, config: HDPConfig, causal_like: bool) -> list[list[int]]:
    """The block rows of a head: causal-like (row r has r more valid blocks than the
    first) or full (every row as wide); random, tied, all-equal and extreme importances."""
    bcc = config.block_col_count
    lo, hi = -(1 << (config.sint_bits - 1)), (1 << (config.sint_bits - 1)) - 1
    rows, first = rng.randint(1, 6), rng.randint(1, bcc)
    sizes = [min(first + r, bcc) for r in range(rows)] if causal_like else [first] * rows
    draws = (lambda nb: [rng.randint(lo, hi) for _ in range(nb)],
             lambda nb: [rng.randint(-2, 2) for _ in range(nb)],          # many ties
             lambda nb: [rng.choice([lo, hi])] * nb,                      # all equal
             lambda nb: [rng.choice([lo, lo + 1, 0, hi]) for _ in range(nb)])
    return [draws[rng.randrange(4)](nb) for nb in sizes]


def run_heads(dut, heads, *, registers, seed: int, idle: float, backpressure: float,
              settle: int = 0, deadline_cycles: int = 400_000):
    """Each head's rows with its registers (``registers``: the unit's input names, read
    from the head's ``Registers`` fields of the same names; set while the selector is
    idle, as a start latches them, then ``settle`` cycles); returns every mask, in
    order."""
    rng = random.Random(seed)
    taken = []                          # a mark per mask taken, as it is taken
    masks = []

    async def source(ctx):
        sent = 0
        for regs, rows in heads:
            while len(taken) < sent:          # the head before is done
                await ctx.tick()
            for name in registers:
                ctx.set(getattr(dut, name), int(getattr(regs, name)))
            if settle:
                await ctx.tick().repeat(settle)
            sent += len(rows)
            for r, bi in enumerate(rows):
                for c, b in enumerate(bi):
                    while idle and rng.random() < idle:
                        ctx.set(dut.i_block.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.i_block.payload, {"bi": b, "col": c, "last": int(c == len(bi) - 1),
                                                  "last_row": int(r == len(rows) - 1)})
                    ctx.set(dut.i_block.valid, 1)
                    await ctx.tick().until(dut.i_block.ready)
            ctx.set(dut.i_block.valid, 0)

    async def sink(ctx):
        masks.extend(await recv_stream(ctx, dut.o_mask, sum(len(r) for _, r in heads),
                                       rng=rng, backpressure=backpressure))

    async def count(ctx):
        async for _, _, valid, ready in ctx.tick().sample(dut.o_mask.valid, dut.o_mask.ready):
            if valid and ready:
                taken.append(1)

    run_sim(dut, source, sink, extra=[count], deadline_cycles=deadline_cycles)
    return masks


def check_masks(got, heads, config, describe=lambda regs: ""):
    """``got`` (the masks :func:`run_heads` returned) against the golden masks, in order,
    with ``last_row`` on each head's last row."""
    i = 0
    for h, (regs, rows) in enumerate(heads):
        for r, bi in enumerate(rows):
            want = golden_mask(bi, regs, config)
            g = got[i]
            i += 1
            assert g.mask == want, (f"head {h} row {r} {bi} {describe(regs)} "
                                    f"prune={regs.block_prune_enable}: {g.mask:#x}, "
                                    f"expected {want:#x}")
            assert g.last_row == int(r == len(rows) - 1), f"head {h} row {r}: last_row"
    assert i == len(got)
