"""Formal harness of the core's control (``top_control``): the control inputs of the
datapath units, under the ``top_head`` host, proven by k-induction on the whole core."""
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Elaboratable, Signal

from ..regmap import FLAG_FIELDS
from ..rtl.regfile import RegisterFile
from ..rtl.sequencer import Sequencer
from ..rtl.top import HDPCoprocessor
from .common import Assert, Cover, any_seq, elaborate_submodule, harness_module
from .pair_generator import PairGeneratorContract
from .serializer import SerializerContract
from .top import HeadHost, per_reset_value, reset_midway_module

__all__ = ["TopControlHarness", "ControlView", "core_module", "with_free_datapath_inputs",
           "SEQUENCER_DATAPATH_INPUTS"]

#: The sequencer's inputs that come from the datapath units (``top.py``).
SEQUENCER_DATAPATH_INPUTS = ("int_ready", "input_last_row", "int_done", "head_importance",
                             "last_row_held", "output_done", "out_valid", "input_wait")


def core_module(top):
    """The core ``Module`` of an elaborated :class:`HDPCoprocessor` (``top``, its
    ``elaborate`` result): the one that holds the units (under a ``DomainRenamer``)."""
    return top._named_submodules["core"][0]._elaboratable_


class ControlView:
    """A unit seen through its control ports only: ``idle`` names its data streams,
    which the view shows idle (``valid`` and ``ready`` 0, a payload of zeros), ``zero``
    the other inputs it shows as 0; every other attribute is the unit's own. Given to a
    unit's input contract (:class:`.serializer.SerializerContract`,
    :class:`.pair_generator.PairGeneratorContract`), it makes the contract's clauses on
    those streams hold trivially, so that only its control clauses (``start``,
    ``seq_len``, ``stop``, ``go``, ``causal``) say anything, with their names and
    definitions."""

    def __init__(self, unit, *, idle=(), zero=()):
        self._unit = unit
        self._over = {}
        for name in idle:
            payload = getattr(unit, name).payload
            self._over[name] = SimpleNamespace(
                valid=Const(0), ready=Const(0),
                payload=Signal(payload.shape(), name=f"idle_{name}"))
        for name in zero:
            self._over[name] = Const(0, len(getattr(unit, name)))

    def __getattr__(self, name):
        if name in self._over:
            return self._over[name]
        return getattr(self._unit, name)


def with_free_datapath_inputs(sequencer):
    """A subclass of ``sequencer`` (the class) whose inputs from the datapath
    (:data:`SEQUENCER_DATAPATH_INPUTS`) are cut from the core and driven by the solver
    in every cycle: the sequencer runs with any datapath, not only the core's."""

    class FreeDatapathInputs(sequencer):
        def elaborate(self, platform):
            ports = {name: getattr(self, name) for name in SEQUENCER_DATAPATH_INPUTS}
            free = {name: Signal(len(port), name=f"free_{name}")
                    for name, port in ports.items()}
            for name, sig in free.items():
                setattr(self, name, sig)
            try:
                m = super().elaborate(platform)
            finally:
                for name, port in ports.items():
                    setattr(self, name, port)
            m.d.comb += [sig.eq(any_seq(len(sig))) for sig in free.values()]
            return m

    return FreeDatapathInputs


