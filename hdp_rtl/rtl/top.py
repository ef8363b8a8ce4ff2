"""The HDP co-processor: its units, and the wires between them. Nothing else."""
from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Module, Mux, ResetInserter,
                          ResetSignal, Signal)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import HDPConfig
from ..regmap import AXIL_ADDR_BITS
from .arith import delayed, registered_popcount
from .axil import AxiLiteSlave, axil_members
from .counters import PerfCounters
from .importance import ImportanceUnit
from .head_scorer import HeadScorer
from .mac_array import MacArray
from .pair_generator import PairGenerator
from .progressive import ProgressiveFlags
from .regfile import RegisterFile
from .rowstore import RowStore
from .selectors import build_selector
from .sequencer import Sequencer
from .serializer import OutputSerializer
from .softmax import Softmax
from .unpacker import InputUnpacker, axis_members, kept_channels_of

__all__ = ["HDPCoprocessor", "connect_attention", "ROWS_IN_FLIGHT"]

#: Rows between the pair generator and the serializer: as many as the softmax holds
#: (its 2 score banks and its exps banks).
ROWS_IN_FLIGHT = 2 + Softmax.EXP_BANKS


def _watch_importance(m, importance, *, start, run, seq, mac, regs):
    """SpAtten's importances, watched on the probabilities the MAC array takes and the
    output chunks it sends; the host reads them through key_index / key_importance."""
    taken = mac.i_prob
    m.d.comb += [
        importance.start.eq(start), importance.seq_len.eq(run.seq_len),
        importance.busy.eq(seq.busy | start),
        importance.prob_valid.eq(taken.valid & taken.ready),
        importance.prob_col.eq(taken.payload.col), importance.prob.eq(taken.payload.prob),
        importance.chunk_valid.eq(mac.o_chunk.valid),
        importance.chunk_out.eq(mac.o_chunk.payload.out),
        importance.key_index.eq(regs.key_index),
        regs.key_importance.eq(importance.key_importance),
        regs.out_importance.eq(importance.out_importance),
    ]


def _watch_progressive(m, pq, *, start, run, seq, softmax, pairs, out, regs):
    """SpAtten's progressive quantization: each computed row's largest probability from
    the softmax, the rows in order from the serializer; the host reads the flags through
    pq_index / pq_flags and their number at pq_count."""
    m.d.comb += [
        pq.start.eq(start), pq.seq_len.eq(run.seq_len), pq.busy.eq(seq.busy | start),
        pq.threshold.eq(run.pq_threshold),
        pq.row_max.eq(softmax.row_max), pq.row_max_valid.eq(softmax.row_max_valid),
        pq.row_done.eq(out.row_done),
        pq.zero_row.eq(pairs.o_zero_row.valid & out.i_zero_row.ready),
        pq.index.eq(regs.pq_index),
        regs.pq_flags.eq(pq.flags), regs.pq_count.eq(pq.count),
    ]


def _channel_mask(m, cfg, drop, *, unpacker, scorer, mac, counters):
    """The run-time channel mask (``channel_drop``, latched with the head): the channels
    kept and the last chunk of a pair in the integer pass and of a score in the MAC
    array, registered from ``run`` (stable during a head; ready the cycle after the
    units' start, before Q's first beat and the first pair). The unpacker registers its
    own from ``run``."""
    d = cfg.head_dim
    log_d = d.bit_length() - 1
    none = drop[log_d:].any()            # channel_drop >= head_dim
    kept = Signal(range(d + 1), name="channels_kept")
    m.d.sync += kept.eq(kept_channels_of(drop, d))
    # the last kept channel (0 when none is kept: one chunk of zeros still runs)
    last = Signal(max(1, log_d), name="channel_last")
    if log_d:
        m.d.sync += last.eq(Mux(none, 0, ~drop[:log_d]))
    m.d.comb += [unpacker.channel_drop.eq(drop), counters.channels.eq(kept)]
    if scorer.channel_skip:
        m.d.comb += scorer.last_chunk_at.eq(last >> (cfg.int_lanes.bit_length() - 1))
    if mac.channel_skip:
        m.d.comb += mac.score_last_chunk.eq(last >> (cfg.mac_lanes.bit_length() - 1))


