"""Formal harness of :class:`~hdp_rtl.rtl.mac_array.MacArray`: its stream rules, and one
score per pair and one output row per probability row, proven by k-induction."""
from types import SimpleNamespace

from amaranth.hdl import Array, Assert, Cat, Elaboratable, Mux, Signal

from ..rtl.mac_array import MacArray
from .common import Assume, Cover, UpDown, any_const, drive_any, harness_module, open_fifo, \
    stream_rules
from .order import Tracked

__all__ = ["MacArrayHarness", "MacArrayContract", "mac_beats"]


class MacArrayContract:
    """What the MAC array's environment (the pair generator, the softmax and the
    serializer) must guarantee for :class:`MacArrayHarness`'s properties: ``kind`` is
    ``Assume`` in the unit's proof and ``Assert`` where the array sits in the top
    (``top_head_contracts``).

    - ``i_pair``, ``i_prob``: stream rules (valid and payload held until taken);
    - ``i_row_free`` only for an output row sent (``o_chunk``'s ``last``) and not yet
      freed (the serializer gives the row credits back once a row).

    Also counts the handshakes (``fire_pair``, ``fire_prob``), the rows sent
    (``fire_out``) and the rows sent and not freed (``held``).
    """

    def __init__(self, m, dut, *, kind, name="mac"):
        output = kind is Assert
        self.fire_pair = stream_rules(m, dut.i_pair.valid, dut.i_pair.ready, dut.i_pair.payload,
                                      output=output, name=f"{name}_i_pair")
        self.fire_prob = stream_rules(m, dut.i_prob.valid, dut.i_prob.ready, dut.i_prob.payload,
                                      output=output, name=f"{name}_i_prob")
        self.fire_out = fire_out = Signal(name=f"{name}_row_out")
        m.d.comb += fire_out.eq(dut.o_chunk.valid & dut.o_chunk.payload.last)
        self.held = UpDown(m, up=fire_out, down=dut.i_row_free, max=dut.out_rows,
                           name=f"{name}_rows_held")
        m.d.comb += kind(~dut.i_row_free | (self.held.value != 0),
                         f"{name}: i_row_free only for a row sent and not freed")


class MacArrayHarness(Elaboratable):
    """Inputs ``i_pair`` and ``i_prob``, output ``o_score`` (asserted: stream rules);
    row-buffer data is free. ``o_chunk`` has no ready: the consumer frees a row on
    ``i_row_free`` any time after it came. The input contract
    (:class:`MacArrayContract`) is assumed.

    With ``beats`` (k-induction): every pair gives exactly one score, in order, with
    ``col`` and ``last`` copied (any pair followed, :class:`.order.Tracked`: no bound
    on the number of pairs); every probability row (``last``) gives exactly one output
    row of ``head_dim / mac_lanes`` chunks, ``last`` on its last chunk only; at most
    ``score_depth`` pairs (the score credits) and ``out_rows`` probability rows not
    yet freed (the row credits) are inside, and never more than ``out_rows`` rows sent
    and not freed; no score, no output chunk without an input. Invariants over the
    array's state (``MacArray.state``) make it inductive: the pairs inside are the
    score queue's (register and FIFO) and the score operations in the issue stage and
    the pipeline (one each, at its last chunk); the probability rows inside are the
    row-ending operations likewise and the output stage's last chunk; each credit
    counter is its places less those counts; an operation's chunks are consecutive in
    consecutive stages; the followed pair's ``col`` and ``last`` are in its place.

    With ``hazard`` (the accumulators in block RAM, ``pv_acc_ram``): no accumulator word
    is read in a cycle it is written in, or in the cycle before (a stale or undefined
    word). BMC only: k-induction would start from unreachable pipeline states, so a
    proof of the stream rules leaves it out.
    """

    def __init__(self, config, *, beats: bool = False, hazard: bool = False, unit=MacArray,
                 free_reset: bool = False):
        self.config = config
        self.beats = beats
        self.hazard = hazard
        self.unit = unit                 # (a mutant, in tests)
        self.free_reset = free_reset     # the reset free in every cycle (common.harness_module)

    def elaborate(self, platform):
        m = harness_module(free_reset=self.free_reset)
        cfg = self.config
        dut = self.unit.from_config(cfg)
        # elaborated here, so that its internal state (dut.state) can be read below
        m.submodules.dut = unit = dut.elaborate(platform)
        dut._MustUse__silence = True
        if dut.approximation:
            m.d.comb += dut.approx_enable.eq(any_const(1))
        drive_any(m, dut.q_rd.data, dut.k_rd.data, dut.v_rd.data,
                  dut.i_pair.valid, dut.i_pair.payload, dut.i_prob.valid, dut.i_prob.payload,
                  dut.o_score.ready, dut.i_row_free)
        c = MacArrayContract(m, dut, kind=Assume, name="mac")
        fire_score = stream_rules(m, dut.o_score.valid, dut.o_score.ready, dut.o_score.payload,
                                  output=True, name="o_score")
        m.d.comb += [Cover(fire_score & dut.o_score.payload.last, "a row's last score sent"),
                     Cover(c.fire_out, "an output row sent")]
        if self.hazard:
            assert dut.acc_ram, "the hazard check needs pv_acc_ram"
            m.d.comb += Assert(~dut.acc_ram_hazard,
                               "no accumulator word read as it is written or just before")
        if self.beats:
            mac_beats(m, unit, dut, c, fire_score, platform)
        return m


