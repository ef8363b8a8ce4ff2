"""The AXI4-Lite register map, defined once: the RTL (:mod:`hdp_rtl.rtl.regfile`), the host
driver (:mod:`hdp_rtl.host`), the testbenches, ``regs.json``, the C header and the tables
in ``docs/interface.md`` are all made from this module.

Everything a host needs to know lives here: register offsets and fields (with the
``ctrl`` and ``status`` bit positions), the AXI4-Lite address width, the error codes
(:class:`ErrorCode`) and the data formats of the streams (:func:`stream_format`).
"""
from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field

from .config import RHO_ONE, HDPConfig
from .widths import clog2

__all__ = ["Field", "Register", "ErrorCode", "register_map", "registers_by_name",
           "stream_format", "regmap_json", "regmap_c_header", "regmap_markdown",
           "errors_markdown", "COUNTERS", "FLAG_FIELDS", "AXIL_ADDR_BITS", "COUNTER_BASE",
           "INPUT_ORDER", "TENSOR_CODE", "INPUT_TIMEOUT_BITS", "BLOCK_K_OFFSET", "CHANNEL_DROP_BITS",
           "SCORE_THRESHOLD_OFFSET", "CHANNEL_DROP_OFFSET", "kept_channels", "PQ_BASE", "PQ_ROWS_PER_WORD",
           "key_importance_bits", "out_importance_bits", "pq_words", "pq_index_bits"]

#: Byte-address width of the AXI4-Lite port (256 bytes of registers).
AXIL_ADDR_BITS = 8
#: Offset of the first performance counter.
COUNTER_BASE = 0x40
#: Offset of the first register of SpAtten's importances (after the counters).
IMPORTANCE_BASE = 0x80
#: Offset of the first register of the progressive-quantization flags (after the
#: importances, whose ``out_importance_hi`` may sit at 0x8C); builds with
#: ``HDPConfig.progressive_report`` only.
PQ_BASE = 0x90
#: Rows of one ``pq_flags`` word: row ``PQ_ROWS_PER_WORD * pq_index + i`` is bit ``i``.
PQ_ROWS_PER_WORD = 32
#: Width of the ``input_timeout`` field: up to 2**20 - 1 cycles (10.5 ms at 100 MHz).
INPUT_TIMEOUT_BITS = 20
#: Offset of ``block_k``, a register of the ``topk`` selector's configs only.
BLOCK_K_OFFSET = 0x2C
#: Offset of ``score_threshold``, a register of the ``threshold`` selector's configs only
#: (not 0x2C: a host that writes ``block_k`` to a threshold build gets error 5).
SCORE_THRESHOLD_OFFSET = 0x30
#: Offset of ``channel_drop``, a register of the configs with
#: ``HDPConfig.channel_pruning`` only.
CHANNEL_DROP_OFFSET = 0x34
#: Its width: a whole word, so that any value is valid (no start check).
CHANNEL_DROP_BITS = 32

#: The tensors of a head on ``s_axis``, in order. K comes first so that the integer pass
#: (whose every row needs all of K) can start on Q's first row and run while the rest of
#: Q arrives, and V arrives while it runs: only K's load is not hidden.
INPUT_ORDER = ("k", "q", "v")
#: How the RTL names each tensor inside (``row_write_layout``'s ``tensor``).
TENSOR_CODE = {"q": 0, "k": 1, "v": 2}

#: Bits of the FLAGS register, in order from bit 0: each mirrors a ``Registers`` field.
FLAG_FIELDS = ("causal", "head_prune_enable", "block_prune_enable", "block_rule", "approx_enable")

#: The performance counters, each a read-only register, cleared by ``start``: a counter
#: is ``HDPConfig.counter_bits`` wide (32 by default, 20 for ``edge``), counts modulo
#: ``2**counter_bits`` and reads zero-extended to 32 bits.
COUNTERS = {
    "cycles_total": "cycles from start to done",
    "cycles_load": "cycles spent receiving Q and K (V arrives during the integer pass)",
    "cycles_int": "cycles of the integer pass (head scorer and block selector), V's load included",
    "cycles_attn": "cycles of scores, softmax and P x V (0 for a pruned head)",
    "cycles_out": "cycles from the end of the attention work to the last output beat",
    "heads_pruned": "heads pruned since reset",
    "blocks_kept": "blocks kept in this head",
    "blocks_pruned": "valid blocks pruned in this head",
    "int_macs": "I x I multiply-accumulates of the integer pass",
    "score_macs": "element multiply-accumulates of kept-pair scores",
    "pv_macs": "element multiply-accumulates of P x V",
    "mac_busy": "cycles in which the MAC array did useful work",
    "words_in": "AXI4-Stream input beats accepted",
    "words_out": "AXI4-Stream output beats sent",
}