def connect_attention(m, *, pairs, mac, softmax, out):
    """The attention chain's wires: pairs -> MAC array -> softmax -> MAC array (P x V)
    -> output serializer, zero rows straight to the serializer, and the row credits
    (the serializer's ``row_free`` to the MAC array, its ``row_done`` to the pair
    generator). Also wired so by the formal proof of the chain (``formal/chain.py``)."""
    wiring.connect(m, pairs.o_pair, mac.i_pair)
    wiring.connect(m, mac.o_score, softmax.i_score)
    wiring.connect(m, softmax.o_prob, mac.i_prob)
    wiring.connect(m, mac.o_chunk, out.i_chunk)
    wiring.connect(m, pairs.o_zero_row, out.i_zero_row)
    m.d.comb += [mac.i_row_free.eq(out.row_free), pairs.row_done.eq(out.row_done)]


def _forward(m, outer, inner, names):
    """Join ``outer``'s ports to the same-named ports of submodule ``inner``."""
    for name in names:
        ours, theirs = getattr(outer, name), getattr(inner, name)
        if outer.signature.members[name].flow == In:
            m.d.comb += theirs.eq(ours)
        else:
            m.d.comb += ours.eq(theirs)


class HDPCoprocessor(wiring.Component):
    """One-head-at-a-time HDP attention co-processor.

    The host writes the run-time registers over AXI4-Lite, writes ``ctrl.start``, then
    streams the head's Q rows, K rows and V rows on ``s_axis`` (``seq_len`` rows each,
    ``beats_per_row`` beats a row, ``tlast`` on the last beat of each tensor) and reads
    ``seq_len`` output rows on ``m_axis`` (``tlast`` on the head's last beat). ``ctrl.abort``
    (or the input timeout) drops a running head: the sequencer halts both streams and
    then clears every datapath unit in one cycle (``flush``, a synchronous reset of the
    units through ``ResetInserter``; the register file, the counters and the sequencer
    keep their state). See ``docs/interface.md`` and, for the units, ``docs/units.md``.

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
        self._axil = axil_members("s_axil", addr_width=AXIL_ADDR_BITS)
        self._s_axis = axis_members("s_axis", width=config.s_axis_bits, flow=In)
        self._m_axis = axis_members("m_axis", width=config.m_axis_bits, flow=Out)
        super().__init__({**self._axil, **self._s_axis, **self._m_axis})

    def elaborate(self, platform):
        # One clock, two resets. The datapath units have no `rst`: they are cleared by
        # `dp_clear`, the OR of two registers (the abort's flush, and `after_rst`, high
        # the cycle after `rst`), so the reset port reaches the few hundred control
        # registers only, and the thousands of datapath registers hang off registers
        # (rst | flush on every datapath register was a 6700-load net two LUTs from the
        # port, 14.0 ns).
        # Both domains alias `sync`, so the core's registers sit a delta cycle behind
        # `sync` in Amaranth's simulator: simulate the core from testbenches, not from
        # `sync` logic of a wrapper (Verilog simulators and synthesis see one clock).
        m = Module()
        m.domains.core = ClockDomain("core", local=True)
        m.domains.dp = ClockDomain("dp", reset_less=True, local=True)
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                     ResetSignal("core").eq(ResetSignal("sync")),
                     ClockSignal("dp").eq(ClockSignal("sync"))]
        m.submodules.core = DomainRenamer("core")(self._core())
        return m

    def _core(self):
        """The units and their wires, in ``sync`` (renamed ``core``; datapath: ``dp``)."""
        cfg = self.config
        m = Module()
        m.submodules.axil = axil = AxiLiteSlave.from_config(cfg)
        m.submodules.regs = regs = RegisterFile.from_config(cfg)
        m.submodules.counters = counters = PerfCounters.from_config(cfg)
        m.submodules.sequencer = seq = Sequencer.from_config(cfg)
        unpacker = InputUnpacker.from_config(cfg)
        rows = RowStore.from_config(cfg)
        scorer = HeadScorer.from_config(cfg)
        selector = build_selector(cfg)
        pairs = PairGenerator.from_config(cfg, rows_in_flight=ROWS_IN_FLIGHT)
        mac = MacArray.from_config(cfg)
        softmax = Softmax.from_config(cfg)
        out = OutputSerializer.from_config(cfg)
        importance = ImportanceUnit.from_config(cfg) if cfg.importance_report else None
        progressive = (ProgressiveFlags.from_config(cfg, rows_in_flight=ROWS_IN_FLIGHT)
                       if cfg.progressive_report else None)
        # the datapath: every unit that holds a head's state, cleared by the sequencer's
        # `flush` (a register) when a head is aborted (the memories keep their words, as
        # after `rst`: nothing reads a word a head did not write)
        datapath = dict(unpacker=unpacker, rows=rows, scorer=scorer, selector=selector,
                        pairs=pairs, mac=mac, softmax=softmax, serializer=out)
        # (the units, for the formal harnesses that check the contracts between them)
        self.units = dict(datapath, sequencer=seq, regs=regs)
        if importance is not None:
            datapath["importance"] = importance
        if progressive is not None:
            datapath["progressive"] = progressive
        after_rst = Signal(init=1)        # the cycle after `rst`: the datapath is cleared
        m.d.sync += after_rst.eq(0)
        dp_clear = Signal()
        m.d.comb += dp_clear.eq(seq.flush | after_rst)
        for name, unit in datapath.items():
            m.submodules[name] = DomainRenamer("dp")(ResetInserter(dp_clear)(unit))
        run, flags = regs.run, regs.run.flags

        # host ports; while a head is aborted (`halt`), or the datapath is being cleared
        # after `rst`, no beat passes on either stream
        blocked = seq.halt | after_rst
        _forward(m, self, axil, self._axil)
        _forward(m, self, unpacker, ("s_axis_tdata", "s_axis_tlast"))
        m.d.comb += [unpacker.s_axis_tvalid.eq(self.s_axis_tvalid & ~blocked),
                     self.s_axis_tready.eq(unpacker.s_axis_tready & ~blocked)]
        _forward(m, self, out, ("m_axis_tdata", "m_axis_tlast"))
        m.d.comb += [self.m_axis_tvalid.eq(out.m_axis_tvalid & ~after_rst),
                     out.m_axis_tready.eq(self.m_axis_tready & ~after_rst)]
        wiring.connect(m, axil.bus, regs.bus)

        # registers and sequencing. The units start a cycle after the register file
        # accepts a start: its decode and start checks stay off the start's fan-out to
        # every unit (together they were the whole core's deepest path, 15 ns). `run` is
        # latched with the start, so it holds the head's values when `start` arrives;
        # status shows busy from that cycle.
        start = delayed(m, regs.start, 1, name="start")
        # (the formal harnesses read these control signals beside the units)
        self.units.update(start=start, after_rst=after_rst, dp_clear=dp_clear)
        input_error = delayed(m, Mux(after_rst, 0, unpacker.error), 1, name="input_error")
        m.d.comb += [
            seq.start.eq(start),
            # (as late as start: an abort written after an accepted start finds the head
            # running; one written with it, on an idle core, is ignored)
            seq.abort_req.eq(delayed(m, regs.abort_req, 1, name="abort_req")),
            seq.input_timeout.eq(regs.input_timeout),
            seq.input_wait.eq(unpacker.s_axis_tready & ~self.s_axis_tvalid),
            seq.out_valid.eq(out.m_axis_tvalid), out.stop.eq(seq.halt),
            regs.busy.eq(seq.busy | start), regs.done.eq(seq.done),
            regs.head_pruned.eq(seq.head_pruned),
            # (the unpacker's error a cycle late: its checks against seq_len stay off the
            # error latch's enable; the error is sticky and the head is refused anyway.
            # The sequencer's 10 and 11 come in FLUSH, when the unpacker raises nothing:
            # it takes no beat in halt)
            regs.i_error.eq(Mux(seq.error != 0, seq.error, input_error)),
            regs.counters.eq(counters.values),
            seq.head_prune_enable.eq(flags.head_prune_enable),
            seq.head_threshold.eq(run.head_threshold),
            seq.head_importance.eq(scorer.head_importance),
            seq.int_ready.eq(unpacker.int_ready), seq.input_last_row.eq(unpacker.last_row),
            seq.int_done.eq(pairs.masks_done & ~scorer.busy & scorer.hi_valid),
            seq.last_row_held.eq(out.last_row_held), seq.output_done.eq(out.done),
        ]
        for unit in (unpacker, pairs, out):
            m.d.comb += [unit.start.eq(start), unit.seq_len.eq(run.seq_len)]

        # data path: input -> rows -> integer pass -> selection -> pairs -> MAC/softmax -> output
        wiring.connect(m, unpacker.o_word, rows.i_word)
        m.d.comb += rows.int_phase.eq(seq.int_phase)
        wiring.connect(m, rows.q_int, scorer.q_rd)
        wiring.connect(m, rows.k_int, scorer.k_rd)
        wiring.connect(m, rows.q_mac, mac.q_rd)
        wiring.connect(m, rows.k_mac, mac.k_rd)
        wiring.connect(m, rows.v_mac, mac.v_rd)
        m.d.comb += [scorer.start.eq(seq.scorer_start), scorer.seq_len.eq(run.seq_len),
                     scorer.causal.eq(flags.causal), scorer.q_rows.eq(unpacker.q_rows)]
        wiring.connect(m, scorer.o_block, selector.i_block)
        selector.drive_registers(m, run)
        wiring.connect(m, selector.o_mask, pairs.i_mask)
        m.d.comb += [pairs.causal.eq(flags.causal), pairs.go.eq(seq.go),
                     pairs.prune_head.eq(seq.prune_head)]
        m.d.comb += softmax.score_scale.eq(run.score_scale)
        if mac.approximation:
            m.d.comb += mac.approx_enable.eq(flags.approx_enable)
        connect_attention(m, pairs=pairs, mac=mac, softmax=softmax, out=out)

        if cfg.channel_pruning:
            _channel_mask(m, cfg, run.channel_drop, unpacker=unpacker, scorer=scorer,
                          mac=mac, counters=counters)

        if importance is not None:
            _watch_importance(m, importance, start=start, run=run, seq=seq, mac=mac,
                              regs=regs)
        if progressive is not None:
            _watch_progressive(m, progressive, start=start, run=run, seq=seq, softmax=softmax,
                               pairs=pairs, out=out, regs=regs)

        # what the counters count
        ev = counters.events
        mask = selector.o_mask
        # blocks kept: each mask's popcount over registered stages (in one cycle it was
        # the design's deepest path, 26 LUT levels from the selector's output slot to the
        # counter); the head-pruned event, which clears that count, is delayed as much
        kept, latency = registered_popcount(
            m, Mux(mask.valid & mask.ready, mask.payload.mask, 0), name="blocks_kept")
        m.d.comb += [
            counters.clear.eq(start),
            ev.busy.eq(seq.busy), ev.load.eq(seq.stage.load), ev.int.eq(seq.stage.int),
            ev.attn.eq(seq.stage.attn), ev.out.eq(seq.stage.out),
            ev.word_in.eq(unpacker.beat), ev.word_out.eq(out.beat),
            ev.int_pair.eq(scorer.s_valid),
            ev.block.eq(scorer.o_block.valid & scorer.o_block.ready),
            ev.blocks_kept.eq(kept),
            ev.score_op.eq(mac.i_pair.valid & mac.i_pair.ready),
            ev.pv_op.eq(mac.i_prob.valid & mac.i_prob.ready),
            ev.mac_busy.eq(mac.busy_mac),
            ev.head_pruned.eq(delayed(m, seq.go & seq.prune_head, latency, name="pruned")),
        ]
        return m
