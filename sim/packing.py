"""Pack and unpack Amaranth shapes and ``lib.data`` layouts to and from plain integers.

Testbenches drive and read payload ports of generated Verilog as bit vectors; these
helpers keep the field offsets in the Amaranth layout, the one place they are defined.
"""
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "width"]


def width(shape) -> int:
    return shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width


def pack(shape, value) -> int:
    """The bit pattern of ``value`` (int, dict for structs, sequence for arrays)."""
    if isinstance(shape, data.Layout):
        bits = 0
        for key, field in shape:
            if isinstance(shape, data.ArrayLayout):
                item = value[key]
            else:
                item = value.get(key, 0) if isinstance(value, dict) else getattr(value, key)
            bits |= pack(field.shape, item) << field.offset
        return bits
    s = Shape.cast(shape)
    value = int(value)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit {s!r}")
    return value & ((1 << s.width) - 1)


def unpack(shape, bits: int):
    """The value of bit pattern ``bits``: int, dict for structs, list for arrays."""
    bits = int(bits)
    if isinstance(shape, data.Layout):
        items = {key: unpack(field.shape, (bits >> field.offset) & ((1 << width(field.shape)) - 1))
                 for key, field in shape}
        if isinstance(shape, data.ArrayLayout):
            return [items[i] for i in range(shape.length)]
        return items
    s = Shape.cast(shape)
    bits &= (1 << s.width) - 1
    if s.signed and s.width and bits >> (s.width - 1):
        bits -= 1 << s.width
    return bits