def mac_beats(m, unit, dut, c, fire_score, platform):
    """:class:`MacArrayHarness`'s ``beats`` properties and the invariants that make them
    inductive, for the array ``dut`` (elaborated by the harness as ``unit``) with its
    contract ``c`` and score handshake ``fire_score``; also used by the datapath chain's
    proof (``chain.py``). Returns what a composed proof needs: the harness's counters
    (``pairs``, ``prow``, ``in_row``) and the score places in order, the next to leave
    first, as ``(present, Cat(col, last))`` pairs (``score_entries``)."""
    assert not (dut.channel_skip or dut.acc_ram), "the invariants assume neither"
    st = dut.state
    chunks = dut.head_dim // dut.lanes
    depth, out_rows = dut.score_depth, dut.out_rows
    chunk, held = dut.o_chunk, c.held
    in_row = Signal(range(chunks + 1), name="chunks_of_row")
    with m.If(chunk.valid):
        m.d.sync += in_row.eq(in_row + 1)
        with m.If(chunk.payload.last):
            m.d.sync += in_row.eq(0)
    pairs = UpDown(m, up=c.fire_pair, down=fire_score, max=depth, name="pairs_inside")
    prow = UpDown(m, up=c.fire_prob & dut.i_prob.payload.last, down=c.fire_out,
                  max=out_rows + 1, name="prob_rows_inside")
    m.d.comb += [
        Assert(pairs.value <= depth, "at most score_depth pairs inside"),
        Assert(~dut.o_score.valid | (pairs.value != 0), "no score without a pair"),
        Assert(prow.value + held.value <= out_rows,
               "at most out_rows probability rows not freed"),
        Assert(~chunk.valid | (prow.value != 0), "no output chunk without a row"),
        Assert(in_row < chunks, "no row of more than head_dim / mac_lanes chunks"),
        Assert(~chunk.valid | (chunk.payload.last == (in_row == chunks - 1)),
               "last on a row's last chunk only"),
        Assert(held.value <= out_rows, "at most out_rows rows sent and not freed"),
    ]
    bits = len(dut.o_score.payload.col) + 1
    tail = lambda v: v.as_value()[-bits:]   # noqa: E731 (col and last)
    follow = Tracked(m, fire_in=c.fire_pair, in_data=tail(dut.i_pair.payload),
                     fire_out=fire_score, out_data=tail(dut.o_score.payload),
                     inside=pairs.value, max_inside=depth, name="pair_score")
    m.d.comb += Cover(pairs.value == depth, "every score credit taken")

    # ---- invariants over the array's state (for the induction) -----------------------
    issue = dict(valid=st["active"], is_pv=st["is_pv"], chunk=st["chunk"],
                 last_chunk=st["last_chunk"], col=st["op_col"], last=st["op_last"])
    stages = st["stages"]      # s0 .. s4 (and more sum stages past 16 lanes), then the queue
    chain = [issue] + [dict(valid=s.valid, is_pv=s.is_pv, chunk=s.chunk,
                            last_chunk=s.last_chunk, col=s.col, last=s.last)
                       for s in stages]
    m.d.comb += [
        Assert(st["active"] | (st["chunk"] == 0), "inv: chunk 0 when idle"),
        Assert(st["last_chunk"] == (st["chunk"] == chunks - 1), "inv: issue last_chunk"),
    ]
    names = ["the issue stage"] + [f"s{i}" for i in range(len(stages))]
    for (yn, young), (on, old) in zip(zip(names, chain), zip(names[1:], chain[1:])):
        same = ((young["is_pv"] == old["is_pv"]) & (young["col"] == old["col"])
                & (young["last"] == old["last"]))
        m.d.comb += [
            Assert(~old["valid"] | (old["last_chunk"] == (old["chunk"] == chunks - 1)),
                   f"inv: {on}'s last_chunk"),
            Assert(~old["valid"] | old["last_chunk"]
                   | (young["valid"] & same & (young["chunk"] == old["chunk"] + 1)),
                   f"inv: {on}'s operation continues in {yn}"),
            Assert(~young["valid"] | (young["chunk"] == 0)
                   | (old["valid"] & same & (old["chunk"] + 1 == young["chunk"])),
                   f"inv: {yn}'s earlier chunk in {on}"),
        ]
    # pairs: one score operation each (issue stage: any chunk; a stage: its last)
    score_op = [issue["valid"] & ~issue["is_pv"]] + \
               [s.valid & ~s.is_pv & s.last_chunk for s in stages]
    # probability rows: a row-ending P x V operation, then the output stage's last
    row_op = [issue["valid"] & issue["is_pv"] & issue["last"]] + \
             [s.valid & s.is_pv & s.last & s.last_chunk for s in stages[:3]]
    s3 = stages[3]
    q = st["score_queue"]
    produce, consume, words = open_fifo(unit, "score_fifo", platform)
    fifo = q["fifo"]
    D = fifo.depth
    level = fifo.level
    m.d.comb += [
        Assert(st["o_valid"] == (s3.valid & s3.is_pv & s3.last), "inv: o_chunk valid"),
        Assert(st["o_last"] == (st["o_valid"] & s3.last_chunk), "inv: o_chunk last"),
        Assert(in_row == Mux(st["o_valid"], s3.chunk, 0), "inv: chunks of the row sent"),
        Assert(prow.value == sum(row_op) + st["o_last"], "inv: probability rows inside"),
        Assert(pairs.value == q["valid"] + level + sum(score_op), "inv: pairs inside"),
        Assert(st["score_credit"]["credits"] + pairs.value == depth, "inv: score credits"),
        Assert(st["score_credit"]["room"] == (st["score_credit"]["credits"] != 0),
               "inv: score room"),
        Assert(st["row_credit"]["credits"] + prow.value + held.value == out_rows,
               "inv: row credits"),
        Assert(st["row_credit"]["room"] == (st["row_credit"]["credits"] != 0),
               "inv: row room"),
        Assert(q["valid"] | (level == 0), "inv: the FIFO only behind a full register"),
        Assert(level <= D, "inv: FIFO level"),
        Assert((produce < D) & (consume < D), "inv: FIFO pointers"),
        Assert(Mux(produce == consume, (level == 0) | (level == D),
                   level == Mux(produce > consume, produce - consume, produce + D - consume)),
               "inv: FIFO level = produce - consume"),
    ]
    # the followed pair: the queue's register, the FIFO's words from `consume`, then
    # the score operations from the oldest stage (s4) to the issue stage
    words = Array(words)
    entries = [(q["valid"], tail(q["head"]))]
    for j in range(D):
        at = consume + j
        entries.append((level > j, words[at - (at >= D) * D][-bits:]))
    entries += [(op, Cat(s["col"], s["last"]))
                for op, s in zip(reversed(score_op), reversed(chain))]
    follow.at(m, entries)
    return SimpleNamespace(pairs=pairs, prow=prow, in_row=in_row, score_entries=entries,
                           follow=follow)
