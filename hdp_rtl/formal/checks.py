"""Every formal check, with its configuration, sby tasks and depths."""
from ..config import HDPConfig
from .axil import AxiLiteHarness
from .block_selector import BlockSelectorHarness
from .common import Check

__all__ = ["CHECKS", "by_name", "EDGE", "SMALL", "TINY"]

#: The ``edge`` preset (64 tokens, 32 dims, 4 lanes).
EDGE = HDPConfig.preset("edge")
#: A small variant for the units whose proofs grow with the widths.
SMALL = EDGE.replace(seq_max=8, head_dim=4, int_lanes=2, mac_lanes=2, axis_elems=2,
                     exp_lut_bits=3, exp_bits=6, prob_bits=6, recip_guard_bits=2,
                     score_scale_bits=8, score_scale_frac=10, out_bits=10, out_frac=6,
                     in_fifo_depth=2, out_fifo_depth=2)
#: The smallest useful configuration: whole heads fit in a short BMC / cover depth.
TINY = EDGE.replace(seq_max=4, head_dim=2, block_cols=2, int_lanes=1, mac_lanes=1,
                    axis_elems=1, int_bits=2, frac_bits=2, exp_lut_bits=2, exp_bits=4,
                    prob_bits=4, recip_guard_bits=0, score_scale_bits=6, score_scale_frac=6,
                    out_bits=8, out_frac=4, in_fifo_depth=2, out_fifo_depth=2)

CHECKS = [
    Check("axil", lambda: AxiLiteHarness(addr_width=8), {"prove": 4, "cover": 8},
          description="AXI4-Lite slave: B/R hold, one response per request, strobes"),
    Check("block_selector", lambda: BlockSelectorHarness(EDGE), {"prove": 4, "cover": 24},
          description="block selector (edge): stream rules, one mask per block row"),
    Check("block_selector_func", lambda: BlockSelectorHarness(SMALL, functional=True),
          {"bmc": 24}, description="block selector (small): mask keeps only received "
          "blocks, all without pruning, always the best"),
]


def by_name(name):
    return next(c for c in CHECKS if c.name == name)
