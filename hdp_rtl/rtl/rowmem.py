"""The row-buffer read interface shared by every unit that reads Q, K or V.

A buffer holds one token's row (``head_dim`` elements of ``B`` bits) per word, so a
unit reads a whole row with one address. Read latency is one cycle, as for an
``amaranth.lib.memory`` synchronous read port: ``data`` holds the row addressed in
the previous cycle in which ``en`` was high.
"""
from amaranth.hdl import signed
from amaranth.lib import data, memory

from ..widths import index_bits

__all__ = ["row_layout", "RowReadSignature"]


def row_layout(*, head_dim: int, data_bits: int) -> data.ArrayLayout:
    """One Q/K/V row: ``head_dim`` signed ``data_bits``-bit elements."""
    return data.ArrayLayout(signed(data_bits), head_dim)


def RowReadSignature(*, seq_max: int, head_dim: int, data_bits: int) -> memory.ReadPort.Signature:
    """The signature of a row-buffer read port, as the buffer sees it.

    A unit that reads takes it flipped: ``q_rd: In(RowReadSignature(...))`` gives the
    unit ``addr``/``en`` outputs and a ``data`` input, and ``wiring.connect`` joins it
    to the buffer's ``memory.ReadPort`` directly.
    """
    return memory.ReadPort.Signature(addr_width=index_bits(seq_max),
                                     shape=row_layout(head_dim=head_dim, data_bits=data_bits))
