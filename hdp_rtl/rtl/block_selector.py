"""Top-k-free row-balanced block selector (spec step 4)."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import RHO_BITS, RHO_ONE
from ..widths import index_bits
from .bram import bram, registered_read_port
from .layouts import block_layout, mask_layout

__all__ = ["BlockSelector"]


_DSP_BITS = 18          # an ECP5 MULT18X18D multiplies two 18-bit signed operands
_REST_BITS = (2 * RHO_ONE).bit_length()     # 256 - rho: 0..512


def _split_product(m, a, b, name):
    """Registered partial products of ``a * b`` as ``[(product, shift)]``: one when ``b``
    fits a multiplier input, else ``b``'s low 17 bits (unsigned) and its high bits."""
    pieces = [(b, 0)] if len(b) <= _DSP_BITS else [(b[:_DSP_BITS - 1], 0),
                                                    (b[_DSP_BITS - 1:].as_signed(), _DSP_BITS - 1)]
    assert all(len(p) <= _DSP_BITS for p, _ in pieces), "operand too wide for two products"
    out = []
    for i, (piece, shift) in enumerate(pieces):
        prod = Signal((a * piece).shape(), name=f"{name}_prod{i}")
        m.d.sync += prod.eq(a * piece)
        out.append((prod, shift))
    return out


def _serial_cycles(nb: int, sint_bits: int) -> int:
    """:meth:`BlockSelector.threshold_cycles` of the serial implementation."""
    return nb + 2 + _REST_BITS + sint_bits + 1


def _shifted_sum(parts):
    """``sum(value << shift)`` over ``parts`` (exact: Amaranth widens every add)."""
    total = 0
    for value, shift in parts:
        total = total + (value << shift)
    return total


def _sum_shape(parts):
    """The shape of :func:`_shifted_sum` of ``parts``."""
    return _shifted_sum(parts).shape()


