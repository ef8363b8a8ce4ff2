"""Sequencer: the stages of one head (load, integer pass, decision, attention, output)."""
from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

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

    Parameters
    ----------
    hi_bits : int
        Width of the head importance and its threshold.

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
    """

    def __init__(self, *, hi_bits: int):
        self.hi_bits = hi_bits
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "head_pruned": Out(1),
            "head_prune_enable": In(1), "head_threshold": In(hi_bits),
            "head_importance": In(hi_bits),
            "int_ready": In(1), "input_last_row": In(1),
            "scorer_start": Out(1), "int_phase": Out(1),
            "int_done": In(1), "go": Out(1), "prune_head": Out(1),
            "last_row_held": In(1), "output_done": In(1),
            "stage": Out(stage_layout),
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
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), self.done.eq(0), self.head_pruned.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.stage.load.eq(1)
                with m.If(self.int_ready):
                    m.next = "INT_START"
            with m.State("INT_START"):        # K and Q's first row are written: readable now
                m.d.comb += [self.stage.int.eq(1), self.scorer_start.eq(1),
                             self.int_phase.eq(1)]
                m.next = "INT"
            with m.State("INT"):
                m.d.comb += [self.stage.int.eq(1), self.int_phase.eq(1)]
                with m.If(self.int_done):
                    m.d.sync += hi.eq(self.head_importance)
                    m.next = "DECIDE"
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
            with m.State("ATTN"):
                m.d.comb += self.stage.attn.eq(1)
                with m.If(self.output_done):
                    m.next = "FINISH"
                with m.Elif(self.last_row_held):
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += self.stage.out.eq(1)
                with m.If(self.output_done):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                m.next = "IDLE"
        return m