class TopControlHarness(Elaboratable):
    """The core (:class:`HDPCoprocessor`) under the host of ``top_head``
    (:class:`.top.HeadHost`: ``seq_len`` = N, ``flags``, ``delta``, ``head_threshold``,
    then ``ctrl.start``, then Q, K, V on s_axis, any back-pressure; no reset, no abort).

    Asserted, the control inputs of the datapath units, i.e. the control clauses of the
    serializer's and the pair generator's input contracts (with their names: the
    contracts are instantiated on a :class:`ControlView` of each unit, whose data
    streams are shown idle):

    1. the units' ``start`` (the top's ``start``, the register file's ``start`` a cycle
       late, which drives the unpacker's, the pair generator's and the serializer's
       ``start``) at most once (``ser: one start``, ``pg: one start``), and only after
       the AW/W handshake of the host's ``ctrl.start`` write;
    2. from the cycle after that start, ``run.seq_len`` (the pair generator's and the
       serializer's ``seq_len``) = N (``ser: seq_len = N from the cycle after start``,
       ``pg: seq_len = N from after start``) and ``run.flags.causal`` (the pair
       generator's ``causal``) = the host's causal flag (``pg: causal held from after
       start``);
    3. the sequencer's ``go`` (the pair generator's) at most once, and only after the
       start, from the cycle after it (``pg: go once, after the start``);
    4. the serializer's ``stop`` (the sequencer's ``halt``) always low (``ser: no
       stop``); the datapath's clear (``dp_clear`` = the sequencer's ``flush`` |
       ``after_rst``) low from cycle 1 on.

    The datapath proof (the four units composed by k-induction, their control inputs
    assumed) assumes exactly these: together they make the control part of the glue of
    the assume-guarantee chain, which ``top_head_contracts`` checks by BMC only. The
    contracts' clauses on the data streams (no row before the start, rows of
    ``head_dim / mac_lanes`` chunks, at most N rows, ``row_done`` for a row sent, ...)
    hold trivially on the views and are not proven here: they are the datapath proof's.

    The datapath units are free in the induction's first state: these properties, and
    the invariants that make them inductive, read only the host model, the AXI4-Lite
    slave (its ports: ``wr_en`` is its write request register, ``bvalid`` its B
    pending), the register file (``RegisterFile.state``: the written registers), the
    top's ``start``/``after_rst``/``abort_req`` registers and the sequencer
    (``Sequencer.state``: the FSM, ``timed_out``). The sequencer's inputs from the
    datapath (``int_ready``, ``int_done``, ``input_last_row``, ``last_row_held``,
    ``output_done``, ``out_valid``, ``input_wait``) only choose *when* it moves along
    LOAD .. DECIDE and ATTN/OUTPUT .. FINISH .. IDLE: no value of them raises ``go``
    twice, restarts a head or aborts one, so the invariants hold for any datapath.

    Invariants:

    - host and AXI slave: the host waits for B (``waiting_b``) exactly while its write is
      in the slave's request register (``wr_en``) or its B is pending, never both; the
      request holds the address, data and strobes of the host's write ``step``;
    - register file: ``seq_len`` = N once the host's first write is done (its B
      pending or taken), ``flags`` = the host's once the second is; ``input_timeout`` 0
      (never written);
    - the top's ``start`` only with the ``ctrl`` write's B pending (step 4); from the
      cycle after it the host is done (step 5), so no write follows; ``run`` holds N
      and the flags from ``start`` on; the ``abort_req`` register 0;
    - sequencer: IDLE until the start; LOAD, INT_START, INT or DECIDE from the cycle
      after it until ``go``; ATTN, OUTPUT, FINISH or IDLE after ``go``; ``halt``,
      ``flush`` and ``timed_out`` low; ``go`` seen only after the start.

    With them the proof is 1-inductive (``top_control``: prove at depth 1 passes; each
    invariant above is needed at depth 1). ``after_rst`` needs none: it is 0 from cycle
    1 on in any state.

    With ``free_reset``, ``rst`` is free in every cycle (any number of resets, at any
    time: during the register writes, after the start, mid-head), as in ``top_reset``:
    the host starts over after each reset (N and the flags chosen anew), and the
    contracts' records, the harness's and the invariants' registers restart with the
    core, so every clause holds for the head since the last reset; ``dp_clear`` is low
    except in cycle 0 and the cycle after each reset.

    With ``free_datapath``, the sequencer's inputs from the datapath (``int_ready``,
    ``input_last_row``, ``int_done``, ``head_importance``, ``last_row_held``,
    ``output_done``, ``out_valid``, ``input_wait``) are cut and free in every cycle
    (:func:`with_free_datapath_inputs`): the clauses then hold whatever the datapath
    does, not only for the datapath logic of the core from any state.

    ``regs``/``sequencer``: the register file's and the sequencer's classes (a mutant,
    in tests: the core's unit is elaborated as that class).
    """

    def __init__(self, config, *, free_reset=False, free_datapath=False, regs=RegisterFile,
                 sequencer=Sequencer):
        self.config = config
        self.free_reset = free_reset
        self.regs_cls = regs
        self.seq_cls = with_free_datapath_inputs(sequencer) if free_datapath else sequencer

    def elaborate(self, platform):
        cfg = self.config
        if self.free_reset:
            m, rst = reset_midway_module()
            host_args = dict(rst=rst, head_value=per_reset_value(m, rst))
        else:
            m = harness_module()
            host_args = {}
        dut = HDPCoprocessor(cfg)
        # elaborated here, so that the units (dut.units) and their state can be read
        m.submodules.dut = top = dut.elaborate(platform)
        dut._MustUse__silence = True
        units = dut.units
        core = core_module(top)
        regs, seq = units["regs"], units["sequencer"]
        for name, unit, cls in (("regs", regs, self.regs_cls),
                                ("sequencer", seq, self.seq_cls)):
            if type(unit) is not cls:
                unit.__class__ = cls     # (a mutant: the same ports, its elaborate)
            elaborate_submodule(core, name, platform)   # (sets unit.state)

        host = HeadHost(m, dut, cfg, **host_args)
        n, flags = host.n, host.flags
        causal = flags[FLAG_FIELDS.index("causal")]
        start, after_rst, dp_clear = units["start"], units["after_rst"], units["dp_clear"]

        # ---- the contracts' control clauses ----------------------------------------------
        SerializerContract(
            m, ControlView(units["serializer"], idle=("i_chunk", "i_zero_row"),
                           zero=("row_free",)), n=n, kind=Assert)
        pg = PairGeneratorContract(
            m, ControlView(units["pairs"], idle=("o_pair", "o_zero_row"), zero=("row_done",)),
            n=n, causal=causal, kind=Assert)
        started, went = pg.started, pg.went

        # ---- the start after the host's ctrl.start write; dp_clear ------------------------
        ctrl_step = len(host.writes) - 1
        ctrl_taken = Signal(name="ctrl_start_taken")      # its AW/W handshake was
        with m.If(dut.s_axil_awvalid & dut.s_axil_awready & (host.step == ctrl_step)):
            m.d.sync += ctrl_taken.eq(1)
        first = Signal(init=1, name="cycle0")        # (and the cycle after a reset)
        m.d.sync += first.eq(0)
        m.d.comb += [
            Assert(~start | ctrl_taken, "start only after the ctrl.start write's AW/W"),
            Assert(~dp_clear | first, "dp_clear only in cycle 0 (or after a reset)"),
        ]

        # ---- invariants (for the induction) ------------------------------------------------
        step, waiting_b = host.step, host.waiting_b
        bus = regs.bus                      # (wired to the AXI slave's register strobes)
        w_req, b_pending = bus.wr_en, dut.s_axil_bvalid
        reg, fst = regs.state["value"], seq.state
        enc, fsm = fst["encoding"], fst["fsm_state"]

        def in_states(*names):
            return Cat(*(fsm == enc[s] for s in names)).any()

        def written(i):
            """The host's write ``i`` is stored (its B pending or taken)."""
            return (step > i) | ((step == i) & b_pending)

        m.d.comb += [
            Assert(waiting_b == (w_req | b_pending), "inv: the host waits for its write's B"),
            Assert(~(w_req & b_pending), "inv: one write at a time in the slave"),
            Assert(~waiting_b | (step < len(host.writes)), "inv: no write after the last"),
            Assert(ctrl_taken == ((step == ctrl_step + 1) | ((step == ctrl_step) & waiting_b)),
                   "inv: the ctrl.start write taken"),
            Assert(~written(0) | (reg["seq_len"] == n), "inv: seq_len register"),
            Assert(~written(1) | (reg["flags"] == flags), "inv: flags register"),
            Assert(reg["input_timeout"] == 0, "inv: input_timeout register 0"),
            Assert(~start | ((step == ctrl_step) & b_pending), "inv: start with ctrl's B"),
            Assert(~started | (step == ctrl_step + 1), "inv: the host done after the start"),
            Assert(~(started | start) | ((regs.run.seq_len == n)
                                          & (regs.run.flags.as_value() == flags)),
                   "inv: run holds N and the flags"),
            Assert(~seq.abort_req, "inv: no abort request"),
            Assert(started | in_states("IDLE"), "inv: sequencer IDLE until the start"),
            Assert(~started | went | in_states("LOAD", "INT_START", "INT", "DECIDE"),
                   "inv: sequencer LOAD..DECIDE from the start to go"),
            Assert(~went | in_states("ATTN", "OUTPUT", "FINISH", "IDLE"),
                   "inv: sequencer ATTN..IDLE after go"),
            Assert(~went | started, "inv: go after the start"),
            Assert(~seq.halt & ~seq.flush & ~fst["timed_out"], "inv: no halt, flush, timeout"),
        ]
        for i, (offset, value) in enumerate(host.writes):
            with m.If(w_req & (step == i)):
                m.d.comb += Assert((bus.wr_addr == offset) & (bus.wr_data == value)
                                   & (bus.wr_strb == 0b1111),
                                   f"inv: the slave's request is the host's write {i}")

        if self.free_reset:
            # a reset after the units' start, before go
            mid_head = Signal(name="reset_mid_head")
            with m.If(rst & (started | start) & ~went):
                m.d.mon += mid_head.eq(1)
            m.d.comb += Cover(units["pairs"].go & mid_head,
                              "the sequencer's go after a reset in the middle of a head")
            return m
        m.d.comb += [
            Cover(start, "the units' start"),
            Cover(units["pairs"].go, "the sequencer's go"),
        ]
        return m