class ErrorCode(enum.IntEnum):
    """``status.error_code``: why ``status.error`` was set (the latest error wins).

    ``refuses_start`` says whether the error is raised by a ``ctrl.start`` that it
    refuses (the core stays idle); the others are raised while the core runs or by a
    bus access, and refuse nothing.
    """

    NONE = 0
    SEQ_LEN_ZERO = 1
    SEQ_LEN_TOO_BIG = 2
    FLAGS_RESERVED = 3
    RHO_RANGE = 4
    BAD_ADDRESS = 5
    FIELD_OVERFLOW = 6
    START_WHILE_BUSY = 7
    INPUT_LANE = 8
    INPUT_TLAST = 9
    ABORTED = 10
    INPUT_TIMEOUT = 11
    BLOCK_K_ZERO = 12

    @property
    def description(self) -> str:
        return _ERROR_TEXT[self][0]

    @property
    def refuses_start(self) -> bool:
        return _ERROR_TEXT[self][1]


_ERROR_TEXT = {
    ErrorCode.NONE: ("no error", False),
    ErrorCode.SEQ_LEN_ZERO: ("start refused: seq_len is 0", True),
    ErrorCode.SEQ_LEN_TOO_BIG: ("start refused: seq_len > seq_max", True),
    ErrorCode.FLAGS_RESERVED: ("start refused: a reserved bit of flags was written", True),
    ErrorCode.RHO_RANGE: (f"start refused: rho outside -{RHO_ONE}..{RHO_ONE}", True),
    ErrorCode.BAD_ADDRESS: ("a write to an address with no writable register (reserved, "
                            "read-only or unaligned); answered SLVERR, nothing written", False),
    ErrorCode.FIELD_OVERFLOW: ("start refused: a write to head_threshold, "
                               "head_threshold_hi, delta, score_scale, input_timeout or "
                               "block_k, score_threshold, key_index, pq_threshold or pq_index "
                               "set a bit outside the register's field", True),
    ErrorCode.START_WHILE_BUSY: ("a start while a head runs; ignored, the running head "
                                 "goes on", False),
    ErrorCode.INPUT_LANE: ("an input lane is not the sign extension of its element; "
                           "the element is taken as its low B bits", False),
    ErrorCode.INPUT_TLAST: ("s_axis tlast missing on, or present before, a tensor's last "
                            "beat; beats are still counted as the head's", False),
    ErrorCode.ABORTED: ("ctrl.abort dropped the running head: its units were cleared and the "
                        "core is idle (done low); its output packet may end without tlast",
                        False),
    ErrorCode.INPUT_TIMEOUT: ("the running head expected s_axis input and no beat came for "
                              "more than input_timeout cycles: the head was dropped as by "
                              "ctrl.abort", False),
    ErrorCode.BLOCK_K_ZERO: ("start refused: block_k is 0 with block pruning enabled "
                             "(selector topk; with pruning off every valid block is kept "
                             "and block_k is not read)", True),
}


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    description: str
    signed: bool = False

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word: int) -> int:
        """The field's value in register word ``word`` (sign-extended when signed)."""
        value = (word >> self.lsb) & ((1 << self.width) - 1)
        if self.signed and self.width and value >> (self.width - 1):
            value -= 1 << self.width
        return value

    def put(self, value: int) -> int:
        """``value`` placed in the field's bits of a register word."""
        return (int(value) & ((1 << self.width) - 1)) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str            # "rw", "ro" or "wo"
    description: str
    fields: tuple = field(default_factory=tuple)
    #: the error a start raises after a write set a bit outside this register's fields
    overflow_error: ErrorCode = ErrorCode.FIELD_OVERFLOW

    @property
    def mask(self) -> int:
        """The bits that hold a field; a read returns the other bits as 0."""
        m = 0
        for f in self.fields:
            m |= f.mask
        return m

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    def word(self, **values) -> int:
        """The register word with the named fields set (the others 0)."""
        return sum(self.field(k).put(v) for k, v in values.items())

    def decode(self, word: int) -> dict:
        """Every field's value in ``word``."""
        return {f.name: f.get(word) for f in self.fields}