class BlockSelector(wiring.Component):
    """Keeps the blocks of each block row that pass the top-k-free rule; no sort.

    While a block row streams in, the selector stores its block importances in one of two
    banks and keeps the row's count ``nb``, maximum and sum. It then compares every stored
    block, one a cycle, while the next block row streams into the other bank:

    - mean rule (``block_rule`` 0): ``256*nb*BI >= rho*nb*max + (256-rho)*sum``;
    - delta rule (``block_rule`` 1): ``BI >= max - delta``;
    - with ``block_prune_enable`` low every valid block is kept.

    Two implementations of the mean rule, bit-exact alike (``serial``):

    - products (``serial`` False; the default and server presets): the compares are a
      pipeline timed for 100 MHz and more on an ECP5: a block's read is registered, ``nb
      * BI`` is one registered 18 x 18 multiply, the compare result is registered before
      it sets the mask bit. The row's side, ``rho * (nb * max) + (256 - rho) * sum``, is
      three registered stages of 18 x 18 products (an operand wider than 18 bits split
      in two) and an add, computed while the row's first block is read; its registers
      are timed so the next row may be taken the cycle after this row's last read. Six
      MULT18X18D at the default preset (seven SB_MAC16 at ``edge``).
    - serial (``serial`` True; ``edge``, where the head scorer leaves the time,
      :meth:`serial_fits`): no multiplier. The rule is the delta rule with a per-row
      margin: ``256 nb BI >= rho nb max + (256 - rho) sum`` is ``max - BI <= (256 - rho)
      D / (256 nb)`` with ``D = nb max - sum = sum(max - BI) >= 0``, so a block is kept
      when ``BI >= max - t``, ``t = floor((256 - rho) D / (256 nb))``. A row of two
      blocks or more is read twice: first for ``D`` (``BI - max`` is the compare's own
      subtraction), then ``t`` is computed a bit a cycle (:meth:`_serial_threshold`:
      the product by ``256 - rho`` by shifts and adds, the division by ``nb`` by
      restoring steps, remainders of ``nb``'s width), then the compares. The row's sum
      is not needed. Same compare stages and mask latency after the last read;
      :meth:`threshold_cycles` more on the compare side (``2 nb + 27`` cycles a row at
      ``edge`` instead of ``nb + 1``, still within the scorer's ``8 (4 nb - 3)``).

    Each mask is built in one of two mask slots, and offered from it, so one row's mask
    may wait for ``o_mask`` while the next row is compared (a slot that is done is never
    written: the offered mask holds by construction).

    Parameters
    ----------
    block_col_count : int
        Blocks in a block row (``ceil(seq_max / block_cols)``): the mask width.
    sint_bits : int
        Signed width of a block importance.
    delta_bits : int
        Width of the ``delta`` register.
    serial : bool
        The serial mean rule (no multiplier) instead of the products; ``from_config``
        derives it from the config (:meth:`serial_fits`).

    Members
    -------
    block_prune_enable, block_rule, rho, delta : In
        Run-time registers, stable during a head (:meth:`drive_registers`).
    i_block : In(stream.Signature(block_layout))
        The valid blocks of each block row (``last`` ends the row).
    o_mask : Out(stream.Signature(mask_layout))
        One keep mask per block row; ``last_row`` copied from the input.

    Latency and throughput: a block row of ``nb`` blocks is taken in ``nb`` cycles and
    handed to the compare side the next cycle (when that side has read all of the
    previous row and a mask slot is free); its blocks are read one a cycle and its mask
    is offered 5 cycles after the last read: ``2 nb + 5`` cycles from the row's first
    block to its mask (serial, mean rule, ``nb >= 2``: ``threshold_cycles(nb)`` more).
    Without back-pressure rows follow each other every ``nb + 1`` cycles (serial, mean
    rule: ``nb + 1 + threshold_cycles(nb)``), except that rows of fewer than 4 blocks
    are limited by the two mask slots to two every ``nb + 6`` cycles.
    """

    def __init__(self, *, block_col_count: int, sint_bits: int, delta_bits: int,
                 serial: bool = False):
        self.block_col_count = block_col_count
        self.sint_bits = sint_bits
        self.serial = serial
        col_bits = index_bits(block_col_count)
        self.col_bits = col_bits
        self.nb_bits = block_col_count.bit_length()      # nb: 1..block_col_count
        super().__init__({
            "block_prune_enable": In(1), "block_rule": In(1),
            "rho": In(signed(RHO_BITS)), "delta": In(delta_bits),
            "i_block": In(stream.Signature(block_layout(sint_bits=sint_bits, block_col_bits=col_bits))),
            "o_mask": Out(stream.Signature(mask_layout(block_col_count=block_col_count))),
        })

    @classmethod
    def from_config(cls, config, *, serial: bool | None = None):
        """The selector of ``config``; ``serial`` (default: :meth:`serial_fits`) picks the
        implementation."""
        if serial is None:
            serial = cls.serial_fits(config)
        return cls(block_col_count=config.block_col_count, sint_bits=config.sint_bits,
                   delta_bits=config.delta_bits, serial=serial)

    def threshold_cycles(self, nb: int) -> int:
        """Cycles a block row of ``nb >= 2`` blocks spends on the compare side beyond
        the product implementation's ``nb + 1`` when it needs the serial threshold (mean
        rule): its D pass (``nb`` reads, 2 cycles to the last one's data) and the
        threshold's ``10 + sint_bits + 1`` steps. 0 for the product implementation."""
        return _serial_cycles(nb, self.sint_bits) if self.serial else 0

    @classmethod
    def serial_fits(cls, config) -> bool:
        """Whether the serial implementation keeps pace with the head scorer of
        ``config``. A block row of ``nb >= 2`` blocks has ``block_cols (nb - 1) + 1``
        valid pairs or more in its last row, ``head_dim / int_lanes`` cycles each, and
        the compare side must be done with the row before within that time (``nb + 1 +
        threshold_cycles(nb)`` cycles: within a head the block rows before are no
        longer; a row of one block needs no threshold). ``edge``: ``2 nb + 27 <= 8 (4
        nb - 3)``, 31 <= 40 cycles at ``nb = 2``; the default preset (a cycle a pair,
        1-pair blocks) and ``server`` (2 cycles a pair, 8-pair blocks) keep the
        products."""
        pair_cycles = config.head_dim // config.int_lanes
        return config.block_col_count > 1 and all(
            nb + 1 + _serial_cycles(nb, config.sint_bits)
            <= pair_cycles * (config.block_cols * (nb - 1) + 1)
            for nb in range(2, config.block_col_count + 1))

    def drive_registers(self, m, run):
        """Connect the run-time registers this policy reads from the latched ``run``."""
        m.d.comb += [self.block_prune_enable.eq(run.flags.block_prune_enable),
                     self.block_rule.eq(run.flags.block_rule),
                     self.rho.eq(run.rho), self.delta.eq(run.delta)]

    def elaborate(self, platform):
        m = Module()
        count = self.block_col_count
        serial = self.serial
        # two banks: a block row streams into one while the other one's is compared (the
        # read is always of the other bank: no collision, bram.py)
        store = bram(m, "store", shape=self.sint_bits + self.col_bits, depth=2 * count)
        wr, rd = store.write_port(), registered_read_port(m, store, name="store_rd")
        sum_shape = signed(self.sint_bits + count.bit_length() + 1)
        beat = self.i_block.payload

        # ---- collect side: the row arriving in bank `wbank` ---------------------------------
        wbank = Signal()
        c_nb = Signal(range(count + 1))
        c_max = Signal(signed(self.sint_bits))
        c_sum = Signal(sum_shape)         # (not serial: its D pass needs no sum)
        c_last_row = Signal()
        c_full = Signal()                 # a whole row waits in bank `wbank`
        m.d.comb += [wr.addr.eq(Mux(wbank, count + c_nb, c_nb)),
                     wr.data.eq(Cat(beat.bi, beat.col)),
                     self.i_block.ready.eq(~c_full), wr.en.eq(self.i_block.valid & ~c_full)]
        with m.If(self.i_block.valid & ~c_full):
            m.d.sync += c_nb.eq(c_nb + 1)
            if not serial:
                m.d.sync += c_sum.eq(c_sum + beat.bi)
            with m.If((c_nb == 0) | (beat.bi > c_max)):
                m.d.sync += c_max.eq(beat.bi)
            with m.If(beat.last):
                m.d.sync += [c_full.eq(1), c_last_row.eq(beat.last_row)]

        # ---- mask slots: a row's mask is built in one while the other one's is offered ----
        masks = [Signal(count, name=f"mask{s}") for s in range(2)]
        slot_busy = [Signal(name=f"slot{s}_busy") for s in range(2)]    # taken, not sent
        slot_done = [Signal(name=f"slot{s}_done") for s in range(2)]    # complete, offered
        slot_last_row = [Signal(name=f"slot{s}_last_row") for s in range(2)]
        take_slot = Signal()              # the slot the next row takes
        out_slot = Signal()               # the slot offered on o_mask
        m.d.comb += [self.o_mask.valid.eq(Mux(out_slot, slot_done[1], slot_done[0])),
                     self.o_mask.payload.mask.eq(Mux(out_slot, masks[1], masks[0])),
                     self.o_mask.payload.last_row.eq(Mux(out_slot, slot_last_row[1],
                                                         slot_last_row[0]))]

        # ---- take: the collected row moves to the compare side, its bank is freed ---------
        issuing = Signal()                # blocks of the taken row are being read
        idx = Signal(range(count))
        nb = Signal(range(count + 1))
        row_max = Signal(signed(self.sint_bits))
        row_sum = Signal(sum_shape)
        row_slot = Signal()
        take = Signal()
        # serial, mean rule: the row is read twice, first for D (`d_pass`: its reads, then
        # the threshold's steps), then for the compares; a row of one block is read once
        # (it is kept by any threshold >= 0)
        d_pass = Signal()
        m.d.comb += take.eq(c_full & ~issuing & ~d_pass
                            & ~Mux(take_slot, slot_busy[1], slot_busy[0]))
        with m.If(take):
            m.d.sync += [nb.eq(c_nb), row_max.eq(c_max),
                         row_slot.eq(take_slot), take_slot.eq(~take_slot),
                         wbank.eq(~wbank), c_full.eq(0), c_nb.eq(0),
                         issuing.eq(1), idx.eq(0)]
            if serial:
                m.d.sync += d_pass.eq(self.block_prune_enable & (self.block_rule == 0)
                                      & (c_nb >= 2))
            else:
                m.d.sync += [row_sum.eq(c_sum), c_sum.eq(0)]
            for s in range(2):
                with m.If(take_slot == s):
                    m.d.sync += slot_busy[s].eq(1)
                # (a done slot is never written, here nor below: the offered mask holds by
                # construction, which k-induction proves without the slots' bookkeeping)
                with m.If((take_slot == s) & ~slot_done[s]):
                    m.d.sync += slot_last_row[s].eq(c_last_row)

        # ---- the row's side of the compares: free-running registers, each one timed so
        # that it holds the taken row's value while that row's blocks use it (the next
        # row is taken at the earliest the cycle after this row's last read)
        if serial:
            # one threshold for either rule: max - delta, or max - t (t is 0 from the take
            # until the threshold's steps set it: the D pass reads against max)
            t_mean = Signal(self.sint_bits + 1)
            thr = Signal((row_max - Mux(self.block_rule, self.delta, t_mean)).shape())
            m.d.sync += thr.eq(row_max - Mux(self.block_rule, self.delta, t_mean))  # take + 2 on
        else:
            nb_p = Signal.like(nb)                                    # take + 2 on
            thr_delta = Signal((row_max - self.delta).shape())        # take + 2 on
            rho = Signal.like(self.rho)                               # registered multiplier
            rho_rest = Signal((RHO_ONE - self.rho).shape())           #   inputs (stable)
            m.d.sync += [nb_p.eq(nb), thr_delta.eq(row_max - self.delta),
                         rho.eq(self.rho), rho_rest.eq(RHO_ONE - self.rho)]
            # rhs = rho * (nb * max) + (256 - rho) * sum, every product a registered 18 x 18
            # one (an operand wider than 18 bits is split in two products, added a cycle
            # later)
            nb_max = Signal((nb * row_max).shape())                   # take + 2 on
            m.d.sync += nb_max.eq(nb * row_max)
            sum_parts = _split_product(m, rho_rest, row_sum, "sum")   # take + 2 on
            part_sum = Signal(_sum_shape(sum_parts))                  # take + 3 on
            m.d.sync += part_sum.eq(_shifted_sum(sum_parts))
            max_parts = _split_product(m, rho, nb_max, "max")         # take + 3 on
            # |rhs| <= (512 + 768) * count * 2**(sint_bits - 1): narrower than the sum's
            # shape (every partial sum is exact, only the final register drops redundant
            # sign bits)
            rho_mag = 1 << (RHO_BITS - 1)
            rhs_bound = (rho_mag + RHO_ONE + rho_mag) * count << (self.sint_bits - 1)
            rhs = Signal(signed(min(rhs_bound.bit_length() + 1,
                                    _sum_shape(max_parts + [(part_sum, 0)]).width)))  # take + 4 on
            m.d.sync += rhs.eq(_shifted_sum(max_parts + [(part_sum, 0)]))

        # ---- the blocks' side: read, register, multiply, compare, set the mask bit -------
        # stage 0 (cycle t): block idx is read from the compare bank
        m.d.comb += rd.addr.eq(Mux(wbank, idx, count + idx))
        with m.If(issuing):
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == nb - 1):
                m.d.sync += issuing.eq(0)
        s1_valid, s1_last, s1_slot = Signal(), Signal(), Signal()   # t + 1: rd.data
        s1_d = Signal()                   # serial: a read of the D pass
        m.d.sync += [s1_valid.eq(issuing & ~d_pass), s1_last.eq(idx == nb - 1),
                     s1_slot.eq(row_slot), s1_d.eq(issuing & d_pass)]
        s2_valid, s2_last, s2_slot = Signal(), Signal(), Signal()   # t + 2: registered read
        s2_d = Signal()
        s2_bi = Signal(signed(self.sint_bits))
        s2_col = Signal(self.col_bits)
        m.d.sync += [s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_slot.eq(s1_slot),
                     s2_d.eq(s1_d), s2_bi.eq(rd.data[:self.sint_bits].as_signed()),
                     s2_col.eq(rd.data[self.sint_bits:])]
        s3_valid, s3_last, s3_slot = Signal(), Signal(), Signal()   # t + 3: product
        s3_col = Signal(self.col_bits)
        m.d.sync += [s3_valid.eq(s2_valid), s3_last.eq(s2_last), s3_slot.eq(s2_slot),
                     s3_col.eq(s2_col)]
        s4_valid, s4_last, s4_slot = Signal(), Signal(), Signal()   # t + 4: the decision
        s4_col = Signal(self.col_bits)
        m.d.sync += [s4_valid.eq(s3_valid), s4_last.eq(s3_last), s4_slot.eq(s3_slot),
                     s4_col.eq(s3_col)]
        if serial:
            # BI - thr: its sign is the compare; in the D pass (thr = max) it is BI - max
            diff = Signal(signed(len(thr) + 1))
            m.d.comb += diff.eq(s2_bi - thr)
            s3_keep, s4_keep_thr = Signal(), Signal()
            m.d.sync += [s3_keep.eq(~diff[-1]), s4_keep_thr.eq(s3_keep)]
            s4_keep = ~self.block_prune_enable | s4_keep_thr
            d_sum = Signal(self.sint_bits + self.nb_bits)           # D = sum (max - BI)
            with m.If(take):
                m.d.sync += d_sum.eq(0)
            with m.Elif(s2_d):
                m.d.sync += d_sum.eq(d_sum - diff)
            # after the D pass's last read the threshold's steps, then the compare reads
            done = self._serial_threshold(m, start=s2_d & s2_last, d=d_sum, nb=nb,
                                          t=t_mean, clear=take)
            with m.If(done):
                m.d.sync += [d_pass.eq(0), issuing.eq(1), idx.eq(0)]
        else:
            s3_prod = Signal((nb_p * s2_bi).shape())
            s3_keep_delta = Signal()
            m.d.sync += [s3_prod.eq(nb_p * s2_bi), s3_keep_delta.eq(s2_bi >= thr_delta)]
            s4_keep_mean, s4_keep_delta = Signal(), Signal()
            # mean rule: 256 * nb * BI >= rhs, the factor 256 (RHO_ONE) a shift
            assert RHO_ONE == 1 << 8
            m.d.sync += [s4_keep_delta.eq(s3_keep_delta),
                         s4_keep_mean.eq(Cat(Const(0, 8), s3_prod).as_signed() >= rhs)]
            s4_keep = ~self.block_prune_enable | Mux(self.block_rule, s4_keep_delta,
                                                     s4_keep_mean)
        for s in range(2):
            with m.If(s4_valid & (s4_slot == s) & ~slot_done[s]):
                with m.If(s4_keep):
                    m.d.sync += masks[s].bit_select(s4_col, 1).eq(1)
                with m.If(s4_last):
                    m.d.sync += slot_done[s].eq(1)
            # the offered mask is taken: the slot is free again (it is not written now)
            with m.If(self.o_mask.ready & slot_done[s] & (out_slot == s)):
                m.d.sync += [masks[s].eq(0), slot_done[s].eq(0), slot_busy[s].eq(0)]
        with m.If(self.o_mask.valid & self.o_mask.ready):
            m.d.sync += out_slot.eq(~out_slot)
        # the state the formal harness's invariants name (hdp_rtl/formal/block_selector.py;
        # existing signals only: the logic is the same)
        self.state = dict(
            store=store, rd=rd, wbank=wbank, c_nb=c_nb, c_max=c_max, c_sum=c_sum,
            c_last_row=c_last_row, c_full=c_full, masks=masks, slot_busy=slot_busy,
            slot_done=slot_done, slot_last_row=slot_last_row, take_slot=take_slot,
            out_slot=out_slot, issuing=issuing, idx=idx, nb=nb, row_max=row_max,
            row_sum=row_sum, row_slot=row_slot, take=take, d_pass=d_pass,
            stages=[dict(valid=s1_valid, last=s1_last, slot=s1_slot, d=s1_d),
                    dict(valid=s2_valid, last=s2_last, slot=s2_slot, d=s2_d, bi=s2_bi,
                         col=s2_col),
                    dict(valid=s3_valid, last=s3_last, slot=s3_slot, col=s3_col),
                    dict(valid=s4_valid, last=s4_last, slot=s4_slot, col=s4_col)])
        if serial:
            self.state.update(thr=thr, t_mean=t_mean, d_sum=d_sum, s3_keep=s3_keep,
                              s4_keep_thr=s4_keep_thr, threshold=self._threshold_state)
        else:
            self.state.update(nb_p=nb_p, thr_delta=thr_delta, rho=rho, rho_rest=rho_rest,
                              nb_max=nb_max, sum_parts=sum_parts, part_sum=part_sum,
                              max_parts=max_parts, rhs=rhs, s3_prod=s3_prod,
                              s3_keep_delta=s3_keep_delta, s4_keep_mean=s4_keep_mean,
                              s4_keep_delta=s4_keep_delta)
        return m

    def _serial_threshold(self, m, *, start, d, nb, t, clear):
        """The mean rule's threshold ``t = floor((256 - rho) D / (256 nb))`` from ``D`` (the
        register ``d``, final from the cycle after ``start``) with no multiplier, into the
        register ``t`` (0 after ``clear``); returns ``done``, high in the last step.

        Steps, one a cycle: ``R = (256 - rho) D``, least significant bit of ``256 -
        rho`` first (the running sum is shifted right; the bits shifted out last are
        ``R``'s bits 8 and 9, so ``R' = floor(R / 256)`` is them below the sum); then
        ``t = floor(R' / nb)``, restoring, a quotient bit a step: ``t <= 2 (max -
        mean)`` has ``sint_bits + 1`` bits, so the remainder starts as ``R' >>
        (sint_bits + 1)``, which is below ``nb``."""
        assert RHO_ONE == 1 << 8
        qbits, lo_bits = len(t), _REST_BITS - 8
        assert qbits >= lo_bits
        rest = Signal(_REST_BITS)                     # 256 - rho (stable: registered)
        m.d.sync += rest.eq(RHO_ONE - self.rho)
        step = Signal(range(max(_REST_BITS, qbits)))
        hi = Signal(len(d))                           # (256 - rho) * D, shifted right
        lo = Signal(lo_bits)                          #   its bits 8.. shifted out
        rem = Signal(self.nb_bits)                    # the division's remainder
        r_prime = Cat(lo, hi)
        r_rev = Cat(*(r_prime[qbits - 1 - i] for i in range(qbits)))   # msb first
        done = Signal()
        with m.If(clear):
            m.d.sync += t.eq(0)
        with m.FSM(name="threshold") as fsm:
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [hi.eq(0), step.eq(0)]
                    m.next = "REST"
            with m.State("REST"):                     # hi:lo = (hi + rest[step] * D) >> 1
                total = hi + Mux(rest.bit_select(step, 1), d, 0)
                m.d.sync += [hi.eq(total >> 1), lo.eq(Cat(lo[1:], total[0])),
                             step.eq(step + 1)]
                with m.If(step == _REST_BITS - 1):
                    # the remainder's start, R' >> qbits, from this last step's result
                    m.d.sync += [rem.eq(total >> (1 + qbits - lo_bits)), step.eq(0)]
                    m.next = "DIV"
            with m.State("DIV"):                      # a quotient bit, R' msb first
                cand = Cat(r_rev.bit_select(step, 1), rem)
                ge = cand >= nb
                m.d.sync += [rem.eq(Mux(ge, cand - nb, cand)), t.eq(Cat(ge, t[:-1])),
                             step.eq(step + 1)]
                with m.If(step == qbits - 1):
                    m.d.comb += done.eq(1)
                    m.next = "IDLE"
        # (for the formal harness: the steps' state, existing signals only)
        self._threshold_state = dict(fsm=fsm, step=step, rest=rest, hi=hi, lo=lo, rem=rem)
        return done
