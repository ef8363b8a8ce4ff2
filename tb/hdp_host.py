"""What a top-level testbench checks on top of the host driver: each head word for word
and counter for counter against the golden model, and nothing more on the output after
it. The driver (:class:`hdp_rtl.host.HDPDriver`) runs over the cocotb bus
(:class:`axi_bus.AxiBus`)."""
from __future__ import annotations

import numpy as np

import golden
from golden.channels import attention_head_channels
from golden.spatten import head_importance_out, token_importance
from axi_bus import AxiBus
from hdp_rtl.config import HDPConfig, Registers
from hdp_rtl.host import Counters, HDPDriver, HeadRun, pack_head
from hdp_rtl.regmap import ErrorCode

__all__ = ["HDPHost", "golden_counters"]

#: Cycles after a head (its output received, the core idle) in which no output beat
#: may appear.
QUIET_CYCLES = 8


def golden_counters(config: HDPConfig, res: golden.HeadResult, n: int) -> dict:
    """The counters the core must report for the golden result ``res`` of ``n`` tokens
    (modulo ``2**counter_bits``, as the counters count; 0 without ``perf_counters``)."""
    counts = {
        "blocks_kept": res.blocks_kept, "blocks_pruned": res.blocks_pruned,
        "int_macs": res.int_macs, "score_macs": res.score_macs, "pv_macs": res.pv_macs,
        "words_in": 3 * n * config.beats_per_row, "words_out": n * config.beats_per_row,
    }
    return {name: count % (1 << config.counter_bits) if config.perf_counters else 0
            for name, count in counts.items()}


class HDPHost:
    """The host of one ``HDPCoprocessor``: ``bus`` (an :class:`~axi_bus.AxiBus`, with
    ``idle``, ``backpressure`` and ``seed`` as there), ``driver`` over it, and checks."""

    def __init__(self, dut, config: HDPConfig, *, idle: float = 0.0, backpressure: float = 0.0,
                 seed: int = 0):
        self.dut, self.config = dut, config
        self.bus = AxiBus(dut, config, idle=idle, backpressure=backpressure, seed=seed)
        self.driver = HDPDriver(self.bus, config)

    async def check_head(self, q, k, v, regs: Registers, *, label: str,
                         error: ErrorCode = ErrorCode.NONE, packets=None,
                         while_running=None, importances: bool = False,
                         channel_mask=None) -> Counters:
        """Run a head and check it against ``golden.attention_head(q, k, v, ...)``.

        Parameters
        ----------
        q, k, v : array
            The head as the core must compute it.
        regs : Registers
        label : str
            Names the head in every message.
        error : ErrorCode
            The error ``status`` must show after the head (``NONE``: no error).
        packets : list of bytes, optional
            The ``s_axis`` packets to send instead of the head packed as it is
            (``pack_head``: K, Q, V).
        while_running : async callable, optional
            Awaited once the head has started, before its input is sent.
        channel_mask : array of bool, optional
            The channels of Q and K that take part in the scores: run through
            :meth:`HDPDriver.run_head`'s ``channel_mask`` and checked against
            :func:`golden.channels.attention_head_channels`.
        importances : bool
            Also read SpAtten's importances (:meth:`HDPDriver.importances`) and check
            them against :func:`golden.spatten.token_importance` and
            :func:`golden.spatten.head_importance_out`.

        Returns
        -------
        Counters
        """
        if channel_mask is None:
            res = golden.attention_head(q, k, v, self.config, regs)
        else:
            res = attention_head_channels(q, k, v, self.config, regs, channel_mask)
        n = regs.seq_len
        with self.bus.head(label, n):
            if packets is None and while_running is None:
                run = await self.driver.run_head(q, k, v, regs, channel_mask=channel_mask)
            else:
                await self.driver.program(regs)
                await self.driver.start()
                if while_running is not None:
                    await while_running()
                sent = packets or pack_head(q, k, v, self.config)
                run = await self.driver.finish(sent, n)
            await self.bus.wait_cycles(QUIET_CYCLES)
            stray = self.bus.stray_output()
            assert not stray, f"{label}: after the head's tlast: {', '.join(stray)}"
        self.check_run(run, res, n, label=label, error=error)
        if importances:
            got = await self.driver.importances(n)
            want = token_importance(res.probs, res.keep)
            bad = np.flatnonzero(got.keys != want)
            assert bad.size == 0, (f"{label}: key importance of {len(bad)} keys differs, first "
                                   f"key {bad[0]}: {got.keys[bad[0]]}, expected {want[bad[0]]}")
            want_out = head_importance_out(res.out)
            assert got.out == want_out, f"{label}: out_importance {got.out}, expected {want_out}"
        c = run.counters
        self.dut._log.info("%s: n=%d kept %d/%d pairs, %d cycles (load %d, int %d, attn %d, out %d)",
                           label, n, res.pairs_kept, res.pairs_valid, c.cycles_total,
                           c.cycles_load, c.cycles_int, c.cycles_attn, c.cycles_out)
        return c

    def check_run(self, run: HeadRun, res: golden.HeadResult, n: int, *, label: str,
                  error: ErrorCode = ErrorCode.NONE) -> None:
        """``run`` against the golden result ``res``: outputs, counters and status."""
        st, counters = run.status, run.counters
        bad = np.argwhere(run.out != res.out)
        assert bad.size == 0, (f"{label}: {len(bad)} output words differ, first at {bad[0]}: "
                               f"got {run.out[tuple(bad[0])]}, expected {res.out[tuple(bad[0])]}; "
                               f"status {st}, counters {counters}, golden HI "
                               f"{res.head_importance} kept blocks {res.blocks_kept}")
        for name, want in golden_counters(self.config, res, n).items():
            got = getattr(counters, name)
            assert got == want, f"{label}: counter {name} = {got}, expected {want}"
        assert st.done and not st.busy, f"{label}: status {st}"
        assert st.error == (error != ErrorCode.NONE) and st.error_code == error, \
            f"{label}: status {st}, expected error {int(error)} ({error.name})"
        assert st.head_pruned == res.head_pruned, f"{label}: head_pruned, status {st}"
