"""Formal harnesses of the whole co-processor (:class:`~hdp_rtl.rtl.top.HDPCoprocessor`)."""
from amaranth.hdl import (Array, Cat, ClockDomain, ClockSignal, Const, Elaboratable, Module, Mux,
                          Signal)

from ..regmap import FLAG_FIELDS, register_map
from ..rtl.regfile import RegisterFile
from ..rtl.top import HDPCoprocessor
from .axil import axil_rules
from .mac_array import MacArrayContract
from .pair_generator import PairGeneratorContract
from .serializer import SerializerContract
from .softmax import SoftmaxContract
from .common import (Assert, Assume, Cover, any_const, any_seq, drive_any, harness_module,
                     packet_beats,
                     stream_rules)

__all__ = ["TopBusHarness", "TopHeadHarness", "HeadHost", "reset_midway_module",
           "per_reset_value"]


def _m_axis_rules(m, dut):
    return stream_rules(m, dut.m_axis_tvalid, dut.m_axis_tready,
                        Cat(dut.m_axis_tdata, dut.m_axis_tlast), output=True, name="m_axis")


#: Cycles from the AW/W handshake of a ``ctrl.abort`` write to the sequencer's halt:
#: the front end's request register, the top's delay of the strobe, ABORT.
ABORT_HALT_CYCLES = 3


def _abort_rules(m, dut, config):
    """After a ``ctrl`` write with ``abort`` (and without ``start``), from its AW/W
    handshake + ABORT_HALT_CYCLES until the next ``ctrl`` write with ``start``:
    ``s_axis_tready`` is low, and from a cycle later ``m_axis`` offers no new beat (a beat
    still offered then is one held since before: ``tvalid`` high only after a stalled
    ``tvalid``). Returns the handshake of such an abort write."""
    ctrl = {r.name: r for r in register_map(config)}["ctrl"]
    written = (dut.s_axil_awvalid & dut.s_axil_awready & dut.s_axil_wvalid & dut.s_axil_wready
               & (dut.s_axil_awaddr == ctrl.offset) & dut.s_axil_wstrb[0])
    bit = {f.name: dut.s_axil_wdata[f.lsb] for f in ctrl.fields}
    abort_hs = Signal(name="abort_written")
    start_hs = Signal(name="start_written")
    m.d.comb += [abort_hs.eq(written & bit["abort"] & ~bit["start"]),
                 start_hs.eq(written & bit["start"])]
    # cycles since the abort's handshake (0: no abort since the last start), saturating
    last = ABORT_HALT_CYCLES + 1
    since = Signal(range(last + 1), name="cycles_since_abort")
    with m.If(start_hs):
        m.d.sync += since.eq(0)
    with m.Elif(abort_hs):
        m.d.sync += since.eq(1)
    with m.Elif((since != 0) & (since != last)):
        m.d.sync += since.eq(since + 1)
    prev_valid, prev_ready = Signal(name="m_prev_valid"), Signal(name="m_prev_ready")
    m.d.sync += [prev_valid.eq(dut.m_axis_tvalid), prev_ready.eq(dut.m_axis_tready)]
    with m.If(since >= ABORT_HALT_CYCLES):
        m.d.comb += Assert(~dut.s_axis_tready, "aborted: s_axis takes no beat until a start")
    with m.If(since == last):
        m.d.comb += Assert(~dut.m_axis_tvalid | (prev_valid & ~prev_ready),
                           "aborted: no new m_axis beat until a start")
    return abort_hs


