"""Every formal check, with its configuration, sby tasks and depths."""
from ..config import RHO_ONE, HDPConfig
from ..regmap import AXIL_ADDR_BITS
from ..rtl.top import ROWS_IN_FLIGHT
from .axil import AxiLiteHarness
from .block_selector import BlockSelectorHarness, MeanLemmaHarness
from .chain import ChainHarness
from .common import Check
from .head_scorer import HeadScorerHarness
from .mac_array import MacArrayHarness
from .pair_generator import PairGeneratorHarness
from .serializer import SerializerHarness, serializer_for
from .softmax import SoftmaxHarness
from .top import TopBusHarness, TopHeadHarness
from .top_control import TopControlHarness

__all__ = ["CHECKS", "by_name", "EDGE", "SMALL", "TINY"]

#: The ``edge`` preset (64 tokens, 32 dims, 4 lanes).
EDGE = HDPConfig.preset("edge")
#: A small variant for the units whose proofs grow with the widths.
SMALL = EDGE.replace(seq_max=8, head_dim=4, int_lanes=2, mac_lanes=2, axis_elems=2,
                     pv_acc_ram=False,
                     exp_lut_bits=3, exp_bits=6, prob_bits=6, recip_guard_bits=2,
                     score_scale_bits=8, score_scale_frac=10, out_bits=10, out_frac=6)
#: The smallest useful configuration: whole heads fit in a short BMC / cover depth.
TINY = EDGE.replace(seq_max=4, head_dim=2, block_cols=2, int_lanes=1, mac_lanes=1,
                    pv_acc_ram=False,
                    axis_elems=1, int_bits=2, frac_bits=2, exp_lut_bits=2, exp_bits=4,
                    prob_bits=4, recip_guard_bits=0, score_scale_bits=6, score_scale_frac=6,
                    out_bits=8, out_frac=4)