def register_map(config: HDPConfig) -> list[Register]:
    """Every register at its byte offset; widths follow ``config``."""
    codes = "; ".join(f"{int(c)}: {c.name.lower()}" for c in ErrorCode if c)
    key_bits, out_bits = key_importance_bits(config), out_importance_bits(config)
    # the integer pass's pair score, the unit of the selection registers
    score = "S_sel" if config.unbiased_selection else "S_int"
    regs = [
        Register("ctrl", 0x00, "wo", "write 1 to start a head, 2 to clear the error, 4 to "
                 "abort the running head", (
            Field("start", 0, 1, "start a head with the current registers"),
            Field("clear_error", 1, 1, "clear STATUS.error and STATUS.error_code "
                  "(before a start written in the same word)"),
            Field("abort", 2, 1, "drop the running head: the core clears its units and goes "
                  "idle, error 10 (no-op while idle)"))),
        Register("status", 0x04, "ro", "state of the core", (
            Field("busy", 0, 1, "a head is running (or being aborted)"),
            Field("done", 1, 1, "the last head finished (cleared by an accepted start)"),
            Field("error", 2, 1, "an error happened since the last clear_error: see "
                  "error_code"),
            Field("head_pruned", 3, 1, "the last head was pruned"),
            Field("error_code", 8, 4, f"the latest error: {codes}"))),
        Register("seq_len", 0x08, "rw", "tokens in the head, 1..seq_max", (
            Field("seq_len", 0, config.seq_len_bits, "tokens"),),
            overflow_error=ErrorCode.SEQ_LEN_TOO_BIG),
        Register("flags", 0x0C, "rw", "run-time switches; other bits are reserved (error 3)", tuple(
            Field(name, i, 1, f"Registers.{name}" + (
                "" if name != "approx_enable" or config.approximation
                else " (no approximation unit in this config: ignored, scores exact)"))
            for i, name in enumerate(FLAG_FIELDS)),
            overflow_error=ErrorCode.FLAGS_RESERVED),
        Register("head_threshold", 0x10, "rw",
                 f"head pruned when HI < this (HI: the sum of abs({score}); low 32 bits)", (
            Field("head_threshold", 0, min(32, config.hi_bits), "unsigned"),)),
        Register("head_threshold_hi", 0x14, "rw", "bits 32 and up of head_threshold", (
            Field("head_threshold_hi", 0, config.hi_bits - 32, "unsigned"),)
            if config.hi_bits > 32 else ()),
        Register("rho", 0x18, "rw",
                 f"mean rule: Q1.8 signed, -{RHO_ONE}..{RHO_ONE} (others: error 4)", (
            Field("rho", 0, 32, "two's complement", signed=True),)),
        Register("delta", 0x1C, "rw", f"delta rule margin in {score} units (the block "
                 "importance's: hdp_rtl.config.delta_for)", (
            Field("delta", 0, config.delta_bits, "unsigned"),)),
        Register("score_scale", 0x20, "rw",
                 f"softmax scale, unsigned with {config.score_scale_frac} fraction bits", (
            Field("score_scale", 0, config.score_scale_bits, "unsigned"),)),
        Register("config_hash", 0x24, "ro", "low 32 bits of the elaborated config's hash", (
            Field("config_hash", 0, 32, "HDPConfig.digest()"),)),
        Register("input_timeout", 0x28, "rw", "abort a head (error 11) after more than this "
                 "many cycles without an s_axis beat while it expects input; 0: off", (
            Field("input_timeout", 0, INPUT_TIMEOUT_BITS, "cycles"),)),
    ]
    if config.selector == "topk":       # the register map follows the config
        regs.append(Register("block_k", BLOCK_K_OFFSET, "rw",
                             "selector topk: blocks kept per block row; >= a row's valid "
                             "blocks keeps them all; 0 with block pruning on: error 12", (
            Field("block_k", 0, config.block_k_bits, "blocks"),)))
    if config.selector == "threshold":
        # the field's own two's complement: its bits only (a 32-bit sign extension of a
        # negative value sets bits above it: error 6, as any bit outside a field)
        regs.append(Register("score_threshold", SCORE_THRESHOLD_OFFSET, "rw",
                             "selector threshold: a block row keeps its blocks with "
                             f"BI >= this and its best; in {score} units, "
                             f"{config.sint_bits}-bit two's complement (bits above it: "
                             "error 6)", (
            Field("score_threshold", 0, config.sint_bits, "two's complement",
                  signed=True),)))
    if config.channel_pruning:          # the run-time channel mask of Q and K (issue 13)
        regs.append(Register("channel_drop", CHANNEL_DROP_OFFSET, "rw",
                             "channels of Q and K dropped from the scores, counted from the "
                             "last: channels head_dim - channel_drop and up take no part "
                             "(Q's and K's are stored as 0, whole lane chunks are skipped); "
                             "0: all "
                             "kept, head_dim or more: none", (
            # (all 32 bits: any value is valid, so the register adds no start check)
            Field("channel_drop", 0, CHANNEL_DROP_BITS, "channels"),)))
    for i, (name, text) in enumerate(COUNTERS.items()):
        regs.append(Register(name, COUNTER_BASE + 4 * i, "ro", text,
                             (Field(name, 0, config.counter_bits,
                                    f"counter, modulo 2**{config.counter_bits}"),)))
    # SpAtten's importances of the last head (hdp_rtl/rtl/importance.py), read while idle;
    # without HDPConfig.importance_report they read 0
    base = IMPORTANCE_BASE
    regs += [
        Register("key_index", base, "rw", "the key whose importance key_importance reads", (
            Field("key_index", 0, config.seq_bits, "token"),)),
        Register("key_importance", base + 4, "ro", "the probability key key_index received "
                 "in the last head: its column's probability codes summed over the kept "
                 "pairs (2**prob_bits is 1.0); 0 while busy and for keys >= seq_len", (
            Field("key_importance", 0, key_bits, "unsigned"),)),
        Register("out_importance", base + 8, "ro", "the last head's output importance: "
                 "the magnitudes of its output codes summed (low 32 bits)", (
            Field("out_importance", 0, min(32, out_bits), "unsigned"),)),
    ]
    if out_bits > 32:
        regs.append(Register("out_importance_hi", base + 12, "ro",
                             "bits 32 and up of out_importance", (
            Field("out_importance_hi", 0, out_bits - 32, "unsigned"),)))
    if config.progressive_report:       # SpAtten's progressive quantization: the MSB pass's
        base, p1 = PQ_BASE, config.prob_bits + 1      # rows to recompute (docs/interface.md)
        regs += [
            Register("pq_threshold", base, "rw", "progressive quantization: a row whose "
                     "largest kept probability is below this is flagged (2**prob_bits is "
                     "1.0; 0: no row, above 2**prob_bits: every row with a kept pair)", (
                Field("pq_threshold", 0, p1, "probability code"),)),
            Register("pq_index", base + 4, "rw", "the word of row flags pq_flags reads: "
                     f"rows {PQ_ROWS_PER_WORD} * pq_index and up", (
                Field("pq_index", 0, pq_index_bits(config), "word"),)),
            Register("pq_flags", base + 8, "ro", "bit i: row "
                     f"{PQ_ROWS_PER_WORD} * pq_index + i of the last head was flagged (its "
                     "largest kept probability < pq_threshold); 0 while busy and for rows "
                     ">= seq_len", (
                Field("pq_flags", 0, min(PQ_ROWS_PER_WORD, config.seq_max), "row bits"),)),
            Register("pq_count", base + 12, "ro", "rows the last head flagged", (
                Field("pq_count", 0, config.seq_len_bits, "rows"),)),
        ]
    return regs


