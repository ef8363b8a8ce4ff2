"""Small arithmetic builders shared by the units."""
from __future__ import annotations

__all__ = ["tree_sum", "tree_or", "lut_multiply", "first_set", "lowest_set_onehot",
           "onehot_index", "onehot_select", "count_equals", "registered_popcount", "delayed"]


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


def tree_or(values):
    """The bitwise OR of ``values``, as a balanced tree."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] | values[i + 1] for i in range(0, len(values) - 1, 2)] + \
            ([values[-1]] if len(values) % 2 else [])
    return values[0]


def lut_multiply(a, b):
    """``a * b`` as a balanced sum of shifted partial products, with no ``*`` operator.

    Synthesis maps every ``*`` to a hard multiplier (on ECP5 even a 2 x 2 product takes
    a whole MULT18X18D); a product of a few bits is cheaper in LUTs. ``b`` picks one
    shifted copy of ``a`` per bit; a signed ``b``'s top bit weighs ``-2**(w-1)``.
    Operands are Amaranth values, signed or not; the result has the shape ``a * b``
    would have, and is the exact product.
    """
    from amaranth.hdl import Mux, Value
    a, b = Value.cast(a), Value.cast(b)
    shape = (a * b).shape()            # only the shape: this product is never built
    terms = [Mux(b[j], a << j, 0) for j in range(len(b))]
    if b.shape().signed:
        terms[-1] = -terms[-1]
    total = Value.cast(tree_sum(terms))[:shape.width]
    return total.as_signed() if shape.signed else total


def first_set(bits, *, highest: bool = False):
    """``(found, index)`` of the lowest (or highest) set bit of ``bits``, index 0 when
    none is set, as a balanced tree: ``log2(n)`` multiplexer levels where a chain of
    ``if`` statements would be ``n`` deep."""
    from amaranth.hdl import Const, Mux, Value
    bits = Value.cast(bits)
    nodes = [(bits[i], Const(0, 1)) for i in range(len(bits))]   # (found, index in group)
    level = 0
    while len(nodes) > 1:
        pairs = []
        for i in range(0, len(nodes) - 1, 2):
            (f_lo, i_lo), (f_hi, i_hi) = nodes[i], nodes[i + 1]
            take_hi = f_hi if highest else ~f_lo
            pairs.append((f_lo | f_hi, Mux(take_hi, (i_hi | (1 << level)), i_lo)))
        if len(nodes) % 2:
            f, idx = nodes[-1]
            pairs.append((f, idx))
        nodes = pairs
        level += 1
    found, index = nodes[0]
    return found, Mux(found, index, 0)


def lowest_set_onehot(bits):
    """The lowest set bit of ``bits`` alone (all zero when none is set), as plain logic:
    bit ``i`` is ``bits[i]`` and no lower bit (a prefix OR, no carry chain), so LUT
    mapping keeps it about ``log4(n)`` levels deep."""
    from amaranth.hdl import Cat, Value
    bits = Value.cast(bits)
    return Cat(bits[0], *(bits[i] & ~bits[:i].any() for i in range(1, len(bits))))


def onehot_index(onehot, width: int | None = None):
    """The index of the set bit of a one-hot (or all-zero: 0) ``onehot``, as an OR of
    the bits whose index has each bit set: one OR tree per index bit."""
    from amaranth.hdl import Cat, Const, Value
    onehot = Value.cast(onehot)
    width = width if width is not None else max(1, (len(onehot) - 1).bit_length())
    index_bits = []
    for k in range(width):
        terms = [onehot[i] for i in range(len(onehot)) if (i >> k) & 1]
        index_bits.append(Cat(*terms).any() if terms else Const(0, 1))
    return Cat(*index_bits)


def onehot_select(onehot, words):
    """``words[i]`` for the set bit ``i`` of a one-hot ``onehot`` (0 when none is set):
    an AND-OR multiplexer, with no binary select to decode."""
    from amaranth.hdl import Value
    onehot = Value.cast(onehot)
    words = [Value.cast(w) for w in words]
    assert len(words) == len(onehot)
    width = max(len(w) for w in words)
    total = 0
    for i, word in enumerate(words):
        total = total | (word & onehot[i].replicate(width))
    return total


def count_equals(bits, k: int):
    """``1`` when exactly ``k`` bits of ``bits`` are set, as plain logic (no adder, so no
    carry chain): a balanced tree of counts saturated at ``k + 1``, each a one-hot list
    of "the count is v" terms, which LUT mapping folds into a few levels for small ``k``."""
    from amaranth.hdl import Cat, Const, Value
    bits = Value.cast(bits)
    cap = k + 1
    if len(bits) == 0:
        return Const(int(k == 0), 1)
    # each node: [count == 0, count == 1, ..., count >= cap]
    nodes = [[~bits[i], bits[i]] + [Const(0, 1)] * (cap - 1) for i in range(len(bits))]
    while len(nodes) > 1:
        paired = []
        for i in range(0, len(nodes) - 1, 2):
            lo, hi = nodes[i], nodes[i + 1]
            out = []
            for v in range(cap + 1):
                terms = [lo[a] & hi[b] for a in range(cap + 1) for b in range(cap + 1)
                         if (a + b == v if v < cap else a + b >= cap)]
                out.append(Cat(*terms).any())
            paired.append(out)
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    return nodes[0][k]


def registered_sum(m, terms, *, group: int = 4, name: str = "sum"):
    """The sum of ``terms`` (unsigned values) over registered stages: each stage sums
    groups of ``group`` terms (a balanced tree, ``log2(group)`` adders deep) into
    registers, until one sum is left. Returns ``(sum, stages)``: the sum of the terms of
    ``stages`` cycles ago (0 stages for a single term)."""
    from amaranth.hdl import Signal, Value
    terms, stages = [Value.cast(t) for t in terms], 0
    while len(terms) > 1:
        sums = []
        for j in range(0, len(terms), group):
            total = Value.cast(tree_sum(terms[j:j + group]))
            reg = Signal(len(total), name=f"{name}_{stages + 1}_{j // group}")
            m.d.sync += reg.eq(total)
            sums.append(reg)
        terms, stages = sums, stages + 1
    return terms[0], stages


def registered_popcount(m, bits, *, group: int = 8, name: str = "popcount"):
    """The number of ones in ``bits``, summed over registered stages: ``bits`` is
    registered, then :func:`registered_sum` adds them in groups of ``group``. Returns
    ``(count, latency)``: the count of the ``bits`` of ``latency`` cycles ago. For a
    statistic, whose latency is free; a one-cycle popcount of a wide mask is many LUT
    levels deep."""
    from amaranth.hdl import Signal, Value
    bits = Value.cast(bits)
    held = Signal(len(bits), name=f"{name}_in")
    m.d.sync += held.eq(bits)
    count, stages = registered_sum(m, [held[i] for i in range(len(bits))], group=group,
                                   name=name)
    return count, stages + 1


def delayed(m, value, cycles: int, *, name: str = "delayed"):
    """``value`` as it was ``cycles`` cycles ago (a chain of registers)."""
    from amaranth.hdl import Signal, Value
    value = Value.cast(value)
    for i in range(cycles):
        reg = Signal(len(value), name=f"{name}_{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
