"""The HDP co-processor: row buffers, units, controller, registers and AXI ports."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import HDPConfig, RHO_ONE
from ..regmap import COUNTERS, FLAG_FIELDS, register_map
from .arith import tree_sum
from .axil import AxiLiteSlave, axil_members
from .block_selector import BlockSelector
from .head_scorer import HeadScorer
from .mac_array import MacArray
from .rowmem import row_layout
from .softmax import Softmax

__all__ = ["HDPCoprocessor", "ERROR_CODES", "AXIL_ADDR_BITS"]

AXIL_ADDR_BITS = 8
#: Rows allowed between the pair generator and the end of P x V (see ROW_FETCH).
ROWS_IN_FLIGHT = 2

#: STATUS.error_code values (also in the register map's description).
ERROR_CODES = {
    "seq_len_zero": 1, "seq_len_too_big": 2, "flags_reserved": 3, "rho_range": 4,
    "bad_address": 5, "field_overflow": 6, "start_while_busy": 7, "input_lane": 8,
    "input_tlast": 9,
}


class HDPCoprocessor(wiring.Component):
    """One-head-at-a-time HDP attention co-processor.

    The host writes the run-time registers over AXI4-Lite, writes ``ctrl.start``, then
    streams the head's Q rows, K rows and V rows on ``s_axis`` (``seq_len`` rows each,
    ``beats_per_row`` beats a row, ``tlast`` on the last beat of each tensor) and reads
    ``seq_len`` output rows on ``m_axis`` (``tlast`` on the head's last beat). See
    ``docs/interface.md``.

    Parameters
    ----------
    config : HDPConfig
        Every elaboration parameter.

    Members
    -------
    s_axil_* : AXI4-Lite slave (registers, ``AXIL_ADDR_BITS`` address bits)
    s_axis_tdata/tvalid/tready/tlast : AXI4-Stream input (Q, K, V rows)
    m_axis_tdata/tvalid/tready/tlast : AXI4-Stream output (output rows)
    """

    def __init__(self, config: HDPConfig):
        self.config = config
        members = axil_members("s_axil", addr_width=AXIL_ADDR_BITS)
        members.update({
            "s_axis_tdata": In(config.s_axis_bits), "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "m_axis_tdata": Out(config.m_axis_bits), "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1), "m_axis_tlast": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        n_elems, B = cfg.head_dim, cfg.data_bits
        bpr = cfg.beats_per_row

        # ---- units ------------------------------------------------------------------
        m.submodules.axil = axil = AxiLiteSlave(addr_width=AXIL_ADDR_BITS)
        m.submodules.scorer = scorer = HeadScorer.from_config(cfg)
        m.submodules.selector = selector = BlockSelector.from_config(cfg)
        m.submodules.mac = mac = MacArray.from_config(cfg)
        m.submodules.softmax = softmax = Softmax.from_config(cfg)
        for name in axil_members("s_axil", addr_width=AXIL_ADDR_BITS):
            ours, theirs = getattr(self, name), getattr(axil, name)
            if self.signature.members[name].flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        wiring.connect(m, scorer.o_block, selector.i_block)
        wiring.connect(m, mac.o_score, softmax.i_score)
        wiring.connect(m, softmax.o_prob, mac.i_prob)

        # ---- row buffers: one row of head_dim elements per word ---------------------
        rows = row_layout(head_dim=n_elems, data_bits=B)
        bufs = {}
        for t in "qkv":
            mem = memory.Memory(shape=rows, depth=cfg.seq_max, init=[])
            m.submodules[f"{t}_buf"] = mem
            bufs[t] = (mem.write_port(), mem.read_port())
        mask_mem = memory.Memory(shape=cfg.block_col_count, depth=cfg.block_row_count, init=[])
        m.submodules.mask_buf = mask_mem
        mask_w, mask_r = mask_mem.write_port(), mask_mem.read_port()

        # ---- registers --------------------------------------------------------------
        rmap = {r.name: r for r in register_map(cfg)}
        raw = {name: Signal(32, name=f"reg_{name}")
               for name, r in rmap.items() if r.access == "rw"}
        counters = {name: Signal(32, name=f"cnt_{name}") for name in COUNTERS
                    if name != "blocks_pruned"}
        blocks_valid = Signal(32)      # blocks_pruned = blocks_valid - blocks_kept
        busy, done, error, head_pruned = Signal(), Signal(), Signal(), Signal()
        error_code = Signal(4)
        start_req = Signal()

        def raise_error(code):
            return [error.eq(1), error_code.eq(ERROR_CODES[code])]

        # writes (byte strobes honoured); reads
        wr_hit = Signal()
        m.d.comb += start_req.eq(0)
        with m.If(axil.wr_en):
            with m.Switch(axil.wr_addr):
                for name, sig in raw.items():
                    with m.Case(rmap[name].offset):
                        m.d.comb += wr_hit.eq(1)
                        m.d.sync += sig.eq(Cat(*(Mux(axil.wr_strb[i], axil.wr_data[8 * i:8 * i + 8],
                                                     sig[8 * i:8 * i + 8]) for i in range(4))))
                with m.Case(rmap["ctrl"].offset):
                    m.d.comb += [wr_hit.eq(1), start_req.eq(axil.wr_data[0] & axil.wr_strb[0])]
                    with m.If(axil.wr_data[1] & axil.wr_strb[0]):
                        m.d.sync += [error.eq(0), error_code.eq(0)]
        m.d.comb += axil.wr_error.eq(axil.wr_en & ~wr_hit)
        with m.If(axil.wr_en & ~wr_hit):
            m.d.sync += raise_error("bad_address")

        status = Cat(busy, done, error, head_pruned, Const(0, 4), error_code)
        rd_value = Signal(32)
        rd_hit = Signal()
        with m.Switch(axil.rd_addr):
            for name, r in rmap.items():
                with m.Case(r.offset):
                    if r.access == "wo":
                        continue
                    m.d.comb += rd_hit.eq(1)
                    if name in raw:
                        m.d.comb += rd_value.eq(raw[name])
                    elif name == "status":
                        m.d.comb += rd_value.eq(status)
                    elif name == "config_hash":
                        m.d.comb += rd_value.eq(int(cfg.digest(), 16) & 0xFFFF_FFFF)
                    elif name == "blocks_pruned":
                        m.d.comb += rd_value.eq(blocks_valid - counters["blocks_kept"])
                    else:
                        m.d.comb += rd_value.eq(counters[name])
        m.d.comb += [axil.rd_data.eq(rd_value), axil.rd_error.eq(~rd_hit)]

        # ---- the run's latched registers --------------------------------------------
        seq_len = Signal(cfg.seq_len_bits)
        flags = Signal(len(FLAG_FIELDS))
        causal, head_prune_en, block_prune_en, block_rule, approx_en = (flags[i] for i in range(5))
        threshold = Signal(cfg.hi_bits)
        rho = Signal(signed(cfg.rho_bits))
        delta = Signal(cfg.delta_bits)
        score_scale = Signal(cfg.score_scale_bits)
        m.d.comb += [
            scorer.seq_len.eq(seq_len), scorer.causal.eq(causal),
            selector.block_prune_enable.eq(block_prune_en), selector.block_rule.eq(block_rule),
            selector.rho.eq(rho), selector.delta.eq(delta),
            mac.approx_enable.eq(approx_en), softmax.score_scale.eq(score_scale),
        ]

        # start checks, on the raw register values
        req_len = raw["seq_len"]
        req_rho = raw["rho"].as_signed()
        thr_full = Cat(raw["head_threshold"], raw.get("head_threshold_hi", Const(0, 32)))
        overflow = ((thr_full >> cfg.hi_bits) != 0) | ((raw["delta"] >> cfg.delta_bits) != 0) \
            | ((raw["score_scale"] >> cfg.score_scale_bits) != 0)

        # ---- controller ---------------------------------------------------------------
        n = seq_len
        load_t = Signal(range(3))          # 0: Q, 1: K, 2: V
        load_row = Signal(cfg.seq_len_bits)
        load_beat = Signal(range(max(2, bpr)))
        row_reg = Signal(rows)
        out_rows = Signal(cfg.seq_len_bits)
        mask_rows = Signal(range(cfg.block_row_count + 1))
        int_done = Signal()
        hi = Signal(cfg.hi_bits)

        # input lanes: the low B bits of each lane, sign-extended into the lane
        lane = cfg.in_lane_bits
        beat_elems = Cat(*(self.s_axis_tdata[j * lane:j * lane + B] for j in range(cfg.axis_elems)))
        lane_ok = Signal()
        m.d.comb += lane_ok.eq(1)
        if lane > B:
            for j in range(cfg.axis_elems):
                word = self.s_axis_tdata[j * lane:(j + 1) * lane]
                with m.If(word[B - 1:] != Mux(word[B - 1], (1 << (lane - B + 1)) - 1, 0)):
                    m.d.comb += lane_ok.eq(0)
        last_beat_of_row = load_beat == bpr - 1
        chunk = cfg.axis_elems * B
        row_data = Signal(rows)
        if bpr > 1:
            m.d.comb += row_data.eq(Cat(row_reg.as_value()[:(bpr - 1) * chunk], beat_elems))
        else:
            m.d.comb += row_data.eq(beat_elems)
        for i, t in enumerate("qkv"):
            wport = bufs[t][0]
            m.d.comb += [wport.addr.eq(load_row), wport.data.eq(row_data)]

        # read ports: the head scorer during the integer pass, the MAC array after it
        in_int = Signal()
        for t, unit_q, unit_m in (("q", scorer.q_rd, mac.q_rd), ("k", scorer.k_rd, mac.k_rd)):
            rport = bufs[t][1]
            m.d.comb += [rport.addr.eq(Mux(in_int, unit_q.addr, unit_m.addr)),
                         rport.en.eq(Mux(in_int, unit_q.en, unit_m.en)),
                         unit_q.data.eq(rport.data), unit_m.data.eq(rport.data)]
        m.d.comb += mac.q_invalidate.eq(in_int)    # the scorer moves the shared Q port
        wiring.connect(m, mac.v_rd, bufs["v"][1])

        # mask rows from the selector
        popcount = tree_sum(selector.o_mask.payload.mask[i] for i in range(cfg.block_col_count))
        m.d.comb += [selector.o_mask.ready.eq(1), mask_w.addr.eq(mask_rows),
                     mask_w.data.eq(selector.o_mask.payload.mask),
                     mask_w.en.eq(selector.o_mask.valid)]
        with m.If(selector.o_mask.valid):
            m.d.sync += [mask_rows.eq(mask_rows + 1),
                         counters["blocks_kept"].eq(counters["blocks_kept"] + popcount)]
            with m.If(selector.o_mask.payload.last_row):
                m.d.sync += int_done.eq(1)
        with m.If(scorer.o_block.valid & scorer.o_block.ready):
            m.d.sync += blocks_valid.eq(blocks_valid + 1)
        with m.If(scorer.s_valid):
            m.d.sync += counters["int_macs"].eq(counters["int_macs"] + cfg.head_dim)
        with m.If(mac.i_pair.valid & mac.i_pair.ready):
            m.d.sync += counters["score_macs"].eq(counters["score_macs"] + cfg.head_dim)
        with m.If(mac.i_prob.valid & mac.i_prob.ready):
            m.d.sync += counters["pv_macs"].eq(counters["pv_macs"] + cfg.head_dim)
        with m.If(mac.busy_mac):
            m.d.sync += counters["mac_busy"].eq(counters["mac_busy"] + 1)

        # pair generator: the kept, valid columns of each row, whole pruned blocks skipped
        gen_row = Signal(cfg.seq_len_bits)
        gen_col = Signal(cfg.seq_len_bits + 1)
        gen_mask = Signal(cfg.block_col_count)
        gen_rest = Signal(cfg.block_col_count)    # kept blocks of the row not visited yet
        log_bc = cfg.block_cols.bit_length() - 1
        log_br = cfg.block_rows.bit_length() - 1
        limit = Mux(causal, gen_row, n - 1)
        top_block = Signal(range(cfg.block_col_count))
        low_block = Signal(range(cfg.block_col_count))
        # highest kept block that starts at or before the row's last valid column: with
        # Br > 1 and the causal mask, blocks right of it are kept for the block row's
        # later rows, and the row's own last column may lie in a pruned block
        limit_block = Signal(range(cfg.block_col_count))
        m.d.comb += limit_block.eq(limit >> log_bc)
        for i in range(cfg.block_col_count):
            with m.If(gen_mask[i] & (limit_block >= i) if i else gen_mask[i]):
                m.d.comb += top_block.eq(i)
        for i in reversed(range(cfg.block_col_count)):  # lowest kept block not visited
            with m.If(gen_rest[i]):
                m.d.comb += low_block.eq(i)
        # With Br > 1 and the causal mask a row can find every kept block of its block
        # row to its right: it has no kept pair and its output row is zero.
        row_empty = Signal()
        m.d.comb += row_empty.eq((gen_mask == 0) | ((low_block << log_bc) > limit))
        block_end = Signal(cfg.seq_len_bits + 1)
        m.d.comb += block_end.eq(((top_block + 1) << log_bc) - 1)
        last_col = Signal(cfg.seq_len_bits + 1)
        m.d.comb += last_col.eq(Mux(block_end < limit, block_end, limit))
        gen_blk = gen_col >> log_bc
        col_kept = gen_mask.bit_select(gen_blk[:max(1, cfg.block_col_bits)], 1) \
            if cfg.block_col_count > 1 else gen_mask[0]
        m.d.comb += [
            mac.i_pair.payload.row.eq(gen_row), mac.i_pair.payload.col.eq(gen_col),
            mac.i_pair.payload.last.eq(gen_col == last_col),
            mask_r.addr.eq(gen_row >> log_br),
        ]

        # output: rows of the MAC array (or zero rows of a pruned head) to m_axis beats
        out_reg = Signal(data.ArrayLayout(signed(cfg.out_bits), n_elems))
        out_full = Signal()
        out_beat = Signal(range(max(2, bpr)))
        out_zero = Signal()
        olane = cfg.out_lane_bits
        beat_sel = Signal(data.ArrayLayout(signed(cfg.out_bits), cfg.axis_elems))
        m.d.comb += beat_sel.eq(out_reg.as_value().word_select(out_beat, cfg.axis_elems * cfg.out_bits)
                                if bpr > 1 else out_reg)
        m.d.comb += [
            self.m_axis_tdata.eq(Cat(*(_sext(beat_sel[j], olane) for j in range(cfg.axis_elems)))),
            self.m_axis_tvalid.eq(out_full),
            self.m_axis_tlast.eq((out_beat == bpr - 1) & (out_rows == n - 1)),
            mac.o_out.ready.eq(~out_full & ~out_zero),
        ]
        pv_rows = Signal(cfg.seq_len_bits)
        with m.If(mac.o_out.valid & mac.o_out.ready):
            m.d.sync += [out_reg.eq(mac.o_out.payload.out), out_full.eq(1), out_beat.eq(0),
                         pv_rows.eq(pv_rows + 1)]
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += counters["words_out"].eq(counters["words_out"] + 1)
            with m.If(out_beat == bpr - 1):
                m.d.sync += [out_full.eq(0), out_beat.eq(0), out_rows.eq(out_rows + 1)]
            with m.Else():
                m.d.sync += out_beat.eq(out_beat + 1)
        zero_row = Signal()
        with m.If((out_zero & ~out_full & (out_rows != n)) | zero_row):
            m.d.sync += [out_reg.eq(0), out_full.eq(1), out_beat.eq(0)]

        with m.If(busy):
            m.d.sync += counters["cycles_total"].eq(counters["cycles_total"] + 1)

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(start_req):
                    with m.If(req_len == 0):
                        m.d.sync += raise_error("seq_len_zero")
                    with m.Elif(req_len > cfg.seq_max):
                        m.d.sync += raise_error("seq_len_too_big")
                    with m.Elif((raw["flags"] >> len(FLAG_FIELDS)) != 0):
                        m.d.sync += raise_error("flags_reserved")
                    with m.Elif((req_rho < -RHO_ONE) | (req_rho > RHO_ONE)):
                        m.d.sync += raise_error("rho_range")
                    with m.Elif(overflow):
                        m.d.sync += raise_error("field_overflow")
                    with m.Else():
                        m.d.sync += [
                            busy.eq(1), done.eq(0), head_pruned.eq(0),
                            seq_len.eq(req_len), flags.eq(raw["flags"]),
                            threshold.eq(thr_full), rho.eq(req_rho), delta.eq(raw["delta"]),
                            score_scale.eq(raw["score_scale"]),
                            load_t.eq(0), load_row.eq(0), load_beat.eq(0), out_rows.eq(0),
                            mask_rows.eq(0), int_done.eq(0), out_zero.eq(0), pv_rows.eq(0),
                        ]
                        m.d.sync += [c.eq(0) for name, c in counters.items() if name != "heads_pruned"]
                        m.d.sync += blocks_valid.eq(0)
                        m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.s_axis_tready.eq(1)
                m.d.sync += counters["cycles_load"].eq(counters["cycles_load"] + 1)
                with m.If(self.s_axis_tvalid):
                    m.d.sync += counters["words_in"].eq(counters["words_in"] + 1)
                    if bpr > 1:
                        m.d.sync += row_reg.as_value().word_select(load_beat, chunk).eq(beat_elems)
                    with m.If(~lane_ok):
                        m.d.sync += raise_error("input_lane")
                    end_of_tensor = last_beat_of_row & (load_row == n - 1)
                    with m.If(self.s_axis_tlast != end_of_tensor):
                        m.d.sync += raise_error("input_tlast")
                    with m.If(last_beat_of_row):
                        for i, t in enumerate("qkv"):
                            m.d.comb += bufs[t][0].en.eq(load_t == i)
                        m.d.sync += [load_beat.eq(0), load_row.eq(load_row + 1)]
                        with m.If(load_row == n - 1):
                            m.d.sync += [load_row.eq(0), load_t.eq(load_t + 1)]
                            with m.If(load_t == 2):
                                # the scorer reads its first rows in this very cycle
                                m.d.comb += [scorer.start.eq(1), in_int.eq(1)]
                                m.next = "INT"
                    with m.Else():
                        m.d.sync += load_beat.eq(load_beat + 1)
            with m.State("INT"):
                m.d.comb += in_int.eq(1)
                m.d.sync += counters["cycles_int"].eq(counters["cycles_int"] + 1)
                with m.If(int_done & ~scorer.busy & scorer.hi_valid):
                    m.d.sync += hi.eq(scorer.head_importance)
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.sync += counters["cycles_int"].eq(counters["cycles_int"] + 1)
                with m.If(head_prune_en & (hi < threshold)):
                    m.d.sync += [head_pruned.eq(1), out_zero.eq(1), counters["blocks_kept"].eq(0),
                                 counters["heads_pruned"].eq(counters["heads_pruned"] + 1)]
                    m.next = "OUTPUT"
                with m.Else():
                    m.d.sync += [gen_row.eq(0), gen_col.eq(0)]
                    m.next = "ROW_FETCH"
            with m.State("ROW_FETCH"):     # read the row's block mask (one cycle latency)
                m.d.sync += counters["cycles_attn"].eq(counters["cycles_attn"] + 1)
                # At most ROWS_IN_FLIGHT rows between the pair generator and the end of
                # P x V: the softmax unit holds two rows, so a score never waits for a
                # softmax buffer that only P x V (sharing the MAC array) could free.
                with m.If(gen_row < pv_rows + ROWS_IN_FLIGHT):
                    m.next = "ROW_LATCH"
            with m.State("ROW_LATCH"):
                m.d.sync += [counters["cycles_attn"].eq(counters["cycles_attn"] + 1),
                             gen_mask.eq(mask_r.data), gen_rest.eq(mask_r.data), gen_col.eq(0)]
                m.next = "ROW_START"
            with m.State("ROW_START"):
                m.d.sync += counters["cycles_attn"].eq(counters["cycles_attn"] + 1)
                with m.If(row_empty):
                    m.next = "EMPTY_ROW"
                with m.Else():
                    m.d.sync += gen_col.eq(low_block << log_bc)   # pruned blocks cost nothing
                    m.next = "PAIRS"
            with m.State("NEXT_BLOCK"):     # jump over pruned blocks to the next kept one
                m.d.sync += [counters["cycles_attn"].eq(counters["cycles_attn"] + 1),
                             gen_col.eq(low_block << log_bc)]
                m.next = "PAIRS"
            with m.State("EMPTY_ROW"):      # wait for the rows before it, then a zero row
                m.d.sync += counters["cycles_attn"].eq(counters["cycles_attn"] + 1)
                with m.If((out_rows == gen_row) & ~out_full):
                    m.d.comb += zero_row.eq(1)
                    m.d.sync += [gen_row.eq(gen_row + 1), pv_rows.eq(pv_rows + 1)]
                    with m.If(gen_row == n - 1):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "ROW_FETCH"
            with m.State("PAIRS"):
                m.d.sync += counters["cycles_attn"].eq(counters["cycles_attn"] + 1)
                with m.If(col_kept):
                    m.d.comb += mac.i_pair.valid.eq(1)
                    with m.If(mac.i_pair.ready):
                        with m.If(gen_col == last_col):
                            m.d.sync += gen_row.eq(gen_row + 1)
                            with m.If(gen_row == n - 1):
                                m.next = "DRAIN"
                            with m.Else():
                                m.next = "ROW_FETCH"
                        # at a block's last column go to the next kept block: the visited
                        # block is the lowest one left, so clearing the lowest set bit
                        # drops it (no constant condition at 1x1 blocks: Yosys would
                        # write an empty case that Icarus rejects)
                        with (m.Elif((gen_col + 1)[:log_bc] == 0) if log_bc else m.Else()):
                            m.d.sync += gen_rest.eq(gen_rest & (gen_rest - 1))
                            m.next = "NEXT_BLOCK"
                        if log_bc:
                            with m.Else():
                                m.d.sync += gen_col.eq(gen_col + 1)
                with m.Else():
                    m.d.sync += gen_col.eq((gen_blk + 1) << log_bc)
            with m.State("DRAIN"):          # the last rows go through softmax and P x V
                m.d.sync += counters["cycles_attn"].eq(counters["cycles_attn"] + 1)
                with m.If(out_rows == n):
                    m.next = "FINISH"
                with m.Elif((out_rows == n - 1) & out_full):
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.sync += counters["cycles_out"].eq(counters["cycles_out"] + 1)
                with m.If(out_rows == n):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += [busy.eq(0), done.eq(1), out_zero.eq(0)]
                m.next = "IDLE"
        with m.If(start_req & busy):
            m.d.sync += raise_error("start_while_busy")
        return m


def _sext(value, width):
    """Sign-extend a signed value to ``width`` bits."""
    v = Value.cast(value)
    return v if len(v) == width else Cat(v, v[-1].replicate(width - len(v)))
