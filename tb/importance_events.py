"""Random stimulus for the importance unit and what it must report, shared by its
amaranth.sim test and its cocotb test."""
import random

import numpy as np

from golden.spatten import head_importance_out

__all__ = ["random_head"]


def random_head(config, rng: random.Random, n: int, gap: float):
    """A head of ``n`` keys as the unit sees it: ``(events, keys, out_importance)``.

    ``events`` has one ``(prob, chunk)`` per cycle: ``prob`` is ``(col, code)`` or None
    (no probability taken), ``chunk`` a list of ``mac_lanes`` output codes or None.
    Columns repeat back to back (the read-add-write hazards), codes take their extremes.
    ``keys`` are the expected sums per key (the golden column sums), ``out_importance``
    the expected :func:`golden.spatten.head_importance_out`.
    """
    one = 1 << config.prob_bits
    lanes, top = config.mac_lanes, 1 << (config.out_bits - 1)
    keys = np.zeros(n, np.int64)
    outs, events = [], []
    for _ in range(rng.randint(n, 4 * n)):
        if rng.random() < gap:
            events.append((None, None))
            continue
        before = events[-1][0] if events and events[-1][0] else None
        col = rng.choice([rng.randrange(n), before[0] if before else 0, n - 1])
        code = rng.choice([0, one, rng.randrange(one + 1)])
        keys[col] += code
        chunk = None
        if rng.random() < 0.5:
            chunk = [rng.choice([-top, top - 1, rng.randrange(-top, top)])
                     for _ in range(lanes)]
            outs.extend(chunk)
        events.append(((col, code), chunk))
    return events, keys, head_importance_out(np.array(outs or [0]))
