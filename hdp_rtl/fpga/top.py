"""Board top: the co-processor with a free-running stimulus and an output signature.

A board has no AXI host, so every input of the core is driven from free-running LFSRs
(each input bit is a distinct flip-flop) and every output is registered and folded into
its own bit of a multiple-input signature register (MISR) of 16-bit rings whose XOR
lights an LED. Every output bit reaches the LED, so yosys cannot
prune any part of the datapath; the wrapper adds no logic to the core's paths (its
inputs start at flip-flops, its outputs end at flip-flops).

On a board the ``sync`` domain runs from the board's PLL (``EHXPLLL`` on ECP5,
``SB_PLL40_PAD`` on iCE40) at the board's target frequency, held in reset until the
PLL locks. Without a platform (simulation, plain RTLIL/Verilog) ``sync`` is the usual
external clock and reset.
"""
from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["BoardTop", "StimulusSignature", "LFSR_TAPS", "core_ports"]

#: Fibonacci LFSR x^32 + x^22 + x^2 + x + 1 (maximal length).
LFSR_TAPS = (31, 21, 1, 0)
LFSR_WIDTH = 32


def core_ports(core: wiring.Component):
    """``(inputs, outputs)``: the core's ports as lists of ``(name, signal)``."""
    ins, outs = [], []
    for name, member in core.signature.members.items():
        if not member.is_port:
            raise TypeError(f"core member {name!r} is not a plain port")
        (ins if member.flow == wiring.In else outs).append((name, getattr(core, name)))
    return ins, outs


