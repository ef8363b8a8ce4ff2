"""Sequencer: the stages of one head (load, integer pass, decision, attention, output),
and its abort (``ctrl.abort`` or the input timeout)."""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..regmap import INPUT_TIMEOUT_BITS, ErrorCode

__all__ = ["Sequencer", "stage_layout"]

stage_layout = data.StructLayout({"load": 1, "int": 1, "attn": 1, "out": 1})


class Sequencer(wiring.Component):
    """Runs one head from an accepted start to ``done``:

    1. LOAD: the input unpacker takes K, then Q's first row; the cycle after that row is
       written (INT_START) the head scorer starts (it reads its first rows in that very
       cycle, so ``int_phase`` is combinational);
    2. INT: the integer pass, while the rest of Q and then V arrive (the scorer reads
       each Q row once it is in, and V is not needed), until the
       pair generator holds every keep mask and the scorer's head importance is ready;
    3. DECIDE: head pruning (``head_importance < head_threshold`` with pruning on),
       once V's last row is in; the pair generator is sent off (every row a zero row for
       a pruned head);
    4. ATTN: scores, softmax and P x V, until the last row is being sent (a pruned head
       goes straight to OUTPUT);
    5. OUTPUT: until the last output beat; then ``done``.

    **Abort.** In any stage from LOAD to OUTPUT, ``abort_req`` (``ctrl.abort``) or the
    input timeout drops the head (a head whose last output beat is sent finishes instead):

    - ABORT: ``halt`` is high from this cycle (a register): the top stops ``s_axis``
      (``tready`` low, no beat taken) and the output serializer offers no new beat; a
      beat it offers already stays until taken (AXI4-Stream). In the first ABORT cycle
      with ``out_valid`` low (at once when no beat is offered, else the cycle after the
      host takes it) ``flush`` is set for the next cycle and ``error`` raises
      :attr:`~hdp_rtl.regmap.ErrorCode.ABORTED` or ``INPUT_TIMEOUT``.
    - FLUSH: ``flush`` (a register) clears every datapath unit in this cycle (the top's
      ``ResetInserter``); ``busy`` falls at its end, ``done`` and ``head_pruned`` stay
      low; then IDLE.

    So ``busy`` is low 3 cycles after ``abort_req`` (ABORT, FLUSH, then IDLE), or, when
    a beat is offered on ``m_axis`` in the first ABORT cycle, 3 cycles after the host
    takes it. ``abort_req`` while idle (or in FINISH) is ignored.

    **Input timeout.** A counter counts consecutive cycles with ``input_wait`` (the
    unpacker expects a beat and ``s_axis`` offers none) in a running stage; the cycle
    after it has counted more than ``input_timeout`` (non-zero) such cycles, the head is
    aborted as above (``abort_req`` in the same cycle wins: error 10). The compare is
    registered (``timed_out``), off the counter's carry chain; the counter saturates.

    Parameters
    ----------
    hi_bits : int
        Width of the head importance and its threshold.
    timeout_bits : int
        Width of ``input_timeout`` (``regmap.INPUT_TIMEOUT_BITS``).

    Members
    -------
    start : In(1)
        An accepted start.
    busy, done, head_pruned : Out(1)
        Status bits (``done`` and ``head_pruned`` hold until the next start).
    head_prune_enable : In(1)
    head_threshold, head_importance : In(hi_bits)
    int_ready : In(1)
        Q's first row is taken this cycle (all of K is in before it: ``INPUT_ORDER``).
    input_last_row : In(1)
        V's last row is taken this cycle.
    scorer_start : Out(1)
    int_phase : Out(1)
        The integer pass owns the shared Q/K read ports.
    int_done : In(1)
        The integer pass is over and ``head_importance`` valid.
    go, prune_head : Out(1)
        Send the pair generator off.
    last_row_held, output_done : In(1)
        From the output serializer.
    stage : Out(stage_layout)
        The stage whose cycles the counters count: ``load`` is LOAD (Q and K), ``int``
        is INT_START to DECIDE (V's load overlaps it).
    abort_req : In(1)
        Drop the running head (ignored while idle).
    input_timeout : In(timeout_bits)
        Cycles without input after which a head is aborted (0: never).
    input_wait : In(1)
        The input unpacker expects a beat and ``s_axis`` offers none this cycle.
    out_valid : In(1)
        ``m_axis_tvalid``: the output serializer offers a beat.
    halt : Out(1)
        A register, high from ABORT to FLUSH: stop both streams.
    flush : Out(1)
        A register, high in FLUSH: clear every datapath unit.
    error : Out(4)
        A register: the :class:`~hdp_rtl.regmap.ErrorCode` of an abort, in its FLUSH
        cycle (0 otherwise).
    """

    def __init__(self, *, hi_bits: int, timeout_bits: int = INPUT_TIMEOUT_BITS):
        self.hi_bits, self.timeout_bits = hi_bits, timeout_bits
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "head_pruned": Out(1),
            "head_prune_enable": In(1), "head_threshold": In(hi_bits),
            "head_importance": In(hi_bits),
            "int_ready": In(1), "input_last_row": In(1),
            "scorer_start": Out(1), "int_phase": Out(1),
            "int_done": In(1), "go": Out(1), "prune_head": Out(1),
            "last_row_held": In(1), "output_done": In(1),
            "stage": Out(stage_layout),
            "abort_req": In(1), "input_timeout": In(timeout_bits), "input_wait": In(1),
            "out_valid": In(1), "halt": Out(1), "flush": Out(1), "error": Out(4),
        })

    @classmethod
    def from_config(cls, config):
        return cls(hi_bits=config.hi_bits)

    def elaborate(self, platform):
        m = Module()
        hi = Signal(self.hi_bits)
        v_in = Signal()             # V's last row taken (the attention pass reads V)
        with m.If(self.start):
            m.d.sync += v_in.eq(0)
        with m.Elif(self.input_last_row):
            m.d.sync += v_in.eq(1)

        # ---- input timeout: consecutive cycles of a running head waiting for a beat ----
        waited = Signal(self.timeout_bits)
        timed_out = Signal()
        counting = self.input_wait & self.busy & ~self.halt
        m.d.sync += [
            waited.eq(Mux(counting, Mux(waited.all(), waited, waited + 1), 0)),
            timed_out.eq(counting & (self.input_timeout != 0) & (waited >= self.input_timeout)),
        ]
        cause = Signal(4)                  # the error the abort under way raises
        m.d.sync += [self.flush.eq(0), self.error.eq(0)]

        def abortable():
            """Leave for ABORT on ``abort_req`` or a timeout (placed last in a state: it wins
            over the state's own transition)."""
            with m.If(self.abort_req | timed_out):
                m.d.sync += [self.halt.eq(1),
                             cause.eq(Mux(self.abort_req, ErrorCode.ABORTED,
                                          ErrorCode.INPUT_TIMEOUT))]
                m.next = "ABORT"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), self.done.eq(0), self.head_pruned.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.stage.load.eq(1)
                with m.If(self.int_ready):
                    m.next = "INT_START"
                abortable()
            with m.State("INT_START"):        # K and Q's first row are written: readable now
                m.d.comb += [self.stage.int.eq(1), self.scorer_start.eq(1),
                             self.int_phase.eq(1)]
                m.next = "INT"
                abortable()
            with m.State("INT"):
                m.d.comb += [self.stage.int.eq(1), self.int_phase.eq(1)]
                with m.If(self.int_done):
                    m.d.sync += hi.eq(self.head_importance)
                    m.next = "DECIDE"
                abortable()
            with m.State("DECIDE"):
                prune = self.head_prune_enable & (hi < self.head_threshold)
                m.d.comb += self.stage.int.eq(1)
                with m.If(v_in):
                    m.d.comb += [self.go.eq(1), self.prune_head.eq(prune)]
                    m.d.sync += self.head_pruned.eq(prune)
                    with m.If(prune):
                        m.next = "OUTPUT"
                    with m.Else():
                        m.next = "ATTN"
                abortable()
            with m.State("ATTN"):
                m.d.comb += self.stage.attn.eq(1)
                with m.If(self.output_done):
                    m.next = "FINISH"
                with m.Else():
                    with m.If(self.last_row_held):
                        m.next = "OUTPUT"
                    abortable()           # a head whose output is all sent finishes
            with m.State("OUTPUT"):
                m.d.comb += self.stage.out.eq(1)
                with m.If(self.output_done):
                    m.next = "FINISH"
                with m.Else():
                    abortable()
            with m.State("FINISH"):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                m.next = "IDLE"
            with m.State("ABORT"):            # halt: no new beat in or out
                with m.If(~self.out_valid):   # no beat offered, none will be: clear now
                    m.d.sync += [self.flush.eq(1), self.error.eq(cause)]
                    m.next = "FLUSH"
            with m.State("FLUSH"):            # every datapath unit cleared in this cycle
                m.d.sync += [self.halt.eq(0), self.busy.eq(0), self.head_pruned.eq(0)]
                m.next = "IDLE"
        # the state the formal harness's invariants name (hdp_rtl/formal/top_control.py)
        self.state = dict(fsm_state=fsm.state, encoding=dict(fsm.encoding), v_in=v_in,
                          waited=waited, timed_out=timed_out, cause=cause, hi=hi)
        return m
