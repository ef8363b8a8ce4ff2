"""An in-memory HDP co-processor behind the :class:`hdp_rtl.host.HostBus` protocol, for
testing :class:`hdp_rtl.host.HDPDriver` without a simulator.

It models the register semantics of :mod:`hdp_rtl.rtl.regfile` (field bits stored and
read back, out-of-field writes refusing the next start, the start checks in code order,
errors 5 and 7, sticky latest-wins errors, clear before start, ``ctrl.abort``: a running
head dropped with error 10, a no-op while idle; ``block_k`` and error 12 in ``topk``
configs, ``score_threshold`` in ``threshold`` configs, the ``pq_*`` registers of the
``progressive_report`` configs, ``channel_drop`` of the ``channel_pruning`` configs:
the last channels of Q and K dropped from the scores) and computes each head with the golden model, with
errors 8 and 9 raised as the input unpacker does, and its progressive-quantization
flags with ``golden.spatten.progressive_rows``. Its own
lane decoding and encoding (``int.from_bytes``/``to_bytes``) are independent of the
driver's NumPy packing.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from golden.channels import attention_head_channels
from golden.spatten import progressive_rows
from hdp_rtl.config import RHO_ONE, HDPConfig, Registers
from hdp_rtl.host import BusError
from hdp_rtl.regmap import (COUNTERS, FLAG_FIELDS, INPUT_ORDER, PQ_ROWS_PER_WORD, ErrorCode,
                            kept_channels, register_map)

__all__ = ["FakeHDP"]


class FakeHDP:
    """One core: ``config``'s registers, Q/K/V in, outputs out.

    Parameters
    ----------
    config : HDPConfig
    busy_reads : int
        ``status`` reads that still see ``busy`` once the output has been received.
    config_hash : int, optional
        The value of ``config_hash`` (default: the one of ``config``).
    """

    def __init__(self, config: HDPConfig, *, busy_reads: int = 1, config_hash: int | None = None):
        self.config, self.busy_reads = config, busy_reads
        self.regs = {r.name: r for r in register_map(config)}
        self.by_offset = {r.offset: r for r in self.regs.values()}
        self.writable = [r.name for r in self.regs.values() if r.access == "rw"]
        self.value = dict.fromkeys(self.writable, 0)
        self.overflow = dict.fromkeys(self.writable, False)
        self.hash = int(config.digest(), 16) if config_hash is None else config_hash
        self.busy = self.done = self.error = self.head_pruned = False
        self.error_code = ErrorCode.NONE
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.run = None                 # the registers latched by the running head
        self.received = bytearray()
        self.output = deque()
        self.idle_after = 0             # status reads left before busy falls
        self.dropped = 0                # drop_streams calls
        self.pq_rows = []               # the last head's flagged rows (bools)

    # ---- registers ----------------------------------------------------------------------
    def _raise(self, code: ErrorCode) -> None:
        self.error, self.error_code = True, code

    async def write32(self, offset: int, value: int) -> None:
        reg = self.by_offset.get(offset)
        if reg is None or reg.access == "ro":
            self._raise(ErrorCode.BAD_ADDRESS)
            raise BusError(f"SLVERR: write to 0x{offset:02X}")
        if reg.name == "ctrl":
            ctrl = reg.decode(value)
            if ctrl["clear_error"]:
                self.error, self.error_code = False, ErrorCode.NONE
            running = self.busy        # an abort written with a start finds it idle
            if ctrl["start"]:
                self._start()
            if ctrl["abort"] and running:
                self.abort()
            return
        self.value[reg.name] = value & reg.mask
        self.overflow[reg.name] = bool(value & ~reg.mask & 0xFFFF_FFFF)

    async def read32(self, offset: int) -> int:
        reg = self.by_offset.get(offset)
        if reg is None or reg.access == "wo":
            raise BusError(f"SLVERR: read of 0x{offset:02X}")
        if reg.name == "status":
            return self._status_word()
        if reg.name == "config_hash":
            return reg.word(config_hash=self.hash)
        if reg.name in COUNTERS:         # counter_bits wide, zero-extended; 0 when not built
            if not self.config.perf_counters:
                return 0
            return self.counters[reg.name] % (1 << self.config.counter_bits)
        if reg.name == "pq_flags":      # 0 while busy and past the head's rows
            if self.busy:
                return 0
            first = self.value["pq_index"] * PQ_ROWS_PER_WORD
            rows = self.pq_rows[first:first + PQ_ROWS_PER_WORD]
            return sum(int(f) << i for i, f in enumerate(rows))
        if reg.name == "pq_count":
            return sum(self.pq_rows)
        return self.value[reg.name]

    def _status_word(self) -> int:
        if self.busy and self.run is None and not self.output:   # the head's output is out
            if self.idle_after == 0:
                self.busy, self.done = False, True
            self.idle_after -= 1
        return self.regs["status"].word(busy=self.busy, done=self.done, error=self.error,
                                        head_pruned=self.head_pruned, error_code=self.error_code)

    def _field(self, name: str) -> int:
        return self.regs[name].field(name).get(self.value[name])

    def _refusal(self) -> ErrorCode:
        """The lowest code among the failing start checks (NONE: the start is taken)."""
        failing = [r.overflow_error for r in (self.regs[n] for n in self.writable)
                   if self.overflow[r.name]]
        if self.value["seq_len"] == 0:
            failing.append(ErrorCode.SEQ_LEN_ZERO)
        if self.value["seq_len"] > self.config.seq_max:
            failing.append(ErrorCode.SEQ_LEN_TOO_BIG)
        if abs(self._field("rho")) > RHO_ONE:
            failing.append(ErrorCode.RHO_RANGE)
        flags = self.regs["flags"].decode(self.value["flags"])
        if "block_k" in self.value and self.value["block_k"] == 0 and flags["block_prune_enable"]:
            failing.append(ErrorCode.BLOCK_K_ZERO)
        return min(failing, default=ErrorCode.NONE)

    def _start(self) -> None:
        if self.busy:
            self._raise(ErrorCode.START_WHILE_BUSY)
            return
        refused = self._refusal()
        if refused:
            self._raise(refused)
            return
        flags = self.regs["flags"].decode(self.value["flags"])
        low = self.regs["head_threshold"].field("head_threshold").width
        self.run = Registers(
            seq_len=self.value["seq_len"], **{f: flags[f] for f in FLAG_FIELDS},
            head_threshold=self.value["head_threshold"] | self.value["head_threshold_hi"] << low,
            rho=self._field("rho"), delta=self.value["delta"],
            score_scale=self.value["score_scale"],
            **({"block_k": self.value["block_k"]} if "block_k" in self.value else {}),
            **({"score_threshold": self._field("score_threshold")}
               if "score_threshold" in self.value else {}),
            **({"pq_threshold": self.value["pq_threshold"]}
               if "pq_threshold" in self.value else {}))
        self.run_drop = self.value.get("channel_drop", 0)      # latched like the others
        self.busy, self.done, self.head_pruned = True, False, False
        self.counters = {k: self.counters[k] if k == "heads_pruned" else 0 for k in COUNTERS}
        self.received.clear()
        self.idle_after = self.busy_reads
        self.pq_rows = []

    def abort(self) -> None:
        """Drop the running head (the input taken and the output not yet received)."""
        self.run, self.busy, self.done, self.head_pruned = None, False, False, False
        self.output.clear()
        self.received.clear()
        self._raise(ErrorCode.ABORTED)

    async def drop_streams(self) -> None:
        self.dropped += 1

    # ---- streams ------------------------------------------------------------------------
    async def send_packet(self, data: bytes) -> None:
        cfg = self.config
        assert self.run is not None, "s_axis packet while the core takes no input (it would hang)"
        tensor_bytes = self.run.seq_len * cfg.head_dim * cfg.in_lane_bits // 8
        beat_bytes = cfg.s_axis_bits // 8
        assert len(data) % beat_bytes == 0, "a packet of partial beats"
        start, end = len(self.received), len(self.received) + len(data)
        # tlast is on the packet's last beat: it must close a tensor, and no tensor may
        # end before it
        if end % tensor_bytes or end - start > tensor_bytes - start % tensor_bytes:
            self._raise(ErrorCode.INPUT_TLAST)
        self.received += data
        assert len(self.received) <= 3 * tensor_bytes, "more input beats than the head takes"
        if len(self.received) == 3 * tensor_bytes:
            self._compute()

    def _element(self, lane: bytes) -> int:
        """A lane's element: its low B bits, error 8 when the lane is not their sign extension."""
        B = self.config.data_bits
        value = int.from_bytes(lane, "little", signed=True)
        element = ((value + (1 << (B - 1))) % (1 << B)) - (1 << (B - 1))
        if element != value:
            self._raise(ErrorCode.INPUT_LANE)
        return element

    def _compute(self) -> None:
        cfg, n = self.config, self.run.seq_len
        lane = cfg.in_lane_bits // 8
        elems = [self._element(self.received[i:i + lane])
                 for i in range(0, len(self.received), lane)]
        tensors = {name: [elems[(t * n + r) * cfg.head_dim:(t * n + r + 1) * cfg.head_dim]
                          for r in range(n)] for t, name in enumerate(INPUT_ORDER)}
        # the channel mask: the first head_dim - channel_drop channels kept
        kept = kept_channels(self.run_drop, cfg.head_dim)
        res = attention_head_channels(tensors["q"], tensors["k"], tensors["v"], cfg, self.run,
                                      np.arange(cfg.head_dim) < kept)
        out_lane = cfg.out_lane_bits // 8
        self.output.append(b"".join(int(x).to_bytes(out_lane, "little", signed=True)
                                    for x in res.out.flat))
        self.head_pruned = res.head_pruned
        if "pq_threshold" in self.value:
            self.pq_rows = progressive_rows(res.probs, res.keep, self.run.pq_threshold).tolist()
        self.counters.update(
            blocks_kept=res.blocks_kept, blocks_pruned=res.blocks_pruned,
            int_macs=res.int_macs, score_macs=res.score_macs, pv_macs=res.pv_macs,
            words_in=3 * n * cfg.beats_per_row, words_out=n * cfg.beats_per_row,
            heads_pruned=self.counters["heads_pruned"] + res.head_pruned)
        self.run = None

    async def recv_packet(self) -> bytes:
        assert self.output, "recv_packet with no output coming (it would hang)"
        return self.output.popleft()
