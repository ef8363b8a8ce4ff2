"""Top-k engine: the keep mask of the k largest values of a row (SpAtten's top-k unit,
issue 12; not yet behind the selection seam).

Bit-exact with :func:`golden.spatten.topk_mask` (the lower index wins a tie). The
k-th largest value is found by a radix select, most significant bit first, over a row
stored in a two-bank memory of ``comparators`` values a word; a last pass in index
order keeps the values above it and the first equal ones.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..widths import clog2
from .arith import tree_sum
from .bram import bram, registered_read_port

__all__ = ["TopKEngine", "topk_value_layout", "topk_mask_layout", "topk_row_cycles",
           "radix_passes",
           "READ_STAGES"]


def msb_onehot(x):
    """The highest set bit of ``x`` as a one-hot (0 when ``x`` is 0)."""
    w = len(x)
    return Cat(*(x[i] & ~x[i + 1:].any() if i < w - 1 else x[i] for i in range(w)))


def topk_value_layout(*, width: int) -> data.StructLayout:
    """One value of a row, in index order; ``last`` on the row's last value."""
    return data.StructLayout({"value": signed(width), "last": 1})


def topk_mask_layout(*, n_max: int) -> data.StructLayout:
    """A row's keep mask (bit i keeps value i) and how many bits are set."""
    return data.StructLayout({"mask": n_max, "count": range(n_max + 1)})


