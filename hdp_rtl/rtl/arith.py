"""Small arithmetic builders shared by the units."""
from __future__ import annotations

__all__ = ["tree_sum"]


def tree_sum(values):
    """The sum of ``values`` as a balanced adder tree (``log2(n)`` adders deep).

    Python's ``sum()`` builds a chain ``n`` adders deep; synthesis does not always
    rebalance it, and on an FPGA it sets the clock (and once overflowed yosys' stack).
    Each add widens by one bit, so no partial sum can overflow.
    """
    values = list(values)
    if not values:
        return 0
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]
