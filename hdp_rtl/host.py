"""The host driver of the HDP co-processor, over any bus the host has.

Everything here is made from the register map (:mod:`hdp_rtl.regmap`) and the config,
and needs only NumPy: the register words of a head (:func:`register_writes`), the
stream formats (:func:`pack_head`, :func:`pack_tensor`, :func:`unpack_output`), the decoded ``status``
and counters (:class:`Status`, :class:`Counters`), and :class:`HDPDriver`, which runs
heads over a :class:`HostBus`. The cocotb testbenches implement that bus over
simulated AXI (``tb/axi_bus.py``); a system implements it over its own interconnect.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .config import ConfigError, HDPConfig, Registers
from .regmap import (COUNTERS, FLAG_FIELDS, INPUT_ORDER, PQ_ROWS_PER_WORD, ErrorCode,
                     Register, registers_by_name)

__all__ = ["HostBus", "BusError", "HDPError", "Status", "Counters", "HeadRun", "Importances",
           "RowFlags", "ProgressiveRun", "HDPDriver",
           "register_writes", "pack_head", "pack_tensor", "unpack_output", "head_cycle_bound",
           "msb_only", "recompute_rows"]


class HostBus(Protocol):
    """The accesses :class:`HDPDriver` makes to one core.

    ``write32`` and ``read32`` are AXI4-Lite accesses at a byte offset of the register
    map and raise :class:`BusError` when the core answers with an error (SLVERR).
    ``send_packet`` sends one AXI4-Stream packet on ``s_axis`` (``tlast`` on its last
    beat); ``recv_packet`` returns the data of the next whole packet from ``m_axis``.
    A bus whose stream waits are bounded raises :class:`TimeoutError` from them (the
    driver then aborts the head).

    Optional: ``drop_streams``, which :meth:`HDPDriver.abort` awaits once the core is
    idle after an abort: forget what is still queued for ``s_axis`` (the core takes no
    more of it) and the part of a packet received from ``m_axis`` (an aborted head's
    packet may end without ``tlast``), so the next head starts clean on both streams.
    """

    async def write32(self, offset: int, value: int) -> None: ...

    async def read32(self, offset: int) -> int: ...

    async def send_packet(self, data: bytes) -> None: ...

    async def recv_packet(self) -> bytes: ...


class BusError(Exception):
    """A register access was answered with an error response (AXI4-Lite SLVERR)."""


class HDPError(Exception):
    """The core reported an error: ``code`` is the :class:`~hdp_rtl.regmap.ErrorCode`."""

    def __init__(self, code: ErrorCode):
        self.code = ErrorCode(code)
        super().__init__(f"HDP error {int(self.code)} ({self.code.name}): {self.description}")

    @property
    def description(self) -> str:
        return self.code.description


@functools.lru_cache(maxsize=None)
def _registers(config: HDPConfig) -> dict[str, Register]:
    return registers_by_name(config)


# ---- register words --------------------------------------------------------------------

def register_writes(regs: Registers, config: HDPConfig, *, input_timeout: int = 0,
                    channel_drop: int = 0) -> list[tuple[str, int, int]]:
    """The ``(name, offset, word)`` writes that program ``regs``, in offset order.

    Every writable register is written, so no earlier write is left over (a register
    with no field in this config, such as ``head_threshold_hi`` when ``hi_bits <= 32``,
    is written 0). ``flags`` packs :data:`~hdp_rtl.regmap.FLAG_FIELDS`;
    ``head_threshold`` is split into ``head_threshold_hi`` when the config has that
    field; ``rho`` is two's complement. ``input_timeout`` (not a head's register: the
    host's setting) goes to the register of that name: cycles without an input beat
    after which the core aborts a head, 0 for never. ``block_k`` is written when the
    config has the register (selector ``topk``), as ``min(block_k, block_col_count)``:
    any value from a row's valid blocks up keeps the row whole; ``score_threshold``
    when the config has it (selector ``threshold``), as its field's two's complement.
    ``pq_threshold`` is written when the config has it (``progressive_report``).
    ``channel_drop`` (the channel mask's count of dropped channels, not a head's
    register: :meth:`HDPDriver.run_head` computes it from the mask) is written when the
    config has the register (``channel_pruning``), 0 (every channel kept) by default.
    ``key_index`` and ``pq_index`` (the host's read indices of
    :meth:`HDPDriver.importances` and :meth:`HDPDriver.progressive_flags`) are written 0.

    Raises
    ------
    ConfigError
        When a value does not fit ``config`` (:meth:`Registers.check`), or
        ``input_timeout`` does not fit its field.
    """
    regs.check(config)
    rmap = _registers(config)
    _check_input_timeout(input_timeout, config)
    low_bits = rmap["head_threshold"].field("head_threshold").width
    fields = {
        "seq_len": {"seq_len": regs.seq_len},
        "flags": {name: int(getattr(regs, name)) for name in FLAG_FIELDS},
        "head_threshold": {"head_threshold": regs.head_threshold},   # put keeps the low bits
        "head_threshold_hi": {"head_threshold_hi": regs.head_threshold >> low_bits},
        "rho": {"rho": regs.rho},
        "delta": {"delta": regs.delta},
        "score_scale": {"score_scale": regs.score_scale},
        "input_timeout": {"input_timeout": input_timeout},
        "key_index": {"key_index": 0},
    }
    if "block_k" in rmap:               # selector topk; k >= a row's blocks keeps them all
        fields["block_k"] = {"block_k": min(regs.block_k, config.block_col_count)}
    if "score_threshold" in rmap:       # selector threshold; put keeps the field's bits
        fields["score_threshold"] = {"score_threshold": regs.score_threshold}
    if "channel_drop" in rmap:          # channel_pruning builds
        if not 0 <= channel_drop <= config.head_dim:
            raise ConfigError(f"channel_drop must be 0..head_dim = {config.head_dim}, "
                              f"not {channel_drop}")
        fields["channel_drop"] = {"channel_drop": channel_drop}
    elif channel_drop:
        raise ConfigError("this config has no channel mask (channel_pruning is off)")
    if "pq_threshold" in rmap:          # progressive_report builds
        fields["pq_threshold"] = {"pq_threshold": regs.pq_threshold}
        fields["pq_index"] = {"pq_index": 0}
    return sorted(((name, rmap[name].offset, rmap[name].word(**values) if rmap[name].fields
                    else 0) for name, values in fields.items()), key=lambda w: w[1])


def _check_input_timeout(cycles: int, config: HDPConfig) -> None:
    width = _registers(config)["input_timeout"].field("input_timeout").width
    if not 0 <= cycles < 1 << width:
        raise ConfigError(f"input_timeout must be 0..{(1 << width) - 1} cycles, not {cycles}")


# ---- stream formats --------------------------------------------------------------------

def _lane_dtype(bits: int) -> np.dtype:
    return np.dtype(f"<i{bits // 8}")


def pack_tensor(x, config: HDPConfig) -> bytes:
    """The ``s_axis`` bytes of one tensor (Q, K or V): ``n x d`` integers, ``d <= head_dim``.

    Each row is zero-padded to ``head_dim`` elements, each element sign-extended to its
    ``in_lane_bits`` lane, lanes little-endian (docs/interface.md, Beats).

    Raises
    ------
    ValueError
        When ``x`` is not ``n x d`` with ``d <= head_dim`` or holds a value outside
        ``data_min..data_max``.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] > config.head_dim:
        raise ValueError(f"a tensor must be n x d with d <= head_dim = {config.head_dim}, "
                         f"not {x.shape}")
    if x.size and (x.min() < config.data_min or x.max() > config.data_max):
        raise ValueError(f"a tensor holds values outside the {config.data_bits}-bit range "
                         f"{config.data_min}..{config.data_max}")
    rows = np.zeros((x.shape[0], config.head_dim), dtype=np.int64)
    rows[:, :x.shape[1]] = x
    return rows.astype(_lane_dtype(config.in_lane_bits)).tobytes()


