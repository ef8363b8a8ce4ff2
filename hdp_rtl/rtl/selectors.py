"""The selection seam: which block-selection unit the generator builds for a config.

A selector is a ``wiring.Component`` with

- ``i_block: In(stream.Signature(block_layout))``: the valid blocks' importances of each
  block row, from the integer pass (``last`` ends a block row, ``last_row`` the head);
- ``o_mask: Out(stream.Signature(mask_layout))``: one keep mask per block row, in order;
- ``from_config(config)``, and ``drive_registers(m, run)``, which connects the run-time
  registers it reads from the register file's latched ``run`` struct.

Its golden twin is the policy function of the same name in ``golden.selectors``. Units:
``"hdp"`` :class:`BlockSelector` (top-k-free), ``"topk"`` :class:`TopKSelector`
(SpAtten-style per-row top-k, with the ``block_k`` register), ``"threshold"``
:class:`ThresholdSelector` (LeOPArd-style score threshold, with the ``score_threshold``
register). A new policy is one unit, one entry here, one golden function and its name in
``hdp_rtl.config.SELECTOR_NAMES``; a register of its own goes into the register map
for its configs (``hdp_rtl.regmap.register_map``) and the latched ``run`` struct
(``hdp_rtl.rtl.regfile.SELECTOR_REGISTERS``).
"""
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .block_selector import BlockSelector
from .layouts import block_layout, mask_layout
from .threshold_selector import ThresholdSelector
from .topk_selector import TopKSelector

__all__ = ["SELECTOR_UNITS", "build_selector", "selector_signature"]

#: ``HDPConfig.selector`` -> unit class.
SELECTOR_UNITS = {"hdp": BlockSelector, "topk": TopKSelector, "threshold": ThresholdSelector}


def selector_signature(config) -> wiring.Signature:
    """The seam's streams, as a selector unit sees them."""
    return wiring.Signature({
        "i_block": In(stream.Signature(block_layout(sint_bits=config.sint_bits,
                                                    block_col_bits=config.block_col_bits))),
        "o_mask": Out(stream.Signature(mask_layout(block_col_count=config.block_col_count))),
    })


def build_selector(config):
    """The selector unit ``config.selector`` names."""
    return SELECTOR_UNITS[config.selector].from_config(config)