class TopBusHarness(Elaboratable):
    """Every port free: any AXI4-Lite master that keeps the AXI rules (any register
    writes, starts at any time, start while busy, aborts at any time, any
    ``input_timeout``, bad values ...), any s_axis source that keeps the stream rules,
    any m_axis back-pressure.

    Asserted: the AXI4-Lite slave rules of :func:`.axil.axil_rules` on the top's port and,
    with ``m_axis``, the m_axis stream rules (``tvalid``, ``tdata`` and ``tlast`` held
    while stalled, across aborts too) and what an abort guarantees on the ports
    (:func:`_abort_rules`). Without ``m_axis`` (only the AXI4-Lite rules) k-induction
    proves it.
    """

    def __init__(self, config, *, m_axis: bool = True):
        self.config = config
        self.m_axis = m_axis

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.dut = dut = HDPCoprocessor(self.config)
        drive_any(m, dut.s_axil_awaddr, dut.s_axil_awvalid, dut.s_axil_wdata, dut.s_axil_wstrb,
                  dut.s_axil_wvalid, dut.s_axil_bready, dut.s_axil_araddr, dut.s_axil_arvalid,
                  dut.s_axil_rready, dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tlast,
                  dut.m_axis_tready)
        axil_rules(m, dut, read_wait=1 + RegisterFile.RD_LATENCY)
        stream_rules(m, dut.s_axis_tvalid, dut.s_axis_tready,
                     Cat(dut.s_axis_tdata, dut.s_axis_tlast), output=False, name="s_axis")
        if self.m_axis:
            fire = _m_axis_rules(m, dut)
            aborted = _abort_rules(m, dut, self.config)
            m.d.comb += [
                Cover(fire, "an output beat sent"),
                Cover(aborted & dut.s_axis_tready, "an abort while the core takes input"),
                Cover(aborted & dut.m_axis_tvalid & ~dut.m_axis_tready,
                      "an abort while an output beat waits"),
            ]
        else:
            m.d.comb += Cover(dut.s_axil_rvalid & dut.s_axil_rready & (dut.s_axil_rdata != 0),
                              "a register read returns a non-zero value")
        return m


def reset_midway_module():
    """A harness module whose ``sync`` reset, ``rst``, the solver drives in every cycle
    (any number of resets, at any time), with a reset-less domain ``mon`` for the
    harness's own records, which a reset must not clear. Returns ``(m, rst)``."""
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    rst = Signal(name="rst")
    m.d.comb += [rst.eq(any_seq(1)), cd.rst.eq(rst)]
    m.domains.mon = ClockDomain("mon", reset_less=True)
    m.d.comb += ClockSignal("mon").eq(ClockSignal("sync"))
    return m, rst


def per_reset_value(m, rst):
    """The ``head_value`` of :class:`HeadHost` for a :func:`reset_midway_module`: a
    run-time value free, held during a head, chosen anew at each reset."""
    def head_value(width):
        later, seen = Signal(width), Signal()
        with m.If(rst):
            m.d.mon += [later.eq(any_seq(width)), seen.eq(1)]
        return Mux(seen, later, any_const(width))
    return head_value


