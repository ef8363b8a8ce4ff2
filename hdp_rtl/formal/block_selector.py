"""Formal harness of :class:`~hdp_rtl.rtl.block_selector.BlockSelector`."""
from amaranth.hdl import Array, Cat, Const, Elaboratable, Mux, Signal

from ..config import RHO_ONE
from ..rtl.block_selector import BlockSelector
from .common import Assert, Assume, Cover, UpDown, any_const, drive_any, harness_module, \
    memory_words, stream_rules

__all__ = ["BlockSelectorHarness", "MeanLemmaHarness", "mean_lemma"]


def mean_lemma(rho, rho_rest, nb_max, row_sum, rhs_bits):
    """The mean rule's arithmetic: for ``-256 <= rho <= 256``, ``rho_rest = 256 - rho``
    and ``row_sum <= nb_max``: ``rho nb_max + (256 - rho) row_sum = 256 nb_max - (256 -
    rho) (nb_max - row_sum) <= 256 nb_max``, and it is at least ``-2**(rhs_bits - 1)``
    (``rhs`` holds it exactly) when ``|nb_max|, |row_sum| <= 2**(rhs_bits - 11)``.
    Products written as the selector writes them (the same cells after ``flatten`` and
    ``opt_merge``). Proven for every ``rho`` by :class:`MeanLemmaHarness`
    (``block_selector_lemma``), assumed by ``BlockSelectorHarness(lemma=True)``."""
    lhs = rho * nb_max + rho_rest * row_sum
    bound = 1 << (rhs_bits - 11)
    premise = ((rho >= -RHO_ONE) & (rho <= RHO_ONE) & (rho_rest == RHO_ONE - rho)
               & (row_sum <= nb_max) & (nb_max >= -bound) & (nb_max <= bound)
               & (row_sum >= -bound))
    return ~premise | ((lhs <= (nb_max << 8)) & (lhs >= -(1 << (rhs_bits - 1))))


class MeanLemmaHarness(Elaboratable):
    """:func:`mean_lemma` at the widths of ``config``'s selector (products), for every
    ``rho`` in -256..256: one assertion a value, each with free operands (a free ``rho``
    makes the products non-linear and the solvers do not finish; a constant one is a
    sum of shifts). ``rho`` outside -256..256 fails the lemma's premise, so this proves
    it for every value of the ``rho`` register."""

    def __init__(self, config, rho_values=range(-RHO_ONE, RHO_ONE + 1)):
        self.config = config
        self.rho_values = rho_values

    def elaborate(self, platform):
        m = harness_module()
        shapes = BlockSelector.from_config(self.config, serial=False)
        unused = shapes.elaborate(platform)     # (for the shapes of its registers)
        st = shapes.state
        for obj in (shapes, unused, st["store"]):
            obj._MustUse__silence = True
        for v in self.rho_values:
            tag = f"{'m' if v < 0 else ''}{abs(v)}"
            rho = Signal.like(st["rho"], name=f"rho_{tag}")
            ops = [Signal.like(st[k], name=f"{k}_{tag}") for k in ("rho_rest", "nb_max",
                                                                    "row_sum")]
            m.d.comb += rho.eq(v)
            drive_any(m, *ops)
            m.d.comb += Assert(mean_lemma(rho, *ops, len(st["rhs"])), "mean_lemma")
        return m


