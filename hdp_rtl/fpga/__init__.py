"""FPGA builds of the co-processor with open tools (yosys, nextpnr via YoWASP).

``python -m hdp_rtl.fpga --board ulx3s-85f`` (default preset, ECP5-85F, 100 MHz) or
``--board icebreaker`` (edge preset, iCE40 UP5K, 24 MHz). See ``docs/fpga.md``.
"""
from .boards import BOARDS, Board, board
from .top import BoardTop

__all__ = ["BOARDS", "Board", "board", "BoardTop", "build"]


def build(*args, **kwargs):
    """See :func:`hdp_rtl.fpga.build.build`."""
    from .build import build as _build
    return _build(*args, **kwargs)
