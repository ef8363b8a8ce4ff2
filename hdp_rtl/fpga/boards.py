"""The boards ``make fpga BOARD=...`` builds for, and their PLL settings.

Each board names its amaranth-boards platform, the preset it builds, the clock the
board top asks its PLL for (and nextpnr is constrained to), and the LEDs it drives.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["Board", "BOARDS", "board", "ecp5_pll_params", "ice40_pll_params"]


@dataclass(frozen=True)
class Board:
    """One FPGA board.

    Parameters
    ----------
    name : str
        The ``BOARD=`` name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    family : str
        ``ecp5`` or ``ice40``: picks the PLL primitive and the report's resource names.
    preset : str
        The :class:`~hdp_rtl.config.HDPConfig` preset built for this board.
    clk_resource : str
        The platform's oscillator resource.
    clk_in_hz : float
        Its frequency.
    target_hz : float
        The clock the PLL makes and nextpnr is constrained to.
    leds : tuple of str
        LED resources (``led`` numbers 0, 1, ...): LED 0 shows the output signature,
        LED 1 the PLL lock.
    synth_opts : tuple of str
        Extra ``synth_<family>`` options.
    capacity : dict
        The device's resources (for the fit check of the report).
    """

    name: str
    platform: str
    family: str
    preset: str
    clk_resource: str
    clk_in_hz: float
    target_hz: float
    leds: int = 2
    synth_opts: tuple = ()
    capacity: dict = field(default_factory=dict)

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)

    def pll_params(self, target_hz: float | None = None) -> dict:
        target = self.target_hz if target_hz is None else target_hz
        if self.family == "ecp5":
            return ecp5_pll_params(self.clk_in_hz, target)
        return ice40_pll_params(self.clk_in_hz, target)


BOARDS: dict[str, Board] = {
    "ulx3s-85f": Board(
        name="ulx3s-85f", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        preset="default", clk_resource="clk25", clk_in_hz=25e6, target_hz=100e6, leds=2,
        capacity={"LUT4": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
    ),
    "icebreaker": Board(
        name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40", preset="edge", clk_resource="clk12", clk_in_hz=12e6, target_hz=24e6,
        leds=2, synth_opts=("-dsp", "-dff"),   # -dff: ABC9 sees the flip-flops (~25 cells fewer)
        capacity={"LC": 5280, "DSP": 8, "BRAM": 30, "SPRAM": 4},
    ),
}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"board must be one of {', '.join(sorted(BOARDS))}, not {name!r}") from None


# ---- PLL parameters (the searches of ecppll / icepll, simplified) ------------------

def ecp5_pll_params(fin: float, fout: float) -> dict:
    """EHXPLLL dividers for ``fout`` from ``fin`` with CLKOP fed back (VCO 400..800 MHz,
    PFD >= 3.125 MHz). Returns the dividers and the achieved frequency."""
    best = None
    for clki_div in range(1, 129):
        pfd = fin / clki_div
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f = pfd * clkfb_div
            for clkop_div in range(1, 129):
                vco = f * clkop_div
                if not 400e6 <= vco <= 800e6:
                    continue
                key = (abs(f - fout), abs(vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, dict(CLKI_DIV=clki_div, CLKFB_DIV=clkfb_div,
                                      CLKOP_DIV=clkop_div, CLKOP_CPHASE=clkop_div - 1,
                                      fout=f, vco=vco))
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {fout / 1e6} MHz from {fin / 1e6} MHz")
    return best[1]


def ice40_pll_params(fin: float, fout: float) -> dict:
    """SB_PLL40 (SIMPLE feedback) dividers for ``fout`` from ``fin`` (VCO 533..1066 MHz,
    PFD 10..133 MHz). Returns DIVR, DIVF, DIVQ, FILTER_RANGE and the achieved frequency."""
    best = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = vco / (1 << divq)
                key = (abs(f - fout), divr)
                if best is None or key < best[0]:
                    best = (key, dict(DIVR=divr, DIVF=divf, DIVQ=divq, fout=f, vco=vco, pfd=pfd))
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {fout / 1e6} MHz from {fin / 1e6} MHz")
    params = best[1]
    pfd = params["pfd"]
    params["FILTER_RANGE"] = next(i for i, hi in enumerate(
        (10e6, 17e6, 26e6, 44e6, 66e6, 101e6), start=0) if pfd < hi) if pfd < 101e6 else 6
    return params