CHECKS = [
    Check("axil", lambda: AxiLiteHarness(addr_width=AXIL_ADDR_BITS), {"prove": 4, "cover": 8},
          description="AXI4-Lite slave: B/R hold, one response per request, strobes"),
    Check("block_selector", lambda: BlockSelectorHarness(SMALL), {"prove": 40, "cover": 24},
          description="block selector (small): stream rules, one mask per block row, latency"),
    Check("block_selector_func",
          lambda: BlockSelectorHarness(SMALL, functional=True, mean_best=False),
          {"bmc": 16}, timeout=300, description="block selector (small): mask keeps only received "
          "blocks, all without pruning, the best (delta rule; the mean rule's times out)"),
    Check("block_selector_func_mean",
          lambda: BlockSelectorHarness(SMALL, functional=True,
                                       rho_values=(-256, -1, 0, 1, 128, 255, 256)),
          {"bmc": 13}, timeout=600, quick=False, description="block selector (small), rho in "
          "{-256, -1, 0, 1, 128, 255, 256}: as block_selector_func, the best (both rules)"),
    Check("block_selector_serial", lambda: BlockSelectorHarness(SMALL, serial=True),
          {"prove": 40, "cover": 40}, description="block selector (small), the serial "
          "margin of the mean rule (edge's): stream rules, one mask per block row, latency"),
    Check("block_selector_serial_func",
          lambda: BlockSelectorHarness(SMALL, functional=True, serial=True), {"bmc": 28},
          timeout=600, quick=False, description="block selector (small, serial): mask keeps "
          "only received blocks, all without pruning, the best (both rules, any rho)"),
    # the row's best block kept, unbounded (k-induction over BlockSelector.state)
    Check("block_selector_serial_best",
          lambda: BlockSelectorHarness(SMALL, serial=True, best=True, mean_cover=False),
          {"prove": 2, "cover": 12}, description="block selector (small, serial): the row's "
          "best block kept (both rules, any rho, any delta), last_row copied, by k-induction"),
    # (the serial mean rule's threshold takes about 30 cycles a row: its cover, step 34)
    Check("block_selector_serial_best_cover",
          lambda: BlockSelectorHarness(SMALL, serial=True, best=True), {"cover": 36},
          quick=False, description="block selector (small, serial): as "
          "block_selector_serial_best, a block pruned by the mean rule reachable"),
    # (prove 80-85 s: not quick; the mean rule's best block for the products: see docs)
    Check("block_selector_best_delta",
          lambda: BlockSelectorHarness(SMALL, best=True, mean_best=False),
          {"prove": 2, "cover": 12}, quick=False,
          description="block selector (small, products): the row's best block kept by the delta rule (any delta), last_row copied, by "
          "k-induction"),
    # (rho free: no answer in 240 s; a 16-value set: 216 s; each value about 11 s)
    Check("block_selector_best_mean7",
          lambda: BlockSelectorHarness(SMALL, best=True,
                                       rho_values=(-256, -1, 0, 1, 128, 255, 256)),
          {"prove": 2, "cover": 12}, description="block selector (small, products), rho in "
          "{-256, -1, 0, 1, 128, 255, 256}: the row's best block kept (both rules), "
          "last_row copied, by k-induction"),
    # the products' mean rule for any rho, assume-guarantee: block_selector_lemma proves
    # mean_lemma for every rho, block_selector_best_delta the products registered at s1,
    # and block_selector_best_mean assumes both (flattened: the lemma's products are the
    # selector's own multipliers)
    # (all 513 values in one prove: not finished in 20 min; 16 values took 36 s: so 16
    # checks of 32 values (the last also 256), each a combinational bmc (1))
    *[Check(f"block_selector_lemma_{i:02d}",
            lambda lo=lo: MeanLemmaHarness(SMALL, rho_values=range(
                lo, lo + 32 + (lo + 32 == RHO_ONE))),
            {"bmc": 1}, quick=False, timeout=3600,
            description=f"the mean rule's lemma at the small selector's widths, rho in "
            f"{lo}..{lo + 31 + (lo + 32 == RHO_ONE)}")
      for i, lo in enumerate(range(-RHO_ONE, RHO_ONE, 32))],
    Check("block_selector_best_mean",
          lambda: BlockSelectorHarness(SMALL, best=True, lemma=True, assume_products=True),
          {"prove": 2, "cover": 12}, flatten=True, description="block selector (small, "
          "products), any rho: the row's best block kept (both rules), last_row copied, by "
          "k-induction, block_selector_lemma's and block_selector_best_delta's facts assumed"),
    Check("head_scorer", lambda: HeadScorerHarness(EDGE), {"prove": 4, "cover": 30},
          description="head scorer (edge): o_block stream rules"),
    # (bmc 40 timed out at 900 s on a loaded machine, step 38 at 14 min; step 32 takes
    # about 4 min there: the quick check stops there, 10 steps past a whole head)
    Check("head_scorer_beats", lambda: HeadScorerHarness(TINY, beats=True),
          {"bmc": 32, "cover": 40},
          description="head scorer (tiny): block columns, last, last_row per head"),
    Check("head_scorer_beats_deep", lambda: HeadScorerHarness(TINY, beats=True),
          {"bmc": 40}, quick=False, timeout=3600,
          description="head scorer (tiny): as head_scorer_beats, 40 cycles"),
    Check("softmax", lambda: SoftmaxHarness(EDGE), {"prove": 4, "cover": 40},
          description="softmax (edge): o_prob stream rules"),
    Check("softmax_beats",
          lambda: SoftmaxHarness(TINY, beats=True, order=False, invariants=True),
          {"prove": 1, "cover": 24},
          description="softmax (tiny): rows and beats inside bounded, none out without one in"),
    Check("softmax_beats_reset",
          lambda: SoftmaxHarness(TINY, beats=True, order=False, invariants=True,
                                 free_reset=True),
          {"prove": 1}, description="softmax (tiny), reset free in every cycle (mid-row too): "
          "as softmax_beats, since the last reset"),
    Check("softmax_beats_order", lambda: SoftmaxHarness(TINY, beats=True), {"bmc": 24},
          description="softmax (tiny): every beat once, in order, col/last copied (BMC)"),
    Check("mac_array", lambda: MacArrayHarness(EDGE), {"prove": 4, "cover": 24},
          description="MAC array (edge): o_score stream rules, o_chunk rows and credits"),
    Check("mac_array_beats", lambda: MacArrayHarness(TINY, beats=True),
          {"prove": 4, "cover": 24},
          description="MAC array (tiny): one score per pair in order, one row per prob row"),
    Check("mac_array_beats_reset", lambda: MacArrayHarness(TINY, beats=True, free_reset=True),
          {"prove": 4}, description="MAC array (tiny), reset free in every cycle (mid-row "
          "too): as mac_array_beats, since the last reset"),
    Check("mac_array_ram", lambda: MacArrayHarness(TINY.replace(head_dim=4, pv_acc_ram=True),
                                                   hazard=True),
          {"bmc": 24, "cover": 24}, description="MAC array (tiny, 4 chunks, P x V accumulators "
          "in block RAM): stream rules, no accumulator word read as it is written"),
    Check("pair_generator_rows", lambda: PairGeneratorHarness(TINY, rows_in_flight=ROWS_IN_FLIGHT),
          {"prove": 4, "cover": 30},
          description="pair generator (tiny): rows 0..N-1 in order, each a zero row or pairs "
          "ending in last, after go, row credits"),
    Check("pair_generator_rows_br2",
          lambda: PairGeneratorHarness(TINY, block_rows=2, rows_in_flight=ROWS_IN_FLIGHT),
          {"prove": 4, "cover": 30},
          description="pair generator (tiny, 2 rows a block row): as pair_generator_rows"),
    Check("pair_generator_rows_edge",
          lambda: PairGeneratorHarness(EDGE, rows_in_flight=ROWS_IN_FLIGHT, cover_rows=2),
          {"prove": 4, "cover": 30},
          description="pair generator (edge, 16 block columns): as pair_generator_rows"),
    Check("pair_generator_rows_segments",
          lambda: PairGeneratorHarness(EDGE, block_cols=2, rows_in_flight=ROWS_IN_FLIGHT,
                                       cover_rows=2),
          {"prove": 4, "cover": 30},
          description="pair generator (edge with 32 block columns: 2 segments of 16): as "
          "pair_generator_rows"),
    Check("pair_generator_rows_reset",
          lambda: PairGeneratorHarness(TINY, rows_in_flight=ROWS_IN_FLIGHT, free_reset=True),
          {"prove": 4, "cover": 30},
          description="pair generator (tiny), reset free in every cycle (mid-head too): as "
          "pair_generator_rows, for the head since the last reset"),
    Check("serializer_beats", lambda: SerializerHarness(params=serializer_for(TINY)),
          {"prove": 4, "cover": 24},
          description="output serializer (tiny), its input contract assumed: N*bpr beats, "
          "tlast on the last, done, row_free/row_done once a row"),
    Check("serializer_beats_words",
          lambda: SerializerHarness(params=serializer_for(TINY, head_dim=4, mac_lanes=2,
                                                          axis_elems=1, buffers=4)),
          {"prove": 4, "cover": 32},
          description="output serializer (tiny, 2 beats a RAM word, 4 row buffers): as "
          "serializer_beats"),
    Check("serializer_beats_gather",
          lambda: SerializerHarness(params=serializer_for(TINY, head_dim=4, mac_lanes=1,
                                                          axis_elems=2, buffers=1)),
          {"prove": 4, "cover": 40},
          description="output serializer (tiny, 2 chunks gathered a RAM word, 1 row buffer): "
          "as serializer_beats"),
    Check("serializer_beats_edge",
          lambda: SerializerHarness(params=serializer_for(EDGE), cover_rows=2),
          {"prove": 4, "cover": 64},
          description="output serializer (edge, 16 beats a row): as serializer_beats"),
    Check("serializer_beats_reset",
          lambda: SerializerHarness(params=serializer_for(TINY), free_reset=True),
          {"prove": 4, "cover": 24},
          description="output serializer (tiny), reset free in every cycle (mid-head too): "
          "as serializer_beats, for the head since the last reset"),
    Check("chain_beats_cover", lambda: ChainHarness(TINY, invariants=False), {"cover": 56},
          quick=False, timeout=3600,
          description="attention chain (tiny), chain_beats's assumptions: a head of zero "
          "rows, a computed row, a head with one, sent"),
    Check("chain_beats_reset", lambda: ChainHarness(TINY, free_reset=True), {"prove": 4},
          quick=False, description="attention chain (tiny), reset free in every cycle "
          "(mid-head too): as chain_beats, for the head since the last reset"),
    Check("chain_beats_reset_cover", lambda: ChainHarness(TINY, invariants=False,
                                                          free_reset=True),
          {"cover": 64}, quick=False, timeout=3600,
          description="attention chain (tiny), chain_beats_reset's assumptions: a head with "
          "a computed row sent after a reset mid-head"),
    Check("chain_beats", lambda: ChainHarness(TINY), {"prove": 4}, quick=False,
          description="attention chain (tiny): pair generator's guarantee -> MAC array -> "
          "softmax -> serializer, the contracts between them and N*bpr beats, tlast"),
    Check("chain_beats_chunks4", lambda: ChainHarness(TINY.replace(head_dim=4)),
          {"prove": 4}, quick=False,
          description="attention chain (tiny, head_dim 4: 4 chunks and 4 beats a row): as "
          "chain_beats"),
    Check("chain_beats_lanes2",
          lambda: ChainHarness(TINY.replace(head_dim=4, mac_lanes=2, axis_elems=2)),
          {"prove": 4}, quick=False,
          description="attention chain (tiny, head_dim 4, 2 MAC lanes, 2 elements a beat): "
          "as chain_beats"),
    Check("chain_beats_seq8", lambda: ChainHarness(TINY.replace(seq_max=8)), {"prove": 4},
          quick=False, timeout=2400,
          description="attention chain (tiny, seq_max 8: rows of up to 8 pairs, N up to 8): "
          "as chain_beats (~19 min)"),
    Check("top_axil", lambda: TopBusHarness(EDGE, m_axis=False), {"prove": 4, "cover": 8},
          description="top (edge), free ports: AXI4-Lite rules on the top's port"),
    Check("top_bus", lambda: TopBusHarness(TINY), {"bmc": 48, "cover": 48}, quick=False,
          description="top (tiny), free AXI4-Lite and s_axis: AXI4-Lite rules, m_axis rules"),
    # (a kept 1-row head's last beat is the cover's step 82 since issue 11's pipelining)
    Check("top_head", lambda: TopHeadHarness(TINY), {"bmc": 60, "cover": 88}, quick=False,
          timeout=1500,
          description="top (tiny), one head of any N: N*bpr beats, tlast on the last"),
    Check("top_head_contracts", lambda: TopHeadHarness(TINY, contracts=True), {"bmc": 60},
          quick=False, description="top (tiny), the top_head host: the serializer's and the "
          "pair generator's input contracts (their proofs' assumptions) hold in the core"),
    Check("top_control", lambda: TopControlHarness(TINY), {"prove": 4, "cover": 40},
          description="top (tiny), the top_head host: the units' start once after the "
          "ctrl.start write, seq_len/causal held, go once after it, no stop, no clear"),
    Check("top_control_free", lambda: TopControlHarness(TINY, free_datapath=True),
          {"prove": 4, "cover": 40},
          description="top (tiny), as top_control with the sequencer's datapath inputs "
          "free in every cycle: the control clauses hold for any datapath"),
    Check("top_control_reset", lambda: TopControlHarness(TINY, free_reset=True),
          {"prove": 4, "cover": 60}, quick=False,
          description="top (tiny), rst free (mid-head too), host restarts: as top_control, "
          "for the head since the last reset"),
    Check("top_reset", lambda: TopHeadHarness(TINY, reset_midway=True),
          {"bmc": 70, "cover": 64}, quick=False, timeout=1800,
          description="top (tiny), rst free (mid-head too), host restarts: the head after "
          "the last reset N*bpr beats, tlast on the last"),
]


def by_name(name):
    return next(c for c in CHECKS if c.name == name)
