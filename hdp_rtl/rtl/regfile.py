"""The register file, built from the register map (:mod:`hdp_rtl.regmap`)."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import RHO_BITS, RHO_ONE
from ..regmap import COUNTERS, FLAG_FIELDS, ErrorCode, Register
from .axil import RegBusSignature

__all__ = ["RegisterFile", "run_layout", "status_layout", "ctrl_layout", "flags_layout",
           "SELECTOR_REGISTERS", "OPTIONAL_RUN_REGISTERS"]


#: Registers only some selectors' configs have (``regmap.register_map``), latched into
#: ``run`` when present.
SELECTOR_REGISTERS = ("block_k", "score_threshold")
#: Every register a head latches that only some configs have: the selectors',
#: ``pq_threshold`` of the builds with ``progressive_report`` and ``channel_drop`` of
#: the builds with ``channel_pruning``.
OPTIONAL_RUN_REGISTERS = (*SELECTOR_REGISTERS, "pq_threshold", "channel_drop")


def _field_layout(reg: Register) -> data.StructLayout:
    """A register's fields as a 32-bit struct (gaps become padding fields ``_pad<lsb>``)."""
    members, pos = {}, 0
    for f in sorted(reg.fields, key=lambda f: f.lsb):
        if f.lsb > pos:
            members[f"_pad{pos}"] = f.lsb - pos
        members[f.name] = signed(f.width) if f.signed else f.width
        pos = f.lsb + f.width
    if pos < 32:
        members[f"_pad{pos}"] = 32 - pos
    return data.StructLayout(members)


def ctrl_layout(regs: dict) -> data.StructLayout:
    return _field_layout(regs["ctrl"])


def status_layout(regs: dict) -> data.StructLayout:
    return _field_layout(regs["status"])


def flags_layout() -> data.StructLayout:
    return data.StructLayout({name: 1 for name in FLAG_FIELDS})


def run_layout(regs: dict) -> data.StructLayout:
    """The registers a head runs with, latched at its start, at their field widths."""
    threshold_bits = sum(f.width for name in ("head_threshold", "head_threshold_hi")
                         for f in regs[name].fields)
    # a selector's own registers and pq_threshold, when the config has them
    fields = [regs[name].field(name) for name in OPTIONAL_RUN_REGISTERS if name in regs]
    extra = {f.name: signed(f.width) if f.signed else f.width for f in fields}
    return data.StructLayout({
        "seq_len": regs["seq_len"].field("seq_len").width,
        "flags": flags_layout(),
        "head_threshold": threshold_bits,
        "rho": signed(RHO_BITS),
        "delta": regs["delta"].field("delta").width,
        "score_scale": regs["score_scale"].field("score_scale").width,
        **extra,
    })