class BlockSelectorHarness(Elaboratable):
    """Input ``i_block`` (assumed: stream rules; the head scorer's contract of at most
    ``block_col_count`` blocks a row in strictly increasing column order), output
    ``o_mask`` (asserted: stream rules).

    Proven (k-induction): the stream rules on ``o_mask``. With ``functional`` (BMC),
    the beat counting, which needs the rows held inside (two banks, two mask slots): a
    mask only for a received block row; blocks taken while no row is inside and while a
    row is in progress; while a mask is offered, a row is inside, two when the input is
    not ready; at most three rows inside (one offered, one compared into the other
    slot, one complete in a bank), none taken while three are; masks in row order with
    ``last_row`` copied; a row inside waits at most ``block_col_count + 5`` cycles
    (``+ threshold_cycles(block_col_count)`` for the serial implementation) without a
    mask being offered. With ``functional`` it also asserts that a mask keeps only
    blocks that came in, all of them when ``block_prune_enable`` is low, and always the
    row's best block, with either rule (the delta rule for any ``delta``; the mean rule
    for any ``rho`` in -256..256, as ``256 nb max - rho nb max - (256 - rho) sum = (256
    - rho) (nb max - sum) >= 0``) - these need the stored blocks, so they are checked by
    BMC.

    With ``best`` (k-induction): the row's best block kept and ``last_row`` copied, rows
    in order, unbounded. The harness elaborates the selector itself and states
    invariants over ``BlockSelector.state`` (:meth:`_best`, :meth:`_products`), with
    ghost registers (``ghost_*``) that follow each row's best block: its index in the
    bank, its column per mask slot, a flag along the compare pipeline.

    ``serial`` picks the implementation (default: the one ``from_config`` picks, the
    products for the small configuration of ``checks.py``). For the products the mean
    rule's best-block property is non-linear (the DUT's ``rho * (nb max)`` and ``(256 -
    rho) sum`` multipliers) and the solver does not finish with a free ``rho``:
    ``mean_best`` False asserts it for the delta rule only, ``rho_values`` assumes
    ``rho`` is one of these values (the serial margin needs neither: its threshold
    ``t >= 0`` is an unsigned register). For a free ``rho`` the products' proof is split
    (assume-guarantee): ``lemma`` assumes :func:`mean_lemma` on the multipliers' operands
    (:class:`MeanLemmaHarness`, every ``rho``: its run has not finished yet), ``assume_products`` assumes
    the products registered at s1 (proven with ``mean_best`` False). ``rho_range``
    (experiments) assumes ``lo <= rho <= hi``.
    """

    def __init__(self, config, *, functional: bool = False, serial: bool | None = None,
                 rho_values=None, rho_range=None, mean_best: bool = True, best: bool = False,
                 lemma: bool = False, assume_products: bool = False, mean_cover: bool = True,
                 unit=BlockSelector):
        self.config = config
        self.best = best                 # the best block by k-induction (see _best)
        self.unit = unit                 # (a mutant, in tests)
        self.mean_best = mean_best
        self.functional = functional
        self.serial = serial
        self.rho_values = None if rho_values is None else tuple(rho_values)
        self.rho_range = rho_range       # (lo, hi): rho assumed in lo..hi
        self.lemma = lemma               # mean_lemma assumed (block_selector_lemma)
        self.assume_products = assume_products   # (block_selector_best_delta's invariants)
        self.mean_cover = mean_cover and mean_best   # (best) the mean rule's pruning cover

    def elaborate(self, platform):
        m = harness_module()
        cfg = self.config
        dut = self.unit.from_config(cfg, serial=self.serial)
        if self.best:
            # elaborated here, so that its internal state (dut.state) can be read below
            m.submodules.dut = unit = dut.elaborate(platform)
            dut._MustUse__silence = True
        else:
            m.submodules.dut = dut
        count = cfg.block_col_count
        ib, om = dut.i_block, dut.o_mask

        # run-time registers: stable for the whole run
        for reg in (dut.block_prune_enable, dut.block_rule, dut.rho, dut.delta):
            m.d.comb += reg.eq(any_const(len(reg)))
        m.d.comb += Assume((dut.rho >= -RHO_ONE) & (dut.rho <= RHO_ONE), "rho in -256..256")
        if self.rho_values is not None:
            assert all(-RHO_ONE <= v <= RHO_ONE for v in self.rho_values)
            m.d.comb += Assume(Cat(*(dut.rho == v for v in self.rho_values)).any(),
                               "rho in " + ", ".join(map(str, self.rho_values)))
        if self.rho_range is not None:
            lo, hi = self.rho_range
            m.d.comb += Assume((dut.rho >= lo) & (dut.rho <= hi), f"rho in {lo}..{hi}")
        drive_any(m, ib.valid, ib.payload, om.ready)

        fire_in = stream_rules(m, ib.valid, ib.ready, ib.payload, output=False, name="i_block")
        fire_out = stream_rules(m, om.valid, om.ready, om.payload, output=True, name="o_mask")

        # the scorer's contract: <= count blocks a row, columns strictly increasing
        in_row = Signal(range(count + 1))       # blocks of the current row taken so far
        prev_col = Signal(len(ib.payload.col))
        with m.If(fire_in):
            m.d.sync += [in_row.eq(0 if count == 1 else in_row + 1), prev_col.eq(ib.payload.col)]
            with m.If(ib.payload.last):
                m.d.sync += in_row.eq(0)
        with m.If(ib.valid):
            m.d.comb += [
                Assume(ib.payload.col < count, "block column in range"),
                Assume((in_row == 0) | (ib.payload.col > prev_col), "columns strictly increase"),
                Assume((in_row != count - 1) | ib.payload.last, "at most block_col_count blocks"),
            ]

        # one mask per block row: the selector is double-banked with two mask slots, so at
        # most three rows are inside (one whose mask is offered, one being compared into
        # the other slot, one complete in the bank the first one left); the harness keeps
        # what it must know of each (a three-entry queue, oldest first)
        rows = UpDown(m, up=fire_in & ib.payload.last, down=fire_out, max=3, name="rows_pending")
        seen = Signal(count)                 # blocks of the row being received
        best_bi = Signal.like(ib.payload.bi)
        best_col = Signal(range(count))
        best_idx = Signal(range(count), name="ghost_best_idx")   # its index in the row
        bit = (Const(1, count) << ib.payload.col)[:count]
        new_best = (in_row == 0) | (ib.payload.bi > best_bi)
        with m.If(fire_in):
            m.d.sync += seen.eq(seen | bit)
            with m.If(new_best):
                m.d.sync += [best_bi.eq(ib.payload.bi), best_col.eq(ib.payload.col),
                             best_idx.eq(in_row)]
            with m.If(ib.payload.last):
                m.d.sync += seen.eq(0)
        # a closed row: last_row, the blocks that came in, the best block's column
        entry = Cat(ib.payload.last_row, seen | bit, Mux(new_best, ib.payload.col, best_col))
        queue = [Signal(len(entry), name=f"row_queue{i}") for i in range(3)]
        with m.If(fire_out):
            m.d.sync += [queue[0].eq(queue[1]), queue[1].eq(queue[2])]
        with m.If(fire_in & ib.payload.last):
            slot = rows.value - fire_out
            for i in range(3):
                with m.If(slot == i):
                    m.d.sync += queue[i].eq(entry)
        head_last_row = queue[0][0]
        row_cols = queue[0][1:1 + count]
        closed_best = queue[0][1 + count:]
        # bounded latency (taken, read nb cycles, 4 stages, offered a cycle later; the
        # serial threshold's cycles more): a row inside waits at most block_col_count + 5
        # (+ threshold_cycles) cycles for its mask to be offered (BMC: + 4 fails)
        bound = count + 5 + dut.threshold_cycles(count)
        wait = Signal(range(bound + 5))
        with m.If((rows.value != 0) & ~om.valid & (wait < bound + 4)):
            m.d.sync += wait.eq(wait + 1)
        with m.Elif((rows.value == 0) | om.valid):
            m.d.sync += wait.eq(0)
        if self.functional:
            m.d.comb += [
                Assert(wait <= bound, "a row's mask offered within block_col_count + 5 "
                       "(+ threshold_cycles) cycles"),
                Assert(rows.value <= 3, "at most three block rows inside (two mask slots "
                       "and a bank)"),
                Assert((rows.value != 3) | ~ib.ready, "no block taken while three rows are inside"),
            ]
        if self.functional:
            m.d.comb += [
                Assert(~om.valid | (rows.value != 0), "a mask only for a received block row"),
                Assert((rows.value != 0) | ib.ready, "blocks taken while no row is inside"),
                Assert((in_row == 0) | ib.ready, "a row in progress is taken"),
                # while a mask is offered, a complete row waits in a bank when not ready
                Assert(~om.valid | (rows.value >= Mux(ib.ready, 1, 2)),
                       "a mask offered: a row inside, two when a bank holds a complete row"),
            ]
        m.d.comb += [
            Cover(fire_out & om.payload.last_row, "a head's last mask sent"),
            Cover(fire_in & (rows.value == 1) & ib.payload.last,
                  "a block row completes while the previous one is inside"),
            Cover(rows.value == 3, "three block rows inside: one offered, one compared, "
                  "one complete in a bank"),
        ]
        # a row of several blocks that keeps only one
        if count > 1:
            m.d.comb += Cover(fire_out & (rows.value == 1) & (row_cols != 0)
                              & ((row_cols & (row_cols - 1)) != 0) & (om.payload.mask != 0)
                              & ((om.payload.mask & (om.payload.mask - 1)) == 0),
                              "a row of two or more blocks with only one kept")

        if self.best:
            self._best(m, dut, rows, in_row, best_bi, best_col, best_idx, queue)
            if count > 1:
                one_of_two = (fire_out & dut.block_prune_enable
                              & ((row_cols & (row_cols - 1)) != 0) & (om.payload.mask != 0)
                              & ((om.payload.mask & (om.payload.mask - 1)) == 0))
                m.d.comb += Cover(one_of_two & (dut.block_rule == 1), "delta rule: a row of "
                                  "two or more blocks with only one kept")
                if self.mean_cover:
                    m.d.comb += Cover(one_of_two & (dut.block_rule == 0) & (dut.rho != 0)
                                      & (dut.rho != RHO_ONE), "mean rule (rho not 0, 256): a "
                                      "row of two or more blocks with only one kept")
        if self.functional or self.best:
            # these follow the rows' data through the banks: BMC (functional), or
            # k-induction with the invariants of _best
            with m.If(om.valid):
                m.d.comb += Assert(om.payload.last_row == head_last_row,
                                   "last_row copied, rows in order")
                if self.functional:
                    m.d.comb += [
                        Assert((om.payload.mask & ~row_cols) == 0,
                               "mask keeps only received blocks"),
                        Assert(dut.block_prune_enable | (om.payload.mask == row_cols),
                               "no pruning: every received block kept"),
                    ]
                # BI = max passes the delta rule (max - delta, delta >= 0) and the mean
                # rule: 256 nb max - rho nb max - (256 - rho) sum = (256 - rho) (nb max
                # - sum) >= 0 for rho <= 256 (without ``mean_best`` the delta rule only)
                m.d.comb += Assert(~dut.block_prune_enable
                                   | ((dut.block_rule == 0) if not self.mean_best else Const(0))
                                   | om.payload.mask.bit_select(closed_best, 1),
                                   "the row's best block is kept (both rules)" if self.mean_best
                                   else "delta rule: the row's best block is kept")
        return m

    def _best(self, m, dut, rows, in_row, best_bi, best_col, best_idx, queue):
        """Invariants over the selector's state (``BlockSelector.state``) that make the
        best block's property (and ``last_row``'s) inductive. Ghost registers follow
        the best block of the row taken to the compare side (its index in the bank, its
        column per mask slot, a flag along the compare pipeline)."""
        st = dut.state
        count, sb = dut.block_col_count, dut.sint_bits
        words = memory_words(m, st["store"])

        def word(bank, i):
            w = Array(words)[Mux(bank, count, 0) + i]
            return w[:sb].as_signed(), w[sb:]

        def inv(cond, name):
            m.d.comb += Assert(cond, "inv: " + name, src_loc_at=1)

        wbank, c_nb, c_max, c_full = st["wbank"], st["c_nb"], st["c_max"], st["c_full"]
        masks, busy, done = st["masks"], st["slot_busy"], st["slot_done"]
        take_slot, out_slot, take = st["take_slot"], st["out_slot"], st["take"]
        issuing, idx, nb, row_max, row_slot = (st["issuing"], st["idx"], st["nb"],
                                               st["row_max"], st["row_slot"])
        d_pass = st["d_pass"]
        stages = st["stages"]
        s1, s2, s3, s4 = stages
        rd_bi, rd_col = st["rd"].data[:sb].as_signed(), st["rd"].data[sb:]
        busy_a, done_a, lr_a = Array(busy), Array(done), Array(st["slot_last_row"])

        # ghosts: the compare row's best block (its index in the bank), each slot's row's
        # best column, the best block's flag along the compare pipeline (s1 .. s4)
        g_ridx = Signal(range(count), name="ghost_cmp_best_idx")
        g_best = [Signal(range(count), name=f"ghost_slot{s}_best_col") for s in range(2)]
        g_best_a = Array(g_best)
        g_stage = [Signal(name=f"ghost_s{k + 1}_best") for k in range(4)]
        with m.If(take):
            m.d.sync += g_ridx.eq(best_idx)
            for s in range(2):
                with m.If(take_slot == s):
                    m.d.sync += g_best[s].eq(best_col)
        m.d.sync += [g_stage[0].eq(issuing & ~d_pass & (idx == g_ridx)),
                     g_stage[1].eq(g_stage[0]), g_stage[2].eq(g_stage[1]),
                     g_stage[3].eq(g_stage[2])]

        # ---- the mask slots and the harness's queue of rows ------------------------------
        nbusy = busy[0] + busy[1]
        inv(rows.value == nbusy + c_full, "rows inside = busy slots + a full bank")
        inv(take_slot == (out_slot ^ busy[0] ^ busy[1]), "take_slot after out_slot's rows")
        inv(~busy_a[~out_slot] | busy_a[out_slot], "the offered slot is the older")
        inv(~done_a[~out_slot] | done_a[out_slot], "the older slot done first")
        for s in range(2):
            inv(~done[s] | busy[s], f"slot {s}: done only busy")
            inv(busy[s] | (masks[s] == 0), f"slot {s}: a free slot's mask is 0")
        for i, slot in enumerate([out_slot, ~out_slot]):
            entry = queue[i]
            inv(~busy_a[slot] | ((entry[1 + count:] == g_best_a[slot])
                                 & (entry[0] == lr_a[slot])),
                f"queue entry {i}: its slot's row")
        full_entry = Array(queue)[nbusy]
        inv(~c_full | ((full_entry[1 + count:] == best_col) & (full_entry[0] == st["c_last_row"])),
            "the full bank's row: its queue entry")

        # ---- the collect side: the row in bank wbank ------------------------------------
        cb_bi, cb_col = word(wbank, best_idx)
        inv(in_row < count, "a row in progress: fewer than block_col_count blocks")
        inv(Mux(c_full, (in_row == 0) & (c_nb != 0) & (c_nb <= count), c_nb == in_row),
            "collect: c_nb")
        inv((c_nb == 0) | ((best_idx < c_nb) & (c_max == best_bi) & (cb_bi == c_max)
                           & (cb_col == best_col)), "collect: the best block in the bank")

        # ---- the compare side: the row last taken, in bank ~wbank ----------------------
        r_bi, r_col = word(~wbank, g_ridx)
        inv(~(issuing | d_pass) | (busy_a[row_slot] & ~done_a[row_slot]
                                   & (row_slot != take_slot) & (nb != 0) & (nb <= count)
                                   & (g_ridx < nb) & (r_bi == row_max)
                                   & (r_col == g_best_a[row_slot])),
            "compare: the row's best block in its bank")
        inv(~issuing | (idx < nb), "compare: idx < nb")

        # ---- the compare pipeline --------------------------------------------------------
        for k, sk in enumerate(stages):
            inv(~sk["valid"] | (busy_a[sk["slot"]] & ~done_a[sk["slot"]]),
                f"s{k + 1}: its slot busy, not done")
            inv(~g_stage[k] | sk["valid"], f"s{k + 1}: the best flag on a block")
            # nothing of the same row younger than its last block (issued or in a stage)
            younger = (issuing | d_pass) & (row_slot == sk["slot"])
            for j in range(k):
                younger = younger | (stages[j]["valid"] & (stages[j]["slot"] == sk["slot"]))
            inv(~(sk["valid"] & sk["last"]) | ~younger,
                f"s{k + 1}: a row's last block is its youngest")
            # the older row's (out_slot's) blocks ahead of the younger row's
            for j in range(k):
                sj = stages[j]
                inv(~(sj["valid"] & (sj["slot"] == out_slot) & sk["valid"])
                    | (sk["slot"] == out_slot), f"s{k + 1}, s{j + 1}: rows in order")
        inv(~s1["valid"] | (s1["slot"] == row_slot), "s1: the compare row's")
        inv(~(g_stage[0] & s1["valid"]) | ((rd_bi == row_max) & (rd_col == g_best_a[s1["slot"]])),
            "s1: the best block read")
        for k, sk in enumerate(stages[1:], 1):
            inv(~(g_stage[k] & sk["valid"]) | (sk["col"] == g_best_a[sk["slot"]]),
                f"s{k + 1}: the best block's column")
        if dut.serial:
            th = st["threshold"]
            idle = th["fsm"].ongoing("IDLE")
            inv(~s1["d"] | ~s1["valid"], "serial: s1 a D read or a compare")
            inv(~(s1["d"] | s2["d"]) | d_pass, "serial: D reads in the D pass")
            inv(idle | (d_pass & ~issuing & ~s1["d"] & ~s2["d"]),
                "serial: the threshold's steps after the D reads")
            inv(~(d_pass & ~issuing & idle) | (s1["d"] & s1["last"]) | (s2["d"] & s2["last"]),
                "serial: the D pass's last read ahead of the steps")
            inv(~(s2["d"] & s2["last"]) | idle, "serial: the steps start in IDLE")
            inv(~(s1["d"] & s1["last"]) | ~issuing, "serial: the D pass's last read")
            inv(~(g_stage[1] & s2["valid"]) | (s2["bi"] >= st["thr"]), "s2: the best passes")
            inv(~(g_stage[2] & s3["valid"]) | st["s3_keep"], "s3: the best kept")
            inv(~(g_stage[3] & s4["valid"]) | st["s4_keep_thr"], "s4: the best kept")
        else:
            self._products(m, dut, inv, word, g_stage)

        # ---- a slot not done: its row's last block still to come ------------------------
        for s in range(2):
            last_to_come = (issuing | d_pass) & (row_slot == s)
            for sk in stages:
                last_to_come = last_to_come | (sk["valid"] & sk["last"] & (sk["slot"] == s))
            inv(~busy[s] | done[s] | last_to_come, f"slot {s}: its row's last block to come")

        # ---- the best block: in its slot's mask, or still to come ------------------------
        for s in range(2):
            to_come = (row_slot == s) & (d_pass | (issuing & (idx <= g_ridx)))
            for k, sk in enumerate(stages):
                to_come = to_come | (g_stage[k] & sk["valid"] & (sk["slot"] == s))
            # (without mean_best: with the delta rule, or no pruning, only)
            rule_ok = (Const(1) if self.mean_best
                       else ~dut.block_prune_enable | (dut.block_rule == 1))
            inv(~busy[s] | ~rule_ok | masks[s].bit_select(g_best[s], 1) | (~done[s] & to_come),
                f"slot {s}: the best block's bit set or to come")

    def _products(self, m, dut, inv, word, g_stage):
        """The products implementation's invariants: the row's side of the compares
        (``nb * max``, ``(256 - rho) * sum``, ``rho * (nb * max)``, ``rhs``) registered for
        the row whose blocks are in the compare pipeline, ``sum <= nb * max`` over the
        row, and the best block's product and decision along the stages."""
        st = dut.state
        count = dut.block_col_count
        stages = st["stages"]
        s1, s2, s3, s4 = stages
        wbank, c_nb, c_max, c_sum = st["wbank"], st["c_nb"], st["c_max"], st["c_sum"]
        issuing, nb, row_max, row_sum = st["issuing"], st["nb"], st["row_max"], st["row_sum"]
        rho, rho_rest, nb_p, nb_max = st["rho"], st["rho_rest"], st["nb_p"], st["nb_max"]
        assert len(st["sum_parts"]) == 1 and len(st["max_parts"]) == 1, \
            "the invariants assume unsplit products (small widths)"
        (sum_prod, _), = st["sum_parts"]
        (max_prod, _), = st["max_parts"]
        part_sum, rhs, s3_prod = st["part_sum"], st["rhs"], st["s3_prod"]
        rhs_min, rhs_max = -(1 << (len(rhs) - 1)), (1 << (len(rhs) - 1)) - 1
        started = Signal(name="ghost_started")          # high from the second cycle on
        m.d.sync += started.eq(1)
        inv(started | ~(issuing | s1["valid"] | s2["valid"] | s3["valid"] | s4["valid"]),
            "products: nothing compared in the first cycle")
        inv(~started | ((rho == dut.rho) & (rho_rest == RHO_ONE - dut.rho)),
            "products: rho and 256 - rho registered")
        # the rows' sums and maxima over their banks' words
        for bank, n, mx, total, name in ((wbank, c_nb, c_max, c_sum, "collect"),
                                         (~wbank, nb, row_max, row_sum, "compare")):
            bis = [word(bank, i)[0] for i in range(count)]
            below = Cat(*((i >= n) | (bis[i] <= mx) for i in range(count))).all()
            ok = (total == sum(Mux(i < n, bis[i], 0) for i in range(count))) & below
            inv(ok if name == "collect" else (~issuing | ok),
                f"products, {name}: sum and max of the bank's blocks")
        # the row's side, stage by stage (s1: the read; s2: BI registered; s3: product)
        inv(~s1["valid"] | ((nb_p == nb) & (st["thr_delta"] == row_max - dut.delta)
                            & (row_sum <= nb * row_max)
                            & (row_sum >= -(count << (dut.sint_bits - 1)))),
            "products, s1: the row's nb, max - delta, sum <= nb * max")
        # the products registered at s1 = the products of the (held) registers they came
        # from: proven with the delta rule's invariants (block_selector_best_delta), assumed
        # with ``assume_products`` (the solvers do not finish relating a product
        # registered a cycle ago to the same product of the same registers now along with
        # the mean rule's invariants)
        regs = (~s1["valid"] | ((nb_max == nb * row_max) & (sum_prod == rho_rest * row_sum)))
        if self.assume_products:
            m.d.comb += Assume(regs, "inv (proven by block_selector_best_delta): products, s1: "
                               "nb * max and (256 - rho) * sum registered")
        else:
            inv(regs, "products, s1: nb * max and (256 - rho) * sum registered")
        g1, g2, g3, g4 = g_stage
        if not self.mean_best:           # the delta rule only
            inv(~(g2 & s2["valid"]) | (s2["bi"] >= st["thr_delta"]),
                "products, s2: the best block passes the delta rule")
            inv(~(g3 & s3["valid"]) | st["s3_keep_delta"], "products, s3: the delta rule")
            inv(~(g4 & s4["valid"]) | st["s4_keep_delta"], "products, s4: the delta rule")
            return
        lhs1 = rho * nb_max + sum_prod
        if self.lemma:
            # the mean rule's arithmetic lemma (mean_lemma, proven for every rho in
            # -256..256 by block_selector_lemma), on the multipliers' own operands
            m.d.comb += Assume(mean_lemma(rho, rho_rest, nb_max, row_sum, len(rhs)),
                               "the mean rule's lemma (block_selector_lemma)")
        inv(~s1["valid"] | ((lhs1 <= (nb_max << 8)) & (lhs1 >= rhs_min)),
            "products, s1: rho nb max + (256 - rho) sum within 256 nb max and rhs's range")
        lhs2 = max_prod + part_sum
        # (s2's rho * (nb * max) is s1's rho * nb_max registered: no product re-evaluated)
        inv(~s2["valid"] | ((lhs2 <= (nb_max << 8)) & (lhs2 >= rhs_min)),
            "products, s2: rho nb max + (256 - rho) sum within 256 nb max and rhs's range")
        inv(~(g2 & s2["valid"]) | ((nb_p * s2["bi"] == nb_max)
                                   & (s2["bi"] >= st["thr_delta"])),
            "products, s2: the best block's nb * BI = nb * max, the delta rule passed")
        inv(~(g3 & s3["valid"]) | ((Cat(Const(0, 8), s3_prod).as_signed() >= rhs)
                                   & st["s3_keep_delta"]),
            "products, s3: the best block passes both rules")
        inv(~(g4 & s4["valid"]) | (st["s4_keep_mean"] & st["s4_keep_delta"]),
            "products, s4: the best block kept")