def pack_head(q, k, v, config: HDPConfig) -> list[bytes]:
    """The ``s_axis`` packets of one head, in the order the core takes them
    (``regmap.INPUT_ORDER``: K, Q, V), each :func:`pack_tensor`."""
    tensors = {"q": q, "k": k, "v": v}
    return [pack_tensor(tensors[name], config) for name in INPUT_ORDER]


def unpack_output(data: bytes, n: int, config: HDPConfig) -> np.ndarray:
    """The ``n x head_dim`` outputs (int64) in the ``m_axis`` packet ``data``.

    Raises
    ------
    ValueError
        When ``data`` is not the length of ``n`` output rows.
    """
    dtype = _lane_dtype(config.out_lane_bits)
    want = n * config.head_dim * dtype.itemsize
    if len(data) != want:
        raise ValueError(f"the output of {n} rows is {want} bytes, not {len(data)}")
    return np.frombuffer(bytes(data), dtype=dtype).astype(np.int64).reshape(n, config.head_dim)


def head_cycle_bound(config: HDPConfig, seq_len: int) -> int:
    """A generous bound on the cycles of one head with both streams at full rate.

    Twice the sum of: every input and output beat; for every pair, the integer pass and
    both MAC-array passes of a dense head at the config's lane counts plus 4 cycles of
    softmax; 64 cycles a row and 256 of latency. Watchdogs scale it for stalled streams.
    """
    n, d = seq_len, config.head_dim
    per_pair = -(-d // config.int_lanes) + 2 * -(-d // config.mac_lanes) + 4
    return 2 * (4 * n * config.beats_per_row + n * n * per_pair + 64 * n + 256)


# ---- status and counters ---------------------------------------------------------------

@dataclass(frozen=True)
class Status:
    """The ``status`` register, decoded with the register map's fields.

    Attributes
    ----------
    busy, done, error, head_pruned : bool
    error_code : ErrorCode
        The latest error (``ErrorCode.NONE`` when ``error`` is clear).
    """

    busy: bool
    done: bool
    error: bool
    head_pruned: bool
    error_code: ErrorCode

    @classmethod
    def decode(cls, word: int, config: HDPConfig) -> "Status":
        fields = _registers(config)["status"].decode(word)
        return cls(**{name: ErrorCode(value) if name == "error_code" else bool(value)
                      for name, value in fields.items()})

    def __str__(self) -> str:
        return (f"busy={self.busy:d} done={self.done:d} error={self.error:d} "
                f"error_code={int(self.error_code)} ({self.error_code.name}) "
                f"head_pruned={self.head_pruned:d}")


def _counters_doc() -> str:
    lines = ["The performance counters of one head, one field per ``COUNTERS`` entry.",
             "", "Each counts modulo ``2**HDPConfig.counter_bits`` (32 by default, 20 for",
             "``edge``): a value is the true count only while that is smaller.",
             "", "Attributes", "----------"]
    for name, text in COUNTERS.items():
        lines += [f"{name} : int", f"    {text[0].upper()}{text[1:]}."]
    return "\n".join(lines)


#: Made from :data:`~hdp_rtl.regmap.COUNTERS`, so it names every counter the core has.
Counters = dataclasses.make_dataclass(
    "Counters", [(name, int) for name in COUNTERS], frozen=True,
    namespace={"__doc__": _counters_doc(), "__module__": __name__})


@dataclass(frozen=True, eq=False)
class HeadRun:
    """What one head returned: the outputs (``seq_len x head_dim``, in the output
    format), the counters and the status read once the core was idle."""

    out: np.ndarray
    counters: Counters
    status: Status


@dataclass(frozen=True)
class Importances:
    """SpAtten's importances of one head, as the core reports them: ``keys[c]`` the
    probability codes key ``c`` received (``2**prob_bits`` is 1.0), ``out`` the sum of
    the magnitudes of the head's output codes."""

    keys: np.ndarray
    out: int


@dataclass(frozen=True, eq=False)
class RowFlags:
    """The progressive-quantization flags of one head, as the core reports them:
    ``flags[r]`` is True when row ``r``'s largest kept probability was below
    ``pq_threshold`` (:func:`golden.spatten.progressive_rows`), ``count`` the core's own
    count of flagged rows (``pq_count``)."""

    flags: np.ndarray
    count: int


@dataclass(frozen=True, eq=False)
class ProgressiveRun:
    """One head with SpAtten's progressive quantization
    (:meth:`HDPDriver.run_progressive_head`).

    Attributes
    ----------
    out : numpy.ndarray
        ``seq_len x head_dim`` outputs: the recomputed rows' from the full-precision
        pass, the others' from the MSB pass (``golden.spatten.progressive_head``'s).
    redo : numpy.ndarray of bool
        The rows the MSB pass flagged, which were recomputed.
    count : int
        The core's count of flagged rows (``pq_count`` after the MSB pass).
    msb : HeadRun
        The MSB pass (Q and K with their fraction bits zeroed).
    lsb : HeadRun or None
        The full-precision pass over the first ``recompute_rows(redo, causal)`` tokens
        (None when no row was flagged).
    """

    out: np.ndarray
    redo: np.ndarray
    count: int
    msb: HeadRun
    lsb: HeadRun | None


def msb_only(x, config: HDPConfig) -> np.ndarray:
    """``x`` (Q or K, ``B``-bit integers) with its ``frac_bits`` fraction bits zeroed:
    ``(x >> F) << F``, the integer part in the same format (still within the element
    range). Scores of such Q and K are ``S_int * 2**(2F)``, the MSB pass
    (:func:`golden.spatten.msb_scores`), whether ``approx_enable`` is set or not."""
    F = config.frac_bits
    return (np.asarray(x, dtype=np.int64) >> F) << F


def recompute_rows(redo, causal: bool) -> int:
    """Tokens of the full-precision pass that recomputes the flagged rows ``redo``.

    0 when no row is flagged. Causal: the first ``r + 1`` tokens, ``r`` the last flagged
    row (a causal head's row only sees keys up to itself, so rows ``0..r`` of the
    shorter head are those of the whole head). Otherwise the whole head: every row sees
    every key, and the core computes heads of ``seq_len`` queries on ``seq_len`` keys,
    so no shorter head holds a row with all its keys (docs/interface.md, "Progressive
    quantization").
    """
    rows = np.flatnonzero(np.asarray(redo, bool))
    if rows.size == 0:
        return 0
    return int(rows[-1]) + 1 if causal else len(redo)


# ---- the driver ------------------------------------------------------------------------

class HDPDriver:
    """Programs and runs one HDP co-processor over ``bus``.

    Parameters
    ----------
    bus : HostBus
        The core's register port and streams.
    config : HDPConfig
        The configuration the core was generated from.
    busy_polls : int
        ``status`` reads after the last output beat (or an abort) before
        :meth:`wait_idle` gives up (``busy`` falls in the cycle after that beat).
    input_timeout : int
        Written to ``input_timeout`` with every head's registers (:meth:`program`): the
        core aborts a head that waits for input for more than this many cycles without
        a beat (error 11). 0 (the default): never.

    A head that hangs (the core still busy after its output, or a stream wait of the bus
    that raises :class:`TimeoutError`) is aborted (:meth:`abort`) before the
    ``TimeoutError`` reaches the caller: the core is idle and ready for the next head.
    """

    def __init__(self, bus: HostBus, config: HDPConfig, *, busy_polls: int = 64,
                 input_timeout: int = 0):
        if busy_polls < 1:
            raise ValueError(f"busy_polls must be >= 1, not {busy_polls}")
        _check_input_timeout(input_timeout, config)
        self.bus, self.config, self.busy_polls = bus, config, busy_polls
        self.input_timeout = input_timeout
        self.registers = _registers(config)

    async def write_register(self, name: str, value: int) -> None:
        """Write ``value`` to register ``name`` as it is (negative: two's complement)."""
        await self.bus.write32(self.registers[name].offset, value & 0xFFFF_FFFF)

    async def read_register(self, name: str) -> int:
        return await self.bus.read32(self.registers[name].offset)

    async def program(self, regs: Registers, channel_drop: int = 0) -> None:
        """Write the registers of one head and ``input_timeout`` (:func:`register_writes`;
        ``channel_drop``: the channels dropped from the scores, counted from the last)."""
        for _, offset, word in register_writes(regs, self.config,
                                               input_timeout=self.input_timeout,
                                               channel_drop=channel_drop):
            await self.bus.write32(offset, word)

    async def start(self) -> Status:
        """Write ``ctrl.start`` and return the status read right after.

        A start while a head runs is ignored by the core (error 7 in the returned
        status, ``busy`` set by the running head).

        Raises
        ------
        HDPError
            When the core refused the start (it is idle right after it).
        """
        ctrl = self.registers["ctrl"]
        await self.bus.write32(ctrl.offset, ctrl.word(start=1))
        status = await self.status()
        if not status.busy:
            raise HDPError(status.error_code)
        return status

    async def clear_error(self) -> None:
        ctrl = self.registers["ctrl"]
        await self.bus.write32(ctrl.offset, ctrl.word(clear_error=1))

    async def abort(self) -> Status:
        """Drop the running head (``ctrl.abort``) and wait until the core is idle.

        The core stops both streams, lets the host take the ``m_axis`` beat it already
        offers (the bus must keep receiving), clears its units and goes idle with error
        10 (ABORTED) in ``status``, ``done`` low. Then the bus's ``drop_streams`` (when
        it has one) forgets the head's unsent input and its partial output packet. On an
        idle core the abort changes nothing (the status is the last head's). The error
        stays until :meth:`clear_error`; the next head may start at once.

        Returns
        -------
        Status
            Read once ``busy`` is clear.

        Raises
        ------
        TimeoutError
            When the core is still busy after ``busy_polls`` status reads (the host
            does not take the offered output beat).
        """
        ctrl = self.registers["ctrl"]
        await self.bus.write32(ctrl.offset, ctrl.word(abort=1))
        status = await self.wait_idle()
        drop = getattr(self.bus, "drop_streams", None)
        if drop is not None:
            await drop()
        return status

    async def status(self) -> Status:
        return Status.decode(await self.read_register("status"), self.config)

    async def counters(self) -> Counters:
        return Counters(**{name: await self.read_register(name) for name in COUNTERS})

    async def read_config_hash(self) -> int:
        """Read ``config_hash``; raise :class:`ConfigError` unless it is the low bits of
        ``config.digest()`` (the core was generated from another config)."""
        value = await self.read_register("config_hash")
        want = self.registers["config_hash"].word(config_hash=int(self.config.digest(), 16))
        if value != want:
            raise ConfigError(f"config_hash is 0x{value:08X}, but config {self.config.digest()} "
                              f"has 0x{want:08X}: the core was generated from another config")
        return value

    async def run_head(self, q, k, v, regs: Registers, channel_mask=None) -> HeadRun:
        """Program ``regs``, start, stream the head's K, Q and V (:func:`pack_head`), and
        return its outputs.

        ``q``, ``k``, ``v`` are ``seq_len x d`` integers in the ``B``-bit format
        (:func:`pack_tensor`).

        ``channel_mask`` (``head_dim`` bools, or None: every channel) says which
        channels of Q and K take part in the scores
        (:func:`golden.channels.attention_head_channels`, bit for bit). The driver moves
        the kept channels to the front, Q and K alike
        (:func:`golden.channels.pack_kept_channels`: no score changes), and writes
        ``channel_drop = head_dim - kept``: the core stores the dropped channels of Q and
        K as 0 and runs only the lane chunks that hold a kept channel, ``ceil(kept /
        int_lanes)`` a pair in the integer pass and ``ceil(kept / mac_lanes)`` a score in
        the MAC array (at least 1). Without a mask, ``channel_drop`` is written 0. A mask
        that drops a channel needs a config with ``channel_pruning`` (ConfigError).

        Raises
        ------
        HDPError
            When the start is refused (nothing is streamed).
        TimeoutError
            When the core stays busy after its output (:meth:`wait_idle`).
        """
        for name, x in zip("qkv", (q, k, v)):
            if np.shape(x)[0] != regs.seq_len:
                raise ValueError(f"{name} has {np.shape(x)[0]} rows, seq_len is {regs.seq_len}")
        drop = 0
        if channel_mask is not None:
            from golden.channels import check_mask, pack_kept_channels
            mask = check_mask(channel_mask, self.config)
            # (zero-padded to head_dim first: a kept channel of the padding counts as
            # kept, as in the golden model's counters)
            q, k = (np.pad(np.asarray(x), ((0, 0), (0, self.config.head_dim - np.shape(x)[1])))
                    for x in (q, k))
            q, k, packed = pack_kept_channels(q, k, mask)
            drop = self.config.head_dim - int(packed.sum())
        packets = pack_head(q, k, v, self.config)
        await self.program(regs, channel_drop=drop)
        await self.start()
        return await self.finish(packets, regs.seq_len)

    async def finish(self, packets: Sequence[bytes], seq_len: int) -> HeadRun:
        """The rest of a started head: send ``packets`` on ``s_axis``, receive the
        ``seq_len`` output rows, wait for the core to go idle, read the counters.

        Raises
        ------
        TimeoutError
            When the core stays busy after the output (:meth:`wait_idle`) or a stream
            wait of the bus timed out: the head was aborted (:meth:`abort`) first.
        """
        try:
            for data in packets:
                await self.bus.send_packet(data)
            out = unpack_output(await self.bus.recv_packet(), seq_len, self.config)
            status = await self.wait_idle()
        except TimeoutError as err:
            status = await self.abort()
            raise TimeoutError(f"{err}; the head was aborted: {status}") from err
        return HeadRun(out=out, counters=await self.counters(), status=status)

    async def importances(self, seq_len: int) -> Importances:
        """SpAtten's importances of the last head, read while the core is idle: each of
        its ``seq_len`` keys' summed probability codes (``key_index`` written, then
        ``key_importance`` read, per key) and its output importance. They equal
        :func:`golden.spatten.token_importance` and
        :func:`golden.spatten.head_importance_out` of the head; a host carries the
        cascade across heads and layers with them (:class:`golden.spatten.CascadeState`).

        Raises
        ------
        ConfigError
            When the config builds no importance unit (``importance_report`` false).
        """
        if not self.config.importance_report:
            raise ConfigError("this core has no importance unit (importance_report is false)")
        keys = np.zeros(seq_len, np.int64)
        for key in range(seq_len):
            await self.write_register("key_index", key)
            keys[key] = await self.read_register("key_importance")
        out = await self.read_register("out_importance")
        if "out_importance_hi" in self.registers:
            out |= await self.read_register("out_importance_hi") << 32
        return Importances(keys=keys, out=out)

    async def progressive_flags(self, seq_len: int) -> RowFlags:
        """The last head's progressive-quantization flags, read while the core is idle:
        ``ceil(seq_len / 32)`` words of 32 rows (``pq_index`` written, then ``pq_flags``
        read, per word) and ``pq_count``. They equal
        :func:`golden.spatten.progressive_rows` of the head's probabilities, kept pairs
        and ``pq_threshold``.

        Raises
        ------
        ConfigError
            When the config builds no flags (``progressive_report`` false).
        """
        if not self.config.progressive_report:
            raise ConfigError("this core has no progressive-quantization flags "
                              "(progressive_report is false)")
        flags = np.zeros(seq_len, bool)
        for word in range(-(-seq_len // PQ_ROWS_PER_WORD)):
            await self.write_register("pq_index", word)
            bits = await self.read_register("pq_flags")
            rows = range(word * PQ_ROWS_PER_WORD, min(seq_len, (word + 1) * PQ_ROWS_PER_WORD))
            flags[rows.start:rows.stop] = [(bits >> (r - rows.start)) & 1 for r in rows]
        return RowFlags(flags=flags, count=await self.read_register("pq_count"))

    async def run_progressive_head(self, q, k, v, regs: Registers, threshold: int
                                   ) -> ProgressiveRun:
        """One head with SpAtten's progressive quantization: ``golden.spatten.
        progressive_head(q, k, v, config, regs, threshold)``, bit for bit.

        1. The MSB pass: the head with Q and K's fraction bits zeroed (:func:`msb_only`;
           V as it is) and ``pq_threshold = threshold``; its outputs, and the rows the
           core flagged (:meth:`progressive_flags`).
        2. When a row was flagged, the full-precision pass: the head as it is (``regs``,
           with its ``approx_enable``) over its first :func:`recompute_rows` tokens (the
           last flagged row's prefix when causal, else every token); the flagged rows'
           outputs are taken from it. A row's softmax and output depend on its own
           scores and V only, so each row is that of the pass it comes from.

        ``regs`` must keep every valid pair (``block_prune_enable`` and
        ``head_prune_enable`` off), as SpAtten's token and head pruning are the host's
        (gather the alive tokens, skip pruned heads); its ``pq_threshold`` is not used.

        Raises
        ------
        ConfigError
            When the config builds no flags, or ``threshold`` does not fit ``pq_threshold``.
        ValueError
            When ``regs`` prunes blocks or heads.
        """
        if not self.config.progressive_report:
            raise ConfigError("this core has no progressive-quantization flags "
                              "(progressive_report is false)")
        if regs.block_prune_enable or regs.head_prune_enable:
            raise ValueError("a progressive head keeps every valid pair: turn "
                             "block_prune_enable and head_prune_enable off")
        n = regs.seq_len
        q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
        msb = await self.run_head(msb_only(q, self.config), msb_only(k, self.config), v,
                                  regs.replace(pq_threshold=threshold))
        flags = await self.progressive_flags(n)
        redo = flags.flags
        out, lsb = msb.out.copy(), None
        m = recompute_rows(redo, bool(regs.causal))
        if m:
            lsb = await self.run_head(q[:m], k[:m], v[:m],
                                      regs.replace(seq_len=m, pq_threshold=0))
            rows = np.flatnonzero(redo)           # all below m
            out[rows] = lsb.out[rows]
        return ProgressiveRun(out=out, redo=redo, count=flags.count, msb=msb, lsb=lsb)

    async def wait_idle(self) -> Status:
        """Read ``status`` until ``busy`` is clear, at most ``busy_polls`` times.

        Raises
        ------
        TimeoutError
            When the core is still busy.
        """
        for _ in range(self.busy_polls):
            status = await self.status()
            if not status.busy:
                return status
        raise TimeoutError(f"the core is still busy after {self.busy_polls} status reads "
                           f"({status})")
