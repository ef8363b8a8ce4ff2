"""AXI4-Stream beats of the unit tests, built with ``lib.data`` layouts: element ``j`` of
a beat in lane ``j`` (lane 0 lowest), sign-extended to the lane width. Shared by the
amaranth.sim tests (``tests/units``) and the cocotb modules (``tb/cocotb_<unit>.py``)."""
from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data

from hdp_rtl.config import HDPConfig
from sim.packing import pack, unpack

__all__ = ["input_beats", "output_rows"]


def _lanes(lane_bits: int, config: HDPConfig) -> data.ArrayLayout:
    return data.ArrayLayout(signed(lane_bits), config.axis_elems)


def input_beats(config: HDPConfig, x) -> list[dict]:
    """The ``s_axis`` beats of tensor ``x`` (``n x head_dim``), ``tlast`` on the last."""
    e = config.axis_elems
    chunks = [row[j * e:(j + 1) * e] for row in x for j in range(config.beats_per_row)]
    return [{"tdata": pack(_lanes(config.in_lane_bits, config), [int(v) for v in chunk]),
             "tlast": int(i == len(chunks) - 1)} for i, chunk in enumerate(chunks)]


def output_rows(config: HDPConfig, beats) -> list[list[int]]:
    """The output rows that ``m_axis`` beats (``tdata`` values) carry; raises when a lane
    is not the sign extension of an ``out_bits`` value."""
    lo, hi = -(1 << (config.out_bits - 1)), (1 << (config.out_bits - 1)) - 1
    values = [v for tdata in beats for v in unpack(_lanes(config.out_lane_bits, config), tdata)]
    outside = [v for v in values if not lo <= v <= hi]
    if outside:
        raise ValueError(f"lanes are not sign-extended {config.out_bits}-bit values: {outside}")
    d = config.head_dim
    return [values[i:i + d] for i in range(0, len(values), d)]