def kept_channels(channel_drop: int, head_dim: int) -> int:
    """The channels a head keeps (``0 .. head_dim``) with ``channel_drop`` written: the
    first ``head_dim - channel_drop`` (none for ``channel_drop >= head_dim``)."""
    return max(0, int(head_dim) - int(channel_drop))


def pq_words(config: HDPConfig) -> int:
    """Words of row flags a head of ``seq_max`` tokens fills (``pq_index`` 0 .. this - 1)."""
    return -(-config.seq_max // PQ_ROWS_PER_WORD)


def pq_index_bits(config: HDPConfig) -> int:
    """Bits of the ``pq_index`` field (at least 1)."""
    return max(1, clog2(pq_words(config)))


def key_importance_bits(config: HDPConfig) -> int:
    """Bits of a key's importance: ``seq_max`` probabilities of at most 1.0 each."""
    return config.prob_bits + 1 + clog2(config.seq_max)


def out_importance_bits(config: HDPConfig) -> int:
    """Bits of a head's output importance: ``seq_max * head_dim`` magnitudes of at most
    ``2**(out_bits - 1)`` each."""
    return config.out_bits + clog2(config.seq_max * config.head_dim)


def registers_by_name(config: HDPConfig) -> dict[str, Register]:
    return {r.name: r for r in register_map(config)}


def stream_format(config: HDPConfig) -> dict:
    """What a host needs to format the AXI4-Stream data of ``config``."""
    return {
        "int_bits": config.int_bits, "frac_bits": config.frac_bits,
        "data_bits": config.data_bits, "data_min": config.data_min, "data_max": config.data_max,
        "seq_max": config.seq_max, "head_dim": config.head_dim,
        "axis_elems": config.axis_elems, "beats_per_row": config.beats_per_row,
        "in_lane_bits": config.in_lane_bits, "s_axis_bits": config.s_axis_bits,
        "out_bits": config.out_bits, "out_frac": config.out_frac,
        "out_lane_bits": config.out_lane_bits, "m_axis_bits": config.m_axis_bits,
        "score_scale_frac": config.score_scale_frac, "rho_one": RHO_ONE,
        "axil_addr_bits": AXIL_ADDR_BITS,
    }


def regmap_json(config: HDPConfig) -> str:
    return json.dumps({
        "config_hash": config.digest(),
        "input_order": list(INPUT_ORDER),
        "format": stream_format(config),
        "registers": [asdict(r) | {"mask": r.mask, "overflow_error": int(r.overflow_error)}
                      for r in register_map(config)],
        "error_codes": [{"code": int(c), "name": c.name.lower(), "description": c.description,
                         "refuses_start": c.refuses_start} for c in ErrorCode],
    }, indent=2) + "\n"


def regmap_c_header(config: HDPConfig, guard: str = "HDP_REGS_H") -> str:
    lines = [f"/* HDP co-processor register map; generated by hdp-rtl for config "
             f"{config.digest()}. Do not edit. */",
             f"#ifndef {guard}", f"#define {guard}", ""]
    for r in register_map(config):
        up = r.name.upper()
        lines.append(f"#define HDP_{up}_OFFSET 0x{r.offset:02X}u  /* {r.access}: {r.description} */")
        for f in r.fields:
            fu = f"HDP_{up}_{f.name.upper()}" if f.name != r.name else f"HDP_{up}"
            lines.append(f"#define {fu}_LSB {f.lsb}u")
            lines.append(f"#define {fu}_MASK 0x{f.mask:08X}u")
    lines += ["", "/* status.error_code values */"]
    lines += [f"#define HDP_ERR_{c.name} {int(c)}u  /* {c.description} */" for c in ErrorCode]
    lines += ["", "/* stream data formats */"]
    for key, value in stream_format(config).items():
        lines.append(f"#define HDP_{key.upper()} ({value})" if value < 0
                     else f"#define HDP_{key.upper()} {value}u")
    order = "".join(INPUT_ORDER).upper()
    lines.append(f'#define HDP_INPUT_ORDER "{order}"  /* the tensors on s_axis, in order */')
    lines += [f"#define HDP_CONFIG_HASH32 0x{int(config.digest(), 16) & 0xFFFFFFFF:08X}u",
              "", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def regmap_markdown(config: HDPConfig, names=None) -> str:
    """The register table of ``config`` (only the registers ``names``, if given)."""
    rows = ["| offset | register | access | bits | field | description |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in register_map(config):
        if names is not None and r.name not in names:
            continue
        if not r.fields:
            rows.append(f"| 0x{r.offset:02X} | {r.name} | {r.access} | - | - | {r.description} "
                        f"(no field in this config: reads 0; a non-zero write is error 6) |")
        for i, f in enumerate(r.fields):
            bits = f"{f.lsb}" if f.width == 1 else f"{f.lsb + f.width - 1}:{f.lsb}"
            head = (f"0x{r.offset:02X}", r.name, r.access) if i == 0 else ("", "", "")
            rows.append(f"| {head[0]} | {head[1]} | {head[2]} | {bits} | {f.name} | "
                        f"{r.description if i == 0 and len(r.fields) == 1 else f.description} |")
    return "\n".join(rows) + "\n"


def errors_markdown() -> str:
    rows = ["| code | name (`HDP_ERR_*`) | refuses the start | meaning |",
            "| --- | --- | --- | --- |"]
    rows += [f"| {int(c)} | {c.name} | {'yes' if c.refuses_start else 'no'} | {c.description} |"
             for c in ErrorCode if c]
    return "\n".join(rows) + "\n"