class HeadHost:
    """The host of ``top_head`` (:class:`TopHeadHarness`; ``top_head_contracts``,
    ``top_reset`` too) and ``top_control`` (:class:`.top_control.TopControlHarness`;
    ``top_control_reset`` too), built in ``m`` around the core ``dut``.

    It writes ``seq_len`` = N (any 1..seq_max), ``flags`` (any valid value), ``delta``
    and ``head_threshold`` (any values that fit) over AXI4-Lite, one write at a time
    (the next once the B response of the last is taken; ``bready`` always high, no
    reads), then ``ctrl.start``; once that write is answered (``started``) it sends
    3 x N rows of any data on s_axis with any gaps and ``tlast`` on each tensor's last
    beat (assumed: the s_axis stream rules). ``m_axis_tready`` is free (any
    back-pressure). Asserted: each B response is OKAY.

    ``head_value(width)`` makes the run-time values (``AnyConst`` by default); while
    ``rst`` is high the host issues nothing and the source offers no beat.

    Attributes: ``n``, ``flags``, ``delta``, ``threshold`` (the values written);
    ``writes``, the ``(offset, value)`` of each write in order (the last is ``ctrl``
    with ``start``); ``step``, the write under way (``len(writes)`` once all are
    answered); ``waiting_b``, its AW/W taken and its B not yet; ``issuing``, AW and W
    offered; ``started`` (``step == len(writes)``); ``in_beat`` and ``tensor``, the
    s_axis beat and tensor (0, 1, 2; 3 when all are sent).
    """

    def __init__(self, m, dut, config, *, rst=Const(0), head_value=any_const):
        cfg = config
        bpr = cfg.beats_per_row
        rmap = {r.name: r for r in register_map(cfg)}
        self.n = n = Signal(cfg.seq_len_bits)
        self.flags = flags = Signal(len(FLAG_FIELDS))
        self.delta = delta = Signal(cfg.delta_bits)
        self.threshold = threshold = Signal(min(32, cfg.hi_bits))
        m.d.comb += [n.eq(head_value(len(n))), flags.eq(head_value(len(flags))),
                     delta.eq(head_value(len(delta))),
                     threshold.eq(head_value(len(threshold)))]
        m.d.comb += Assume((n >= 1) & (n <= cfg.seq_max), "N in 1..seq_max")

        # ---- the host's register writes, one at a time ---------------------------------
        self.writes = writes = [
            (rmap["seq_len"].offset, n), (rmap["flags"].offset, flags),
            (rmap["delta"].offset, delta), (rmap["head_threshold"].offset, threshold),
            (rmap["ctrl"].offset, Const(rmap["ctrl"].word(start=1), 32))]
        self.step = step = Signal(range(len(writes) + 1))
        self.waiting_b = waiting_b = Signal()
        addr = Array(Const(a, len(dut.s_axil_awaddr)) for a, _ in writes)
        value = Array(v for _, v in writes)
        self.issuing = issuing = (step < len(writes)) & ~waiting_b & ~rst
        m.d.comb += [
            dut.s_axil_awvalid.eq(issuing), dut.s_axil_wvalid.eq(issuing),
            dut.s_axil_awaddr.eq(addr[step]), dut.s_axil_wdata.eq(value[step]),
            dut.s_axil_wstrb.eq(0b1111), dut.s_axil_bready.eq(1),
            dut.s_axil_arvalid.eq(0), dut.s_axil_araddr.eq(0), dut.s_axil_rready.eq(1),
        ]
        with m.If(dut.s_axil_awvalid & dut.s_axil_awready):
            m.d.sync += waiting_b.eq(1)
        with m.If(dut.s_axil_bvalid):
            m.d.sync += [waiting_b.eq(0), step.eq(step + 1)]
            m.d.comb += Assert(dut.s_axil_bresp == 0, "the host's writes answered OKAY")
        self.started = started = step == len(writes)

        # ---- Q, K, V on s_axis ----------------------------------------------------------
        self.in_beat = in_beat = Signal(range(cfg.seq_max * bpr + 1))
        self.tensor = tensor = Signal(2)
        drive_any(m, dut.s_axis_tdata)
        gap = Signal()
        drive_any(m, gap)
        sending = started & (tensor < 3)
        m.d.comb += [dut.s_axis_tvalid.eq(sending & ~gap & ~rst),
                     dut.s_axis_tlast.eq(in_beat == n * bpr - 1)]
        with m.If(dut.s_axis_tvalid & dut.s_axis_tready):
            m.d.sync += in_beat.eq(in_beat + 1)
            with m.If(dut.s_axis_tlast):
                m.d.sync += [in_beat.eq(0), tensor.eq(tensor + 1)]
        # (the source may drop valid in a reset cycle)
        stream_rules(m, dut.s_axis_tvalid, dut.s_axis_tready,
                     Cat(dut.s_axis_tdata, dut.s_axis_tlast), output=False, name="s_axis",
                     enable=~rst)

        # ---- m_axis: any back-pressure --------------------------------------------------
        drive_any(m, dut.m_axis_tready)


