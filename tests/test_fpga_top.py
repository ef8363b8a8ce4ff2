"""The FPGA board wrapper without the toolchain: amaranth build plans for both boards,
the PLL settings, the observability of every core output, and the report parsers."""
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdp_rtl.config import HDPConfig
from hdp_rtl.fpga.boards import BOARDS, ecp5_pll_params, ice40_pll_params
from hdp_rtl.fpga.report import parse_nextpnr_log, summarise
from hdp_rtl.fpga.top import BoardTop, core_ports
from hdp_rtl.rtl.top import HDPCoprocessor


class _Probe(wiring.Component):
    """A stand-in core: outputs set by the testbench, inputs recorded."""
    a: In(13)
    b: In(40)
    v: In(1)
    y: Out(37)
    z: Out(1)

    def __init__(self):
        super().__init__()
        self.force_y = Signal(37)
        self.force_z = Signal()

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.y.eq(self.force_y), self.z.eq(self.force_z)]
        return m


def _signature(flip_bit=None, cycles=24):
    """The MISR after ``cycles``, with output bit ``flip_bit`` (0..36: ``y``, 37: ``z``)
    set for one cycle; and the set of input values the core saw."""
    core = _Probe()
    top = BoardTop(core)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    result = {}

    async def bench(ctx):
        stims = set()
        for cyc in range(cycles):
            on = flip_bit is not None and cyc == 3
            ctx.set(core.force_y, (1 << flip_bit) if on and flip_bit < 37 else 0)
            ctx.set(core.force_z, 1 if on and flip_bit == 37 else 0)
            await ctx.tick()
            stims.add((ctx.get(core.a), ctx.get(core.b), ctx.get(core.v)))
        result["misr"] = tuple(ctx.get(r) for r in top.stimsig.rings)
        result["stims"] = stims

    sim.add_testbench(bench)
    sim.run()
    return result


def _ports_only(elaboratable):
    """Mark ``elaboratable`` as looked at for its ports only, never elaborated (no
    UnusedElaboratable warning)."""
    elaboratable._MustUse__silence = True
    return elaboratable


def test_core_ports_split():
    ins, outs = core_ports(_ports_only(_Probe()))
    assert [n for n, _ in ins] == ["a", "b", "v"]
    assert [n for n, _ in outs] == ["y", "z"]
    top = _ports_only(BoardTop(_ports_only(_Probe())))
    assert (top.in_bits, top.out_bits) == (54, 38)


def test_every_output_bit_reaches_the_signature():
    base = _signature()
    assert len(base["stims"]) > 20          # the stimulus is free-running
    for bit in range(38):
        assert _signature(bit)["misr"] != base["misr"], f"output bit {bit} is not observed"


def test_pll_settings():
    p = ecp5_pll_params(25e6, 100e6)
    assert p["fout"] == 100e6 and 400e6 <= p["vco"] <= 800e6
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"]) == (1, 4, 6)
    q = ice40_pll_params(12e6, 24e6)         # the values icepll -i 12 -o 24 prints
    assert (q["DIVR"], q["DIVF"], q["DIVQ"], q["FILTER_RANGE"]) == (0, 63, 5, 1)
    assert q["fout"] == 24e6


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_build_plan(name):
    """The amaranth build plan of each board (edge preset: fast); no toolchain run."""
    board = BOARDS[name]
    top = BoardTop(HDPCoprocessor(HDPConfig.preset("edge")), board)
    platform = board.platform_class()()
    plan = platform.prepare(top, name="hdp_top", synth_opts=list(board.synth_opts))
    files = plan.files
    il = files["hdp_top.il"]
    assert "hdp_top.ys" in files and f"build_hdp_top.sh" in files
    if board.family == "ecp5":
        assert "EHXPLLL" in il and 'SITE "G2"' in files["hdp_top.lpf"]
    else:
        assert "SB_PLL40_PAD" in il and "set_io clk12_0__io 35" in files["hdp_top.pcf"]
        assert "-dsp" in files["hdp_top.ys"]
    assert "led_0__io" in il and "led_1__io" in il
    # the core is in the design with all its AXI ports
    assert "s_axil_awaddr" in il and "m_axis_tdata" in il


def test_wrapper_rtlil_without_platform():
    top = BoardTop(HDPCoprocessor(HDPConfig.preset("edge")))
    text = rtlil.convert(top, name="top", ports=[top.led, top.locked])
    assert "misr" in text and "lfsr" in text


def test_parse_nextpnr_log():
    log = "\n".join([
        "Info: Device utilisation:",
        "Info: \t         ICESTORM_LC:    4000/   5280    75%",
        "Info: \t        ICESTORM_RAM:      12/     30    40%",
        "Info: \t        ICESTORM_DSP:      10/      8   125%",
        "",
        "Info: Max frequency for clock 'clk': 30.00 MHz (PASS at 24.00 MHz)",
        "Info: Critical path report for clock 'clk' (posedge -> posedge):",
        "Info:       type curr  total name",
        "Info:    routing  2.95  4.34 Net core.a (5,1) -> (2,5)",
        "Info: 2.36 ns logic, 6.59 ns routing",
        "",
        "Info: Max frequency for clock 'clk': 21.50 MHz (FAIL at 24.00 MHz)",
    ])
    info = parse_nextpnr_log(log)
    assert info["utilisation"]["ICESTORM_DSP"] == {"used": 10, "available": 8}
    assert info["fmax"]["clk"] == {"achieved_mhz": 21.5, "pass": False, "target_mhz": 24.0}
    assert "core.a" in info["critical_path_text"]["clk"]
    s = summarise("ice40", {"SB_LUT4": 3000, "SB_DFFER": 5, "SB_DFF": 7}, info["utilisation"])
    assert s["LC"]["used"] == 4000 and s["FF"]["used"] == 12 and s["DSP"]["used"] == 10


def test_stimulus_bits_are_distinct_registers():
    """No two stimulus bits carry the same sequence (synthesis could merge them)."""
    from hdp_rtl.fpga.top import StimulusSignature
    ss = StimulusSignature(70, 4)
    sim = Simulator(ss)
    sim.add_clock(1e-8)
    history = []

    async def bench(ctx):
        for _ in range(160):
            await ctx.tick()
            history.append(ctx.get(ss.stim))

    sim.add_testbench(bench)
    sim.run()
    seqs = {tuple(v >> i & 1 for v in history) for i in range(70)}
    assert len(seqs) == 70
    assert all(0 < sum(s) < len(s) for s in seqs)     # none constant


def test_throughput_at_fmax():
    from hdp_rtl.fpga.report import throughput
    cfg = HDPConfig.preset("default").to_dict()
    tp = throughput(cfg, 100.0, 27)
    assert tp["attention_gmacs"] == cfg["mac_lanes"] * 0.1
    assert tp["integer_gmacs"] == cfg["int_lanes"] * 0.1
    assert tp["macs_per_cycle_per_dsp"] == round(cfg["mac_lanes"] / 27, 3)
    assert "attention_gmacs" not in throughput(cfg, None, 27)