class RegisterFile(wiring.Component):
    """Every register of the map: writable ones stored at their field widths, start checks,
    the error latch, status, the counters and the read multiplexer.

    - A write stores only the bits of the register's fields; a read returns them (other
      bits 0). A write that sets a bit outside the fields is remembered per register
      until the next write to it, and a start refuses to run while any is remembered
      (``Register.overflow_error``: error 2 for ``seq_len``, 3 for ``flags``, 6 for the
      others).
    - A write to an address with no writable register (reserved, read-only or not a
      multiple of 4) answers SLVERR, writes nothing and raises error 5; a read of an
      address with no readable register answers SLVERR with 0.
    - ``ctrl.clear_error`` clears the error, then ``ctrl.start`` (in the same word)
      starts. A start while ``busy`` raises error 7 and is ignored; an idle start checks
      the registers in the order of the error codes and either raises the first failing
      code (the core stays idle; ``done``, ``head_pruned`` and the counters keep the last
      head's values) or pulses ``start`` with ``run`` latched (a selector's own
      registers, ``SELECTOR_REGISTERS``, too: ``block_k`` of the ``topk`` configs, whose
      0 with block pruning enabled is error 12; ``score_threshold`` of the
      ``threshold`` configs; ``pq_threshold`` of the ``progressive_report`` configs;
      ``channel_drop`` of the ``channel_pruning`` configs).
      ``ctrl.abort`` pulses ``abort_req``
      (the sequencer drops a running head and ignores it while idle).
    - ``error``/``error_code`` are sticky: the latest error wins; of two raised in the
      same cycle the bus's (5, or a refused start) wins over ``i_error``'s.

    Parameters
    ----------
    registers : list of Register
        ``register_map(config)``.
    seq_max : int
        Largest valid ``seq_len``.
    config_hash : int
        The value of ``config_hash``.

    Attributes
    ----------
    RD_LATENCY : int
        Cycles from ``bus.rd_en`` to its ``rd_data``/``rd_error`` (1: the read
        multiplexer is two registered stages).

    Members
    -------
    bus : In(RegBusSignature)
        Register strobes from the AXI4-Lite front end.
    run : Out(run_layout)
        The registers of the running head, latched by an accepted start.
    start : Out(1)
        One pulse per accepted start (``run`` holds the new values from the next cycle).
    abort_req : Out(1)
        One pulse per write of ``ctrl`` with ``abort`` set (in the write's cycle, like
        ``start``; whether a head runs is the sequencer's business).
    input_timeout : Out(regmap.INPUT_TIMEOUT_BITS)
        The ``input_timeout`` register as written (not latched by a start: a write takes
        effect the next cycle, also for the running head).
    busy, done, head_pruned : In(1)
        Status bits of the sequencer.
    i_error : In(4)
        A non-zero :class:`~hdp_rtl.regmap.ErrorCode` raises that error this cycle (the
        input unpacker's 8 and 9, the sequencer's 10 and 11).
    counters : In(ArrayLayout(counter_bits, len(COUNTERS)))
        Counter values, in ``COUNTERS`` order, as wide as the counters' register fields
        (``HDPConfig.counter_bits``); a read zero-extends them (the read multiplexer
        sees constant high bits).
    key_index : Out(seq_bits)
        The ``key_index`` register as written.
    key_importance, out_importance : In
        The importance unit's values, read by the registers of the same names
        (``out_importance_hi`` reads the bits from 32 on).
    pq_index : Out(pq_index field)
        Configs with the ``pq_*`` registers only: the ``pq_index`` register as written.
    pq_flags, pq_count : In
        Configs with the ``pq_*`` registers only: the progressive-quantization unit's
        values, read by the registers of the same names.
    """

    #: Cycles from ``bus.rd_en`` to its ``rd_data``/``rd_error``.
    RD_LATENCY = 1

    def __init__(self, *, registers: list, seq_max: int, config_hash: int, addr_width: int):
        self.registers = {r.name: r for r in registers}
        self.seq_max, self.config_hash = seq_max, config_hash
        widths = {self.registers[name].field(name).width for name in COUNTERS}
        assert len(widths) == 1, f"counter fields of different widths {sorted(widths)}"
        self.counter_bits = widths.pop()
        super().__init__({
            "bus": In(RegBusSignature(addr_width=addr_width)),
            "run": Out(run_layout(self.registers)),
            "start": Out(1), "abort_req": Out(1),
            "input_timeout": Out(self.registers["input_timeout"].field("input_timeout").width),
            "busy": In(1), "done": In(1), "head_pruned": In(1),
            "i_error": In(4),
            "counters": In(data.ArrayLayout(self.counter_bits, len(COUNTERS))),
            "key_index": Out(self.registers["key_index"].field("key_index").width),
            "key_importance": In(self.registers["key_importance"].field("key_importance").width),
            "out_importance": In(self._width("out_importance")),
            **({"pq_index": Out(self.registers["pq_index"].field("pq_index").width),
                "pq_flags": In(self.registers["pq_flags"].field("pq_flags").width),
                "pq_count": In(self.registers["pq_count"].field("pq_count").width)}
               if "pq_flags" in self.registers else {}),
        })

    def _width(self, name: str) -> int:
        """Bits of a value split over the registers ``name`` and ``name_hi``."""
        hi = self.registers.get(f"{name}_hi")
        return self.registers[name].field(name).width + (hi.field(hi.name).width if hi else 0)

    @classmethod
    def from_config(cls, config):
        from ..regmap import AXIL_ADDR_BITS, register_map
        return cls(registers=register_map(config), seq_max=config.seq_max,
                   config_hash=int(config.digest(), 16), addr_width=AXIL_ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        regs, bus = self.registers, self.bus
        writable = [r for r in regs.values() if r.access == "rw"]
        value = {r.name: Signal(32, name=f"reg_{r.name}") for r in writable}
        overflow = {r.name: Signal(name=f"overflow_{r.name}") for r in writable}
        error = Signal()
        error_code = Signal(4)
        # Each value check is evaluated on the value being written (with the other
        # registers it reads as they are: {register: check of its new value}) and kept
        # in a flip-flop: a start only ORs flags, and the compares stay off the path
        # from the start strobe to the enables of ``run``.
        value_checks = {
            "seq_len_zero": {"seq_len": lambda v: v == 0},
            "seq_len_big": {"seq_len": lambda v: v > self.seq_max},
            "rho_range": {"rho": lambda v: (v.as_signed() < -RHO_ONE) | (v.as_signed() > RHO_ONE)},
        }
        if "block_k" in regs:
            # block_k 0 keeps no block; with pruning off it is not read
            prune = FLAG_FIELDS.index("block_prune_enable")
            value_checks["block_k_zero"] = {
                "block_k": lambda v: (v == 0) & value["flags"][prune],
                "flags": lambda v: (value["block_k"] == 0) & v[prune]}
        # the registers reset to 0: only "seq_len is 0" holds after reset
        failing = {name: Signal(name=f"fails_{name}", init=name == "seq_len_zero")
                   for name in value_checks}

        # ---- writes ---------------------------------------------------------------------
        strobe_mask = Cat(*(bus.wr_strb[i].replicate(8) for i in range(4)))
        ctrl = data.View(ctrl_layout(regs), bus.wr_data)
        ctrl_written = Signal()
        wr_hit = Signal()
        with m.If(bus.wr_en):
            with m.Switch(bus.wr_addr):
                for r in writable:
                    with m.Case(r.offset):
                        m.d.comb += wr_hit.eq(1)
                        new = (bus.wr_data & strobe_mask) | (value[r.name] & ~strobe_mask)
                        m.d.sync += [value[r.name].eq(new & r.mask),
                                     overflow[r.name].eq((bus.wr_data & strobe_mask & (0xFFFF_FFFF & ~r.mask)) != 0)]
                        m.d.sync += [failing[name].eq(by_reg[r.name]((new & r.mask)[:32]))
                                     for name, by_reg in value_checks.items()
                                     if r.name in by_reg]
                with m.Case(regs["ctrl"].offset):
                    m.d.comb += [wr_hit.eq(1), ctrl_written.eq(bus.wr_strb[0])]
        m.d.comb += bus.wr_error.eq(bus.wr_en & ~wr_hit)
        start_req = ctrl_written & ctrl.start
        clear = ctrl_written & ctrl.clear_error
        m.d.comb += [self.abort_req.eq(ctrl_written & ctrl.abort),
                     self.input_timeout.eq(value["input_timeout"]),
                     self.key_index.eq(value["key_index"])]
        if "pq_index" in regs:
            m.d.comb += self.pq_index.eq(value["pq_index"])

        # ---- start checks, in the order of the error codes --------------------------------
        seq_len = value["seq_len"]
        rho = value["rho"].as_signed()
        checks = [
            (failing["seq_len_zero"], ErrorCode.SEQ_LEN_ZERO),
            *((overflow[r.name], r.overflow_error) for r in writable
              if r.overflow_error in (ErrorCode.SEQ_LEN_TOO_BIG, ErrorCode.FLAGS_RESERVED)),
            (failing["seq_len_big"], ErrorCode.SEQ_LEN_TOO_BIG),
            (failing["rho_range"], ErrorCode.RHO_RANGE),
            *((overflow[r.name], r.overflow_error) for r in writable
              if r.overflow_error == ErrorCode.FIELD_OVERFLOW),
        ]
        if "block_k" in regs:
            checks.append((failing["block_k_zero"], ErrorCode.BLOCK_K_ZERO))
        # the lowest failing code wins: the conditions of a code are ORed first, so the
        # priority chain is as long as the codes (6), not the checks (one per register)
        by_code = {}
        for cond, code in checks:
            by_code.setdefault(int(code), []).append(cond)
        refused = Signal(4)
        for code in sorted(by_code, reverse=True):
            with m.If(Cat(*by_code[code]).any()):
                m.d.comb += refused.eq(code)
        # "some check fails", as one OR beside the priority chain (for the latch's enable)
        refused_any = Cat(*(cond for cond, _ in checks)).any()

        raised = Signal(4)
        with m.If(bus.wr_en & ~wr_hit):
            m.d.comb += raised.eq(ErrorCode.BAD_ADDRESS)
        with m.Elif(start_req & self.busy):
            m.d.comb += raised.eq(ErrorCode.START_WHILE_BUSY)
        with m.Elif(start_req & (refused != 0)):
            m.d.comb += raised.eq(refused)
        with m.Else():                         # an accepted start raises nothing
            m.d.comb += raised.eq(self.i_error)
        # the latch's enable is "something is raised", ORed from the conditions
        # themselves: through the priority mux and a test of its result (raised != 0)
        # the address decode reached the enable in 12 LUT levels (10.92 ns estimated)
        bad_write = bus.wr_en & ~wr_hit
        any_raised = (bad_write | (start_req & (self.busy | refused_any))
                      | self.i_error.any())
        with m.If(clear):
            m.d.sync += [error.eq(0), error_code.eq(0)]
        with m.If(any_raised):
            m.d.sync += [error.eq(1), error_code.eq(raised)]

        threshold = Cat(value["head_threshold"], value["head_threshold_hi"])
        m.d.comb += self.start.eq(start_req & ~self.busy & (refused == 0))
        with m.If(self.start):
            m.d.sync += [
                self.run.seq_len.eq(seq_len), self.run.flags.eq(value["flags"]),
                self.run.head_threshold.eq(threshold), self.run.rho.eq(rho),
                self.run.delta.eq(value["delta"]), self.run.score_scale.eq(value["score_scale"]),
                *(self.run[name].eq(value[name]) for name in OPTIONAL_RUN_REGISTERS
                  if name in regs),
            ]

        # ---- reads ------------------------------------------------------------------------
        status = Signal(status_layout(regs))
        m.d.comb += [status.busy.eq(self.busy), status.done.eq(self.done),
                     status.error.eq(error), status.head_pruned.eq(self.head_pruned),
                     status.error_code.eq(error_code)]
        counter_index = {name: i for i, name in enumerate(COUNTERS)}

        def read_value(r):
            if r.name in value:
                return value[r.name]
            if r.name == "status":
                return status
            if r.name == "config_hash":
                return Const(self.config_hash & 0xFFFF_FFFF, 32)
            if r.name == "key_importance":
                return self.key_importance
            if r.name == "out_importance":
                return self.out_importance[:32]
            if r.name == "out_importance_hi":
                return self.out_importance[32:]
            if r.name in ("pq_flags", "pq_count"):
                return getattr(self, r.name)
            return self.counters[counter_index[r.name]]      # zero-extended by the mux

        # Two stages (RD_LATENCY): in the cycle of rd_en each group of 8 words picks its
        # word by the address's low word bits, registered; the next cycle picks the
        # group. A one-cycle multiplexer of every register was the whole core's deepest
        # path (8 LUT levels from the address register to the AXI read data).
        readable = {r.offset // 4: r for r in regs.values() if r.access != "wo"}
        word_bits = max(readable).bit_length()
        lo_bits = min(3, word_bits)
        # (a word no register has reads as any readable word of its group: rd_hit masks
        # it, and a constant 0 there costs each group's mux a reset input)
        def slot(i):
            group = [j for j in range(i >> lo_bits << lo_bits, (i >> lo_bits) + 1 << lo_bits)
                     if j in readable]
            j = i if i in readable else (group[0] if group else None)
            return read_value(readable[j]) if j is not None else Const(0, 32)
        words = [slot(i) for i in range(1 << word_bits)]
        word = bus.rd_addr[2:2 + word_bits]
        aligned = (bus.rd_addr[:2] == 0) & (bus.rd_addr[2 + word_bits:] == 0)
        hit_map = Const(sum(1 << i for i in readable), 1 << word_bits)
        groups = [Signal(32, name=f"rd_group{g}") for g in range(1 << (word_bits - lo_bits))]
        group_idx = Signal(max(1, word_bits - lo_bits))
        rd_hit = Signal()
        for g, group in enumerate(groups):
            m.d.sync += group.eq(Array(words[g << lo_bits:(g + 1) << lo_bits])[word[:lo_bits]])
        m.d.sync += [group_idx.eq(word[lo_bits:]),
                     rd_hit.eq(aligned & hit_map.bit_select(word, 1))]
        m.d.comb += [bus.rd_data.eq(Mux(rd_hit, Array(groups)[group_idx], 0)),
                     bus.rd_error.eq(~rd_hit)]
        # the state the formal harness's invariants name (hdp_rtl/formal/top_control.py)
        self.state = dict(value=value, overflow=overflow, failing=failing, error=error,
                          error_code=error_code)
        return m