class TopHeadHarness(Elaboratable):
    """A host (:class:`HeadHost`) that runs one head: it writes ``seq_len`` = N (any
    1..seq_max), ``flags`` (any valid value: causal, head pruning, block pruning, rule,
    approximation), ``delta`` and ``head_threshold`` (any values that fit) over
    AXI4-Lite, then ``ctrl.start``, and sends 3 x N rows of any data on s_axis with any
    gaps and ``tlast`` on each tensor's last beat; m_axis has any back-pressure.

    Asserted: m_axis stream rules; the head is N rows of ``beats_per_row`` beats,
    ``tlast`` exactly on its last beat (one packet a head, as ``docs/interface.md``
    says) and no beat after it; the host's register writes all answered OKAY.
    Covered: the head's last beat sent (``tlast``), for a kept and for a pruned head.

    With ``reset_midway``, ``rst`` is free in every cycle (any number of resets, at any
    time, also in the middle of a head). The host model and the stream sources are in
    ``sync`` with the core, so a reset drops whatever they had in flight and the host
    starts over: it programs the registers again (N and the other values chosen anew at
    each reset) and runs a new head; the sources drive no ``valid`` while ``rst`` is
    high (AXI). The properties above then hold for the head started after the last
    reset; also asserted: no B response without a write of the host since that reset.
    Covered: a head's last beat after a reset in the middle of an earlier head.

    With ``contracts``, the input contracts of the units proven by k-induction (the
    serializer, the pair generator, the MAC array and the softmax:
    :class:`.serializer.SerializerContract`, :class:`.pair_generator.PairGeneratorContract`,
    :class:`.mac_array.MacArrayContract`, :class:`.softmax.SoftmaxContract`, which their
    proofs assume) are asserted where the units sit in the core.
    """

    def __init__(self, config, *, reset_midway: bool = False, contracts: bool = False):
        self.config = config
        self.reset_midway = reset_midway
        self.contracts = contracts
        assert not (reset_midway and contracts)

    def elaborate(self, platform):
        cfg = self.config
        if self.reset_midway:
            m, rst = reset_midway_module()
        else:
            m = harness_module()
            rst = Const(0)
        dut = HDPCoprocessor(cfg)
        if self.contracts:
            # elaborated here, so that the units' ports are known (dut.units)
            m.submodules.dut = dut.elaborate(platform)
            dut._MustUse__silence = True
        else:
            m.submodules.dut = dut
        bpr = cfg.beats_per_row
        head_value = per_reset_value(m, rst) if self.reset_midway else any_const
        host = HeadHost(m, dut, cfg, rst=rst, head_value=head_value)
        n, flags, started = host.n, host.flags, host.started
        tensor, in_beat = host.tensor, host.in_beat
        if self.reset_midway:
            with m.If(dut.s_axil_bvalid):
                m.d.comb += Assert(host.waiting_b,
                                   "no B response without a write since the reset")

        # ---- the output packet ------------------------------------------------------------
        fire = _m_axis_rules(m, dut)
        out_beat = packet_beats(m, fire, dut.m_axis_tvalid, dut.m_axis_tlast, started=started,
                                beats=n * bpr, max_beats=cfg.seq_max * bpr)
        head_prune = flags[FLAG_FIELDS.index("head_prune_enable")]
        if self.reset_midway:
            # a reset after the head started and took input, before its last output beat
            mid_head = Signal(name="reset_mid_head")
            with m.If(rst & started & ((tensor != 0) | (in_beat != 0)) & (out_beat < n * bpr)):
                m.d.mon += mid_head.eq(1)
            m.d.comb += Cover(fire & dut.m_axis_tlast & mid_head,
                              "a head's last beat after a reset in the middle of a head")
        else:
            if self.contracts:
                # the units' input contracts, assumed by their k-induction proofs
                # (serializer_beats, pair_generator_rows, mac_array_beats, softmax_beats):
                # here asserted, so that each pair makes an assume-guarantee proof
                SerializerContract(m, dut.units["serializer"], n=n, kind=Assert)
                PairGeneratorContract(m, dut.units["pairs"], n=n,
                                      causal=flags[FLAG_FIELDS.index("causal")], kind=Assert)
                MacArrayContract(m, dut.units["mac"], kind=Assert)
                SoftmaxContract(m, dut.units["softmax"], kind=Assert)
            m.d.comb += [
                Cover(fire & dut.m_axis_tlast & ~head_prune, "a kept head's last beat sent"),
                Cover(fire & dut.m_axis_tlast & head_prune & (n == 2),
                      "a 2-row head, pruning enabled"),
            ]
        return m