class StimulusSignature(Elaboratable):
    """The stimulus and the signature without the core.

    ``stim`` (``in_bits`` wide): the bits of ``ceil(in_bits / 32)`` free-running,
    maximal-length 32-bit Fibonacci LFSRs, each from its own seed. Every flip-flop has
    its own next-state net, so synthesis can merge none of them: each input bit is a
    distinct, non-constant register. (One LFSR copied 32 bits at a time into a wide
    register would not do: most copies would have the same next state as an LFSR bit
    and be merged.)

    ``misr``: the registered outputs ``obs_q`` go into rings of ``RING`` bits
    (``ring <= rotate(ring) ^ obs_q[slice]``), one signature flip-flop per output bit,
    and ``misr`` (registered) is the XOR of bit 0 of every ring. No two outputs meet in
    one XOR (equal or complementary outputs cannot cancel), each reaches ``misr``, and
    no flip-flop chain is longer than 32 (yosys' ABC9 pass recurses along them; a ring
    or shift register hundreds of bits long exhausts the WebAssembly yosys' stack).
    """

    RING = 16

    def __init__(self, in_bits: int, out_bits: int):
        self.in_bits, self.out_bits = in_bits, out_bits
        self.stim = Signal(max(1, in_bits))
        self.obs = Signal(max(1, out_bits))
        self.misr = Signal()
        n_lfsr = -(-max(1, in_bits) // LFSR_WIDTH)
        self.lfsrs = [Signal(LFSR_WIDTH, init=(0x1 + 0x9E3779B1 * k) & 0xFFFF_FFFF or 1,
                             name=f"lfsr{k}") for k in range(n_lfsr)]
        n_ring = -(-max(1, out_bits) // self.RING)
        self.rings = [Signal(self.RING, name=f"ring{k}") for k in range(n_ring)]

    def elaborate(self, platform):
        m = Module()
        for lfsr in self.lfsrs:
            feedback = 0
            for t in LFSR_TAPS:
                feedback ^= lfsr[t]
            m.d.sync += lfsr.eq(Cat(feedback, lfsr[:-1]))
        m.d.comb += self.stim.eq(Cat(*self.lfsrs)[:len(self.stim)])
        # the outputs go straight into flip-flops, then into the signature rings
        width = len(self.rings) * self.RING
        obs_q = Signal(width, name="obs_q")
        m.d.sync += obs_q.eq(self.obs)
        taps = 0
        for k, ring in enumerate(self.rings):
            part = obs_q[k * self.RING:(k + 1) * self.RING]
            m.d.sync += ring.eq(Cat(ring[-1], ring[:-1]) ^ part)
            taps ^= ring[0]
        m.d.sync += self.misr.eq(taps)
        return m


class BoardTop(Elaboratable):
    """The core on a board (see the module docstring).

    Parameters
    ----------
    core : wiring.Component
        The design: every member a plain port, in the ``sync`` domain.
    board : hdp_rtl.fpga.boards.Board or None
        The board: its clock, PLL and LEDs. ``None`` (or no platform at elaboration)
        leaves ``sync`` to the caller and drives no LEDs.
    target_hz : float, optional
        The PLL's output frequency (default: the board's target).
    """

    def __init__(self, core: wiring.Component, board=None, *, target_hz: float | None = None):
        self.core = core
        self.board = board
        self.target_hz = target_hz if target_hz is not None else (board.target_hz if board else None)
        ins, outs = core_ports(core)
        self.in_bits = sum(len(s) for _, s in ins)
        self.out_bits = sum(len(s) for _, s in outs)
        self.pll = board.pll_params(self.target_hz) if board else None
        self._stimsig = None
        #: The signature bit driven to LED 0 (also a handle for simulation).
        self.led = Signal()
        self.locked = Signal()

    @property
    def stimsig(self) -> StimulusSignature:
        """Stimulus and signature (``stimsig.stim``, ``stimsig.misr``)."""
        if self._stimsig is None:
            self._stimsig = StimulusSignature(self.in_bits, self.out_bits)
        return self._stimsig

    def elaborate(self, platform):
        m = Module()
        if platform is not None and self.board is not None:
            self._clocking(m, platform)
        else:
            m.d.comb += self.locked.eq(1)
        m.submodules.core = core = self.core
        m.submodules.stimsig = ss = self.stimsig
        ins, outs = core_ports(core)
        pos = 0
        for _, sig in ins:
            m.d.comb += sig.eq(ss.stim[pos:pos + len(sig)])
            pos += len(sig)
        m.d.comb += ss.obs.eq(Cat(*(sig for _, sig in outs)))
        m.d.comb += self.led.eq(ss.misr)
        if platform is not None and self.board is not None:
            for i, value in enumerate((self.led, self.locked)[:self.board.leds]):
                pin = platform.request("led", i, dir="-")
                m.submodules[f"led{i}"] = buf = io.Buffer("o", pin)
                m.d.comb += buf.o.eq(value)
        return m

    def _clocking(self, m, platform):
        board, pll = self.board, self.pll
        m.domains.sync = cd = ClockDomain("sync")
        clk_out = cd.clk           # the PLL drives the domain's clock net directly
        if board.family == "ecp5":
            pin = platform.request(board.clk_resource, dir="-")
            m.submodules.clk_buf = clk_buf = io.Buffer("i", pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(round(board.clk_in_hz / 1e6, 6)),
                a_FREQUENCY_PIN_CLKOP=str(round(pll["fout"] / 1e6, 6)),
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
                p_CLKOP_CPHASE=pll["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=pll["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk_out, i_CLKFB=clk_out,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=self.locked,
            )
        elif board.family == "ice40":
            pin = platform.request(board.clk_resource, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(pll["DIVR"], 4), p_DIVF=Const(pll["DIVF"], 7),
                p_DIVQ=Const(pll["DIVQ"], 3), p_FILTER_RANGE=Const(pll["FILTER_RANGE"], 3),
                i_PACKAGEPIN=pin.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=self.locked,
            )
        else:
            raise ValueError(f"unknown FPGA family {board.family!r}")
        # No explicit constraint on the clock net: nextpnr derives it from the PLL's
        # dividers and the oscillator pin's constraint ("Derived frequency constraint").
        m.submodules.rst_sync = ResetSynchronizer(~self.locked, domain="sync")
