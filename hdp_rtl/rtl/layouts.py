"""Stream payload layouts between the units, defined once for the RTL and the testbenches.

Each function takes the widths it needs as keyword arguments; ``*_for(config)`` helpers
pick them from an :class:`~hdp_rtl.config.HDPConfig`.
"""
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

__all__ = ["block_layout", "mask_layout", "pair_layout", "score_layout", "prob_layout",
           "out_chunk_layout", "out_chunk_signature", "layouts_for"]


def block_layout(*, sint_bits: int, block_col_bits: int) -> data.StructLayout:
    """Head scorer -> block selector: one valid block's importance.

    Beats come block row by block row, valid blocks in column order; ``last`` marks a
    block row's final valid block, ``last_row`` the head's final block row.
    """
    return data.StructLayout({"bi": signed(sint_bits), "col": unsigned(block_col_bits),
                              "last": 1, "last_row": 1})


def mask_layout(*, block_col_count: int) -> data.StructLayout:
    """Block selector -> controller: the keep mask of one block row (bit C keeps block C)."""
    return data.StructLayout({"mask": unsigned(block_col_count), "last_row": 1})


def pair_layout(*, seq_bits: int) -> data.StructLayout:
    """Controller -> MAC array: one kept pair (row, col); ``last`` ends the row."""
    return data.StructLayout({"row": unsigned(seq_bits), "col": unsigned(seq_bits), "last": 1})


def score_layout(*, score_bits: int, seq_bits: int) -> data.StructLayout:
    """MAC array -> softmax: the full score of one kept pair; ``last`` ends the row."""
    return data.StructLayout({"score": signed(score_bits), "col": unsigned(seq_bits), "last": 1})


def prob_layout(*, prob_value_bits: int, seq_bits: int) -> data.StructLayout:
    """Softmax -> MAC array: one probability (``prob_bits`` fraction bits); ``last`` ends the row."""
    return data.StructLayout({"prob": unsigned(prob_value_bits), "col": unsigned(seq_bits),
                              "last": 1})


def out_chunk_layout(*, out_bits: int, mac_lanes: int) -> data.StructLayout:
    """MAC array -> output serializer: ``mac_lanes`` consecutive outputs of a row in the
    output format, chunks of a row in order; ``last`` ends the row."""
    return data.StructLayout({"out": data.ArrayLayout(signed(out_bits), mac_lanes), "last": 1})


def out_chunk_signature(*, out_bits: int, mac_lanes: int) -> wiring.Signature:
    """The MAC array -> serializer link: ``valid`` and ``out_chunk_layout`` ``payload``,
    no ``ready`` (the MAC array sends a row only on a credit from the serializer)."""
    return wiring.Signature({"valid": Out(1),
                             "payload": Out(out_chunk_layout(out_bits=out_bits,
                                                             mac_lanes=mac_lanes))})


def layouts_for(config) -> dict[str, data.StructLayout]:
    """Every inter-unit layout of ``config``, by name."""
    return {
        "block": block_layout(sint_bits=config.sint_bits, block_col_bits=config.block_col_bits),
        "mask": mask_layout(block_col_count=config.block_col_count),
        "pair": pair_layout(seq_bits=config.seq_bits),
        "score": score_layout(score_bits=config.score_bits, seq_bits=config.seq_bits),
        "prob": prob_layout(prob_value_bits=config.prob_value_bits, seq_bits=config.seq_bits),
        "out_chunk": out_chunk_layout(out_bits=config.out_bits, mac_lanes=config.mac_lanes),
    }
