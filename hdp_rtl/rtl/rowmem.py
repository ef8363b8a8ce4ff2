"""The row-buffer read interface shared by every unit that reads Q, K or V.

A buffer holds each token's row (``head_dim`` elements of ``B`` bits) as ``words``
words of ``word_elems`` elements (``HDPConfig.row_word_elems``), word ``w`` of row
``r`` at address ``r * words + w`` (:func:`word_addr`), so a unit reads one word with
one address. Read latency is one cycle, as for an ``amaranth.lib.memory`` synchronous
read port: ``data`` holds the word addressed in the previous cycle in which ``en`` was
high.
"""
from amaranth.hdl import Cat, Const, Value, signed
from amaranth.lib import data, memory

from ..widths import clog2, index_bits

__all__ = ["row_layout", "RowReadSignature", "word_addr", "buffer_words"]


def row_layout(*, head_dim: int, data_bits: int) -> data.ArrayLayout:
    """One Q/K/V row, or one word of it: ``head_dim`` signed ``data_bits``-bit elements."""
    return data.ArrayLayout(signed(data_bits), head_dim)


def buffer_words(rows, words: int) -> list:
    """The buffer's words, in address order, of a row-major ``rows`` (lists of elements)."""
    out = []
    for r in rows:
        r = list(r)
        n = len(r) // words
        out.extend(r[w * n:(w + 1) * n] for w in range(words))
    return out


def word_addr(row, word, *, words: int):
    """The address of word ``word`` of row ``row`` (``words`` a power of two)."""
    if words == 1:
        return row
    bits = clog2(words)
    return Cat(Const(word, bits) if isinstance(word, int) else Value.cast(word)[:bits], row)


def RowReadSignature(*, seq_max: int, head_dim: int, data_bits: int,
                     word_elems: int | None = None) -> memory.ReadPort.Signature:
    """The signature of a row-buffer read port, as the buffer sees it.

    A unit that reads takes it flipped: ``q_rd: In(RowReadSignature(...))`` gives the
    unit ``addr``/``en`` outputs and a ``data`` input, and ``wiring.connect`` joins it
    to the buffer's ``memory.ReadPort`` directly. ``word_elems`` defaults to a whole row.
    """
    word_elems = word_elems or head_dim
    return memory.ReadPort.Signature(
        addr_width=index_bits(seq_max) + clog2(head_dim // word_elems),
        shape=row_layout(head_dim=word_elems, data_bits=data_bits))