def topk_row_cycles(n: int, passes: int, comparators: int) -> int:
    """Cycles the select side spends on a row of ``n`` values with ``passes`` counting
    passes, from taking the stored row to the mask taken the cycle it is offered: a
    take cycle, ``passes * (W + 5)`` (``W = ceil(n / P)`` reads, 4 pipeline stages, a
    decision), the final pass's ``W + 4`` and the offer's cycle. ``passes`` counts the
    passes run: one per bit on which the row's values differ (at most ``width``), up to
    the one that leaves exactly the values to keep; 0 when ``k <= 0``, ``k >= n`` or
    every value is equal."""
    words = -(-n // comparators)
    return 1 + passes * (words + READ_STAGES + 1) + words + READ_STAGES + 1


def radix_passes(values, k: int, width: int) -> int:
    """Counting passes the top-k engine's radix select takes on one row (its rule in
    Python): MSB first over the sign-flipped keys, a pass only on
    the bits where the row's values differ (the others are known from the keys' OR and
    AND), stopping once the candidates left are exactly the ones to keep; 0 when
    ``k <= 0``, ``k >= n`` or every value is equal."""
    n = len(values)
    need, cand = min(max(int(k), 0), n), n
    if need in (0, n):
        return 0
    keys = [int(v) + (1 << (width - 1)) for v in values]
    any_one, all_one = 0, (1 << width) - 1
    for x in keys:
        any_one, all_one = any_one | x, all_one & x
    differ = any_one ^ all_one
    prefix, decided = all_one, ~differ            # the bits that agree are decided
    passes = 0
    for b in reversed(range(width)):
        if not differ >> b & 1:
            continue
        passes += 1
        c = sum(1 for x in keys if x & (decided | 1 << b) == prefix | 1 << b)
        if c >= need:
            prefix, cand = prefix | 1 << b, c
        else:
            need, cand = need - c, cand - c
        decided |= 1 << b
        if cand == need:
            break
    return passes


#: Registered stages between a word's read and its use: the block RAM's read register,
#: a copy of it (the RAM's clock-to-out, 5.6 ns on ECP5, stays off the compares), the
#: lanes' compare bits, and their sums (counts and the tie rule's prefix counts).
READ_STAGES = 4


class TopKEngine(wiring.Component):
    """Keep mask of the ``k`` largest of a row of at most ``n_max`` signed values.

    The row streams into one bank of a memory (``n_max / comparators`` words of
    ``comparators`` values) while the row before it is selected from the other bank.
    Selection is a radix select on the values' order-preserving unsigned keys (the
    sign bit flipped): with the bits above ``b`` decided (``prefix``), one pass reads
    the row, ``comparators`` values a cycle, and counts the ``c`` candidates (values
    that match ``prefix`` on the decided bits) whose bit ``b`` is 1. With ``need`` of
    the ``cand`` candidates still to keep, ``c >= need`` decides bit ``b`` = 1 (the
    candidates become those ``c``), else 0 (``need -= c``, ``cand -= c``). Only the
    bits on which the row's values differ get a pass: the OR and AND of the keys,
    gathered as the row streams in, give the others (and their common value) for free.
    It stops after the last such bit or as soon as ``cand == need`` (every candidate is
    kept, so the remaining bits do not matter); ``k <= 0``, ``k >= n`` and a row of
    equal values need no pass. A final pass
    in index order then keeps the values whose decided bits are above ``prefix``, and
    the first ``need`` that are equal: the lower index wins a tie, as in
    :func:`golden.spatten.topk_mask`. Cycles: :func:`topk_row_cycles`.

    Parameters
    ----------
    n_max : int
        Most values in a row (a power of two).
    width : int
        Bits of a (signed) value.
    comparators : int
        ``P``, values compared per cycle (a power of two dividing ``n_max``).

    Members
    -------
    i_value : In(stream.Signature(topk_value_layout))
        A row's values in index order; at most ``n_max`` a row, ``last`` on its last.
    k : In(range(n_max + 1))
        How many to keep; sampled with the row's first value.
    o_mask : Out(stream.Signature(topk_mask_layout))
        One mask per row, in row order: bit ``i`` keeps value ``i``, bits ``>= n`` are
        0; ``count`` is ``min(k, n)``.
    """

    def __init__(self, *, n_max: int, width: int, comparators: int):
        if n_max < 1 or n_max & (n_max - 1):
            raise ValueError(f"n_max must be a power of two, not {n_max}")
        if comparators < 1 or comparators & (comparators - 1) or n_max % comparators:
            raise ValueError(f"comparators must be a power of two dividing {n_max}, "
                             f"not {comparators}")
        self.n_max, self.width, self.comparators = n_max, width, comparators
        super().__init__({
            "i_value": In(stream.Signature(topk_value_layout(width=width))),
            "k": In(range(n_max + 1)),
            "o_mask": Out(stream.Signature(topk_mask_layout(n_max=n_max))),
        })

    @classmethod
    def from_config(cls, config, *, comparators: int | None = None):
        """An engine for one block row of ``config``'s block importances (``BI``):
        ``block_col_count`` values of ``sint_bits``, by default 8 compared a cycle."""
        n_max = config.block_col_count
        return cls(n_max=n_max, width=config.sint_bits,
                   comparators=comparators or min(8, n_max))

    def elaborate(self, platform):
        m = Module()
        P, width = self.comparators, self.width
        words = self.n_max // P
        lane_bits = clog2(P)
        n_shape = range(self.n_max + 1)
        # two banks: a row streams into bank `wbank` while the other one is read (the
        # read is always of the other bank: no collision, bram.py)
        store = bram(m, "store", shape=P * width, depth=2 * words)
        wr = store.write_port(granularity=width)
        rd = registered_read_port(m, store, name="store_rd")

        # ---- collect side: a value a cycle into bank `wbank`, lane by lane --------------
        wbank = Signal()
        c_n = Signal(n_shape)             # values of the row so far
        c_k = Signal.like(self.k)
        c_full = Signal()                 # a whole row waits in bank `wbank`
        beat = self.i_value.payload
        taking_value = self.i_value.valid & ~c_full
        # the order-preserving unsigned key: flip the sign bit
        key_in = beat.value.as_unsigned() ^ (1 << (width - 1))
        m.d.comb += [self.i_value.ready.eq(~c_full),
                     wr.addr.eq(Cat(c_n[lane_bits:lane_bits + clog2(words)], wbank)),
                     wr.data.eq(key_in.replicate(P)),
                     wr.en.eq(Mux(taking_value, 1 << c_n[:lane_bits], 0) if P > 1
                              else taking_value)]
        # k - (values so far), counted down as the row comes in: at its end `k >= n` is
        # the sign bit, with no compare of k and n on the way to the select side's FSM
        c_first = Signal(init=1)          # the next value is a row's first
        k_left = Signal(signed(len(c_n) + 1))
        k_zero = Signal()
        # the OR and AND of the row's keys: where they are equal every value agrees and
        # a pass on that bit would decide nothing
        c_or, c_and = Signal(width), Signal(width)
        with m.If(taking_value):
            m.d.sync += c_n.eq(c_n + 1)
            with m.If(c_first):
                m.d.sync += [c_k.eq(self.k), k_zero.eq(self.k == 0), k_left.eq(self.k - 1),
                             c_first.eq(0), c_or.eq(key_in), c_and.eq(key_in)]
            with m.Else():
                m.d.sync += [k_left.eq(k_left - 1),
                             c_or.eq(c_or | key_in), c_and.eq(c_and & key_in)]
            with m.If(beat.last):
                m.d.sync += [c_full.eq(1), c_first.eq(1)]
        k_ge_n = ~k_left[-1]
        c_kk = Mux(k_ge_n, c_n, c_k)      # min(k, n)
        # the bits that differ, and the highest of them, registered in a row (no priority
        # encoder on a path to the select side). The row's last value sets c_or / c_and
        # with c_full; the select side takes the row a cycle later at the earliest (cycle
        # T) and the next row's first value changes them at the end of T + 1: c_differ is
        # the row's through T + 1, c_first_bit and c_same through T + 2.
        c_differ = Signal(width)
        c_first_bit = Signal(width)
        c_same = Signal()                 # every value of the row is equal
        m.d.sync += [c_differ.eq(c_or ^ c_and), c_first_bit.eq(msb_onehot(c_differ)),
                     c_same.eq(c_differ == 0)]

        # ---- select side -------------------------------------------------------------------
        n = Signal(n_shape)
        n_words = Signal(range(words + 1))
        count = Signal(n_shape)           # min(k, n): the mask's bits
        need = Signal(n_shape)            # candidates still to keep
        cand = Signal(n_shape)            # values matching `prefix` on the decided bits
        prefix = Signal(width)
        decided = Signal(width)           # the decided bits (from the msb)
        bit = Signal(width)               # the bit this pass decides (one-hot)
        # differing bits below `bit`, still to decide; the highest of them and whether
        # there is one, registered (todo changes at most once a pass)
        todo = Signal(width)
        todo_next = Signal(width)
        todo_left = Signal()
        m.d.sync += [todo_next.eq(msb_onehot(todo)), todo_left.eq(todo.any())]
        # a row taken 1 / 2 cycles ago: its bits that agree are decided (prefix: their
        # common value, the AND's bits there), then its first bit to decide is loaded
        load1, load2 = Signal(), Signal()
        m.d.sync += [load1.eq(0), load2.eq(load1)]     # the take below sets load1
        acc = Signal(n_shape)             # this pass's count
        # final pass: equal values still to keep (below 0 once they are all kept)
        room = Signal(signed(len(need) + 1))
        mask = Signal(self.n_max)

        # reads: `issuing` a word a cycle, then READ_STAGES registered stages (s1: the
        # RAM's read register; d1: its copy; s2: the lanes' compare bits; s3: the sums)
        issuing = Signal()
        idx = Signal(range(words))
        m.d.comb += [rd.en.eq(issuing),
                     rd.addr.eq(Cat(idx, ~wbank))]
        s1_valid, s1_last = Signal(), Signal()
        s1_idx = Signal.like(idx)
        m.d.sync += [s1_valid.eq(issuing), s1_last.eq(idx == n_words - 1), s1_idx.eq(idx)]
        with m.If(issuing):
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == n_words - 1):
                m.d.sync += [issuing.eq(0), idx.eq(0)]

        # d1: the read word copied (a plain register)
        d1_valid, d1_last = Signal(), Signal()
        d1_idx = Signal.like(idx)
        d1_data = Signal(P * width, reset_less=True)
        m.d.sync += [d1_valid.eq(s1_valid), d1_last.eq(s1_last), d1_idx.eq(s1_idx),
                     d1_data.eq(rd.data)]

        s2_valid, s2_last = Signal(), Signal()
        s2_hit = Signal(P)                # counting pass: candidate with bit `bit` set
        s2_gt = Signal(P)                 # final pass: above `prefix` on the decided bits
        s2_eq = Signal(P)                 #             equal to it
        s2_idx = Signal.like(idx)
        m.d.sync += [s2_valid.eq(d1_valid), s2_last.eq(d1_last), s2_idx.eq(d1_idx)]
        for j in range(P):
            key = d1_data[j * width:(j + 1) * width]
            present = (d1_idx * P + j) < n     # lanes past the row's end hold stale words
            m.d.sync += [
                s2_hit[j].eq(present & ((key & (decided | bit)) == (prefix | bit))),
                s2_gt[j].eq(present & ((key & decided) > prefix)),
                s2_eq[j].eq(present & ((key & decided) == prefix)),
            ]

        # s3: the sums, registered: the pass's count of hits, and for the tie rule each
        # lane's count of equal values in the lanes below it (was on the mask's path)
        lane_count = range(P + 1)
        s3_valid, s3_last = Signal(), Signal()
        s3_idx = Signal.like(idx)
        s3_gt, s3_eq = Signal(P), Signal(P)
        s3_hits, s3_eqs = Signal(lane_count), Signal(lane_count)
        s3_below = [Signal(lane_count, name=f"s3_below{j}") for j in range(P)]
        m.d.sync += [s3_valid.eq(s2_valid), s3_last.eq(s2_last), s3_idx.eq(s2_idx),
                     s3_gt.eq(s2_gt), s3_eq.eq(s2_eq),
                     s3_hits.eq(tree_sum(s2_hit[j] for j in range(P))),
                     s3_eqs.eq(tree_sum(s2_eq[j] for j in range(P)))]
        for j in range(P):
            m.d.sync += s3_below[j].eq(tree_sum(s2_eq[i] for i in range(j)) if j else 0)
        s3_word = Signal(words)           # one-hot s3_idx: the mask word it writes
        m.d.sync += s3_word.eq(1 << s2_idx)

        # the final pass's mask writes, off the FSM's state decode (`in_final`, a flag
        # of its own) and off s3_idx's decode: the mask's enables were the deepest path
        in_final = Signal()
        deciding = Signal()               # the FSM is in DECIDE
        keep = Signal(P)
        # lane j keeps an equal value while fewer than `room` equal ones of this word's
        # lower lanes came before it: the lower index wins a tie
        m.d.comb += keep.eq(Cat(*(s3_gt[j] | (s3_eq[j] & (s3_below[j] < room))
                                  for j in range(P))))

        with m.FSM(name="topk"):
            with m.State("IDLE"):
                with m.If(c_full):
                    m.d.sync += [n.eq(c_n), n_words.eq((c_n + P - 1) >> lane_bits),
                                 count.eq(c_kk), need.eq(c_kk), room.eq(c_kk), cand.eq(c_n),
                                 wbank.eq(~wbank), c_full.eq(0), c_n.eq(0),
                                 issuing.eq(1), load1.eq(1)]
                    # k <= 0 or k >= n: nothing to decide
                    with m.If(k_zero | k_ge_n):
                        m.d.sync += in_final.eq(1)
                        m.next = "FINAL"
                    with m.Else():
                        m.next = "COUNT"
            with m.State("COUNT"):
                # a row of equal values: no bit to decide; this pass (its first s3 is 3
                # cycles away) is the final one
                with m.If(load2 & c_same):
                    m.d.sync += in_final.eq(1)
                    m.next = "FINAL"
                with m.If(s3_valid):
                    m.d.sync += acc.eq(acc + s3_hits)
                    with m.If(s3_last):
                        m.d.sync += deciding.eq(1)
                        m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.sync += [issuing.eq(1), deciding.eq(0)]
                # done when every candidate is kept (new cand == new need): acc == need
                # (a 0 bit leaves cand - need as it was, above 0)
                with m.If((acc == need) | ~todo_left):
                    m.d.sync += in_final.eq(1)
                    m.next = "FINAL"
                with m.Else():
                    m.next = "COUNT"
            with m.State("FINAL"):
                with m.If(s3_valid):
                    m.d.sync += room.eq(room - s3_eqs)
                    with m.If(s3_last):
                        m.d.sync += in_final.eq(0)
                        m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o_mask.valid.eq(1)
                with m.If(self.o_mask.ready):
                    # cleared for the next row (acc is 0 after every DECIDE already)
                    m.d.sync += mask.eq(0)
                    m.next = "IDLE"
        # a pass's decision and a new row's first bits, on flags of their own (the FSM's
        # state decode on these registers' enables was the deepest path). The first
        # word read reaches the compares (s2) in cycle T + 3, after both loads.
        with m.If(load1):
            # (the AND is 0 on the bits that differ)
            m.d.sync += [prefix.eq(c_and), decided.eq(~c_differ),
                         todo.eq(c_differ)]
        with m.If(load2):
            m.d.sync += [bit.eq(c_first_bit), todo.eq(todo & ~c_first_bit)]
        with m.If(deciding):
            ones = acc >= need
            new_need = Mux(ones, need, need - acc)
            m.d.sync += [need.eq(new_need), room.eq(new_need),
                         cand.eq(Mux(ones, acc, cand - acc)), acc.eq(0),
                         prefix.eq(Mux(ones, prefix | bit, prefix)),
                         decided.eq(decided | bit), bit.eq(todo_next),
                         todo.eq(todo & ~todo_next)]
        for w in range(words):
            with m.If(in_final & s3_valid & s3_word[w]):
                m.d.sync += mask.word_select(w, P).eq(keep)
        m.d.comb += [self.o_mask.payload.mask.eq(mask), self.o_mask.payload.count.eq(count)]
        return m
