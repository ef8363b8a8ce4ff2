"""Top-k engine: the keep mask of the k largest values of a row (SpAtten's top-k unit,
issue 12; not yet behind the selection seam).

Bit-exact with :func:`golden.spatten.topk_mask` (the lower index wins a tie). The
k-th largest value is found by a radix-16 select, most significant digit first, over a
row stored in a two-bank memory of ``comparators`` values a word, on the values less
the row's minimum, shifted left so that the span's bits are a whole number of digits
(the first digit holds the span's 4 highest bits); each pass reads only the words that
still hold a candidate, and a
final pass over those keeps the values above the last bucket and the first equal ones.
Cycles: :func:`select_plan` (the RTL's, cycle for cycle).
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..widths import clog2
from .arith import tree_sum
from .bram import bram, registered_read_port


def tree_or(values):
    """The OR of ``values`` as a balanced tree."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] | values[i + 1] for i in range(0, len(values) - 1, 2)] + (
            [values[-1]] if len(values) % 2 else [])
    return values[0]

__all__ = ["TopKEngine", "topk_value_layout", "topk_mask_layout", "select_plan",
           "topk_select_cycles", "radix_passes", "RADIX_BITS", "PASS_GAP", "FINAL_TAIL"]


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


#: Bits of a digit: a counting pass sorts the candidates into ``2**RADIX_BITS`` buckets.
RADIX_BITS = 4

#: Cycles from a pass's last word read to the next pass's first (3 idle read slots: the
#: pass's decision, its bucket a cycle after its last count, is in by the time the next
#: pass's first word is compared; the next pass reads only the words still holding a
#: candidate, its first entry chosen the cycle the last word's entry is written).
PASS_GAP = 4

#: Cycles from the final pass's last word issued to the mask taken (the word's read and
#: key, its compares, the tie rule's counts, the mask's write, the offer's cycle).
FINAL_TAIL = 6


def select_plan(values, k: int, width: int, comparators: int) -> dict:
    """The top-k engine's select side on one row, in Python, as the RTL runs it, cycle
    for cycle: ``{"cycles", "passes", "words"}``. ``cycles`` counts from taking the
    stored row to the mask taken the cycle it is offered; ``passes`` the counting
    passes (at most ``ceil(width / RADIX_BITS)``); ``words`` the words each pass read,
    the final pass last.

    The keys are the values less the row's minimum (order-preserving, in ``[0,
    span]``), shifted left by ``-len(span) % RADIX_BITS`` bits (``len``: the bit length)
    so that the span's top digit holds its ``RADIX_BITS`` highest bits, cut into
    ``RADIX_BITS``-bit digits from bit 0 up; the first counting pass takes the highest
    digit that is not 0 in the (shifted) ``span``. A pass reads the words that hold
    a candidate (the first two: every word of the row); it drops the values below the
    previous pass's bucket, keeps (in the mask) the values above it, and counts the
    candidates left in each bucket of its own digit; its bucket is the one that holds
    the ``need``-th largest of them. It stops when the candidates left are exactly the
    ones to keep or no digit is left; ``k <= 0``, ``k >= n`` and a row of equal values
    take no counting pass. A final pass reads the words still holding a candidate and
    keeps the values above the last bucket and the first ``need`` in it."""
    n, P, R = len(values), comparators, RADIX_BITS
    if n == 0:
        raise ValueError("a row has at least one value")
    words = -(-n // P)
    lo = min(int(v) for v in values)
    keys = [int(v) - lo for v in values]
    # shifted left so the span's bits are a whole number of digits: its top digit
    # holds its 4 highest bits (the first pass sorts into 16 buckets, not 2)
    shift = -max(keys).bit_length() % R
    keys = [x << shift for x in keys]
    span = max(keys)
    ngroups = -(-width // R)

    def digit(x, g):
        return (x >> (R * g)) & ((1 << R) - 1) if g < ngroups else 0

    need = min(max(int(k), 0), n)
    cand = [True] * n
    gp, bp = -(-span.bit_length() // R), 0       # the digit above the top one: all 0
    final = need in (0, n) or span == 0
    issue, passes, read = 1, 0, []
    while True:
        live = sum(1 for w in range(words) if any(cand[w * P:(w + 1) * P]))
        last = issue + live - 1
        read.append(live)
        if final:
            return {"cycles": last + FINAL_TAIL, "passes": passes, "words": read}
        cand = [c and digit(x, gp) == bp for c, x in zip(cand, keys)]
        gp -= 1
        at_least = [sum(1 for c, x in zip(cand, keys) if c and digit(x, gp) >= b)
                    for b in range(1 << R)] + [0]
        bp = max(b for b in range(1 << R) if at_least[b] >= need)
        done = at_least[bp] == need              # the bucket's candidates: all kept
        need -= at_least[bp + 1]
        passes += 1
        final = done or gp == 0
        issue = last + PASS_GAP


def topk_select_cycles(values, k: int, width: int, comparators: int) -> int:
    """Cycles the select side spends on a row (:func:`select_plan`'s ``cycles``): a
    take cycle, each pass's words read a word a cycle, ``PASS_GAP - 1`` idle cycles
    between passes and ``FINAL_TAIL`` after the final pass's last word. With no
    counting pass (``k <= 0``, ``k >= n``, equal values): ``W + 6``, ``W = ceil(n /
    P)``."""
    return select_plan(values, k, width, comparators)["cycles"]


def radix_passes(values, k: int, width: int) -> int:
    """Counting passes the top-k engine takes on one row (:func:`select_plan`; they do
    not depend on the comparators)."""
    return select_plan(values, k, width, 1)["passes"]


class TopKEngine(wiring.Component):
    """Keep mask of the ``k`` largest of a row of at most ``n_max`` signed values.

    The row streams into one bank of a memory (``n_max / comparators`` words of
    ``comparators`` values) while the row before it is selected from the other bank.
    Selection is a radix-``2**RADIX_BITS`` select, most significant digit first, on
    keys that are the values less the row's minimum (order-preserving; the minimum and
    maximum are gathered as the row streams in, the first digit counted is the
    span's highest that is not 0, so a narrow row of either sign needs few digits),
    shifted left by 0 .. ``RADIX_BITS - 1`` bits so that the span's bits are a whole
    number of digits: the first pass sorts into 16 buckets whatever the span.
    The state is a candidate bit per value and the mask. A counting pass reads words,
    ``comparators`` values a cycle; each value that is a candidate is compared with
    the previous pass's bucket on the previous digit: above it, it is kept (its mask
    bit set) and no candidate any more; below, dropped; in it, it stays a candidate
    and is counted in every bucket ``b`` of its next digit with ``digit >= b``
    (``R_b``, counted down from ``-need``). The pass's bucket is the highest ``b``
    with ``R_b >= 0``; ``need`` becomes ``-R_{b+1}``. The first pass reads every word
    of the row (the bucket "above the top digit" holds every value), each later pass
    only the words its predecessor left a candidate in, from a list that predecessor
    wrote (ping-pong in a small LUT RAM: no priority encoder on the address). It stops
    when the bucket's candidates are exactly the ones to keep (``R_b == 0``) or the
    last digit is decided; ``k <= 0``, ``k >= n`` and a row of equal values count
    nothing. The final pass, over the words still holding a candidate, keeps the
    values above the last bucket and the first ``need`` in it, in index order: the
    lower index wins a tie, as in :func:`golden.spatten.topk_mask`. Cycles:
    :func:`select_plan`.

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
        P, width, R = self.comparators, self.width, RADIX_BITS
        words = self.n_max // P
        lane_bits = clog2(P)
        ngroups = -(-width // R)
        buckets = 1 << R
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
        # the row's smallest and largest keys: the select side's keys are the values
        # less the smallest (order-preserving), its first digit the span's highest
        c_min, c_max = Signal(width), Signal(width)
        with m.If(taking_value):
            m.d.sync += c_n.eq(c_n + 1)
            with m.If(c_first):
                m.d.sync += [c_k.eq(self.k), k_zero.eq(self.k == 0), k_left.eq(self.k - 1),
                             c_first.eq(0), c_min.eq(key_in), c_max.eq(key_in)]
            with m.Else():
                m.d.sync += [k_left.eq(k_left - 1),
                             c_min.eq(Mux(key_in < c_min, key_in, c_min)),
                             c_max.eq(Mux(key_in > c_max, key_in, c_max))]
            with m.If(beat.last):
                m.d.sync += [c_full.eq(1), c_first.eq(1)]
        k_ge_n = ~k_left[-1]
        c_kk = Mux(k_ge_n, c_n, c_k)      # min(k, n)

        # ---- select side -------------------------------------------------------------------
        n = Signal(n_shape)
        count = Signal(n_shape)           # min(k, n): the mask's bits
        s_min = Signal(width)
        span = Signal(width)              # the row's largest key less its smallest
        # the keys less the row's minimum are shifted left by `shift` (0 .. R - 1): the
        # span's bits are then a whole number of digits, its top digit its R highest
        # bits (a narrow row's first pass sorts into 2**R buckets, not 2)
        shift = Signal(range(R))
        kw = min(width + R - 1, R * ngroups)   # bits of a shifted key
        neg_need = Signal(signed(len(n) + 1))   # -(candidates still to keep)
        room = Signal(signed(len(n) + 1))       # final pass: equal values still to keep
        # the digit the compares decide on (one-hot; digit ngroups is 0), the digit counted
        # is the one below it
        gp = Signal(ngroups + 1)
        bp = Signal(R)                    # ... and its bucket
        in_final = Signal()               # the pass now compared is the final one
        cand = Signal(self.n_max)         # values still candidates
        mask = Signal(self.n_max)
        # R_b = (candidates whose digit is >= b) - need, counted through a pass
        acc = [Signal(signed(len(n) + 1), name=f"acc{b}") for b in range(buckets)]

        load1, load2 = Signal(), Signal()   # a row taken 1 / 2 cycles ago
        m.d.sync += [load1.eq(0), load2.eq(load1)]
        # the digits the span needs: the digit above the first one counted, one-hot
        nonzero = [(span >> (R * g)).any() for g in range(ngroups)] + [Const(0)]
        span_digits = Cat(~nonzero[0], *(nonzero[g - 1] & ~nonzero[g]
                                         for g in range(1, ngroups + 1)))
        # the span's bit length mod R, from its highest set bit: shift = -length mod R
        span_msb = msb_onehot(span)
        shift_now = Cat(*(Cat(*(span_msb[b] for b in range(width)
                                if ((R - 1 - b) % R) >> i & 1)).any()
                          for i in range(len(shift))))
        with m.If(load1):
            m.d.sync += shift.eq(shift_now)
        with m.If(load2):
            m.d.sync += gp.eq(span_digits)

        # ---- reads: a word a cycle from a list of the words to read -----------------------
        # A pass writes the words that still hold a candidate after its compares into one
        # list (in word order), the next pass reads them from it (ping-pong); the first
        # pass reads words 0 .. W - 1. No priority encoder on the way to the address.
        # (the two lists: halves of a small memory, LUT RAM; a pass reads one half while
        # its compares write the other)
        lists = memory.Memory(shape=range(words), depth=2 * words, init=[])
        m.submodules.lists = lists
        list_rd = lists.read_port(domain="comb")
        list_wr = lists.write_port()
        rsel = Signal()                   # the list this pass reads
        first = Signal()                  # the row's first pass: word w is entry w
        ptr = Signal(range(words + 1))    # the next entry to read
        last_entry = Signal(range(words)) # the list's last entry
        wptr = Signal(range(words + 1))   # entries written for the next pass
        issuing = Signal()                # a pass is choosing words
        rd_en, rd_last = Signal(), Signal()
        rd_idx = Signal(range(words))
        m.d.comb += [rd.en.eq(rd_en), rd.addr.eq(Cat(rd_idx, ~wbank)),
                     list_rd.addr.eq(Cat(ptr[:len(rd_idx)], rsel))]
        gap = Signal(range(PASS_GAP))     # idle cycles left before the next pass
        m.d.sync += rd_en.eq(0)
        fresh = Signal()                  # a pass's first entry (not the row's first pass)
        wsel = Signal()                   # the list the compares write
        # a pass after a counting pass of one word starts a cycle before that pass's
        # in_final is in: it stops in its first cycle (the FSM goes to DRAIN2)
        abort = Signal()
        s3_idx, s3_live = Signal(range(words)), Signal()   # (s3, below)
        m.d.comb += abort.eq(issuing & fresh & in_final)
        with m.If(issuing):
            entry = list_rd.data
            # in the pass's first cycle the previous pass's last word may still be
            # writing its entry (s3, below): entry 0 if the list holds it alone
            only = Mux(s3_live, wptr == 0, wptr == 1)
            is_last = Mux(fresh, only, ptr == last_entry)
            idx = Mux(first, ptr, Mux(fresh & (wptr == 0), s3_idx, entry))
            m.d.sync += [rd_en.eq(~abort), rd_idx.eq(idx), rd_last.eq(is_last),
                         ptr.eq(ptr + 1), fresh.eq(0)]
            with m.If(is_last | abort):
                m.d.sync += [issuing.eq(0), gap.eq(PASS_GAP - 2)]

        # s1: the RAM's read register; the word's candidates and lanes in the row
        s1_valid, s1_last = Signal(), Signal()
        s1_idx = Signal.like(rd_idx)
        m.d.sync += [s1_valid.eq(rd_en), s1_last.eq(rd_last), s1_idx.eq(rd_idx)]
        # s2: the keys less the row's minimum
        s2_valid, s2_last = Signal(), Signal()
        s2_idx = Signal.like(rd_idx)
        s2_cand = Signal(P)
        s2_key = [Signal(kw, name=f"s2_key{j}") for j in range(P)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_idx.eq(s1_idx)]
        cand_word = cand.word_select(s1_idx, P)
        for j in range(P):
            present = (s1_idx * P + j) < n     # lanes past the row's end hold stale words
            m.d.sync += [s2_cand[j].eq(cand_word[j] & present),
                         s2_key[j].eq((rd.data[j * width:(j + 1) * width] - s_min)[:width]
                                      << shift)]

        # s3: each lane against the last decision (above its bucket: kept; in it: still a
        # candidate), and where its next digit is (>= b, b = 1 .. buckets - 1)
        def digit(key, onehot):
            padded = Cat(key, Const(0, R * (ngroups + 1) - kw))
            return Cat(*(Cat(*(onehot[g] & padded[R * g + i] for g in range(len(onehot)))).any()
                         for i in range(R)))

        s3_valid, s3_last = Signal(), Signal()
        s3_word = Signal(words)           # one-hot s3's word
        s3_eq, s3_above = Signal(P), Signal(P)
        s3_ge = [Signal(buckets, name=f"s3_ge{j}") for j in range(P)]   # bit 0: 1
        m.d.sync += [s3_valid.eq(s2_valid), s3_last.eq(s2_last), s3_word.eq(1 << s2_idx)]
        for j in range(P):
            dprev = digit(s2_key[j], gp)
            dcur = digit(s2_key[j], gp[1:])
            m.d.sync += [s3_eq[j].eq(s2_cand[j] & (dprev == bp)),
                         s3_above[j].eq(s2_cand[j] & (dprev > bp)),
                         s3_ge[j].eq(Cat(Const(1), *(dcur >= b for b in range(1, buckets))))]
        for w in range(words):
            with m.If(s3_valid & s3_word[w]):
                m.d.sync += cand.word_select(w, P).eq(s3_eq)
        m.d.sync += s3_idx.eq(s2_idx)
        m.d.comb += s3_live.eq(s3_valid & s3_eq.any())
        m.d.comb += [list_wr.addr.eq(Cat(wptr[:len(rd_idx)], wsel)),
                     list_wr.data.eq(s3_idx), list_wr.en.eq(s3_live)]
        with m.If(s3_live):
            m.d.sync += wptr.eq(wptr + 1)
        # a pass's first cycle: the previous pass's list is complete with this cycle's
        # entry; the next list goes to the other half
        with m.If(issuing & fresh):
            m.d.sync += [last_entry.eq(wptr + s3_live - 1), wptr.eq(0), wsel.eq(~wsel)]

        # s4: the counts of a bucket or above, the word's equal values, and for the tie
        # rule each lane's count of equal values in the lanes below it
        lane_count = range(P + 1)
        s4_valid, s4_last = Signal(), Signal()
        s4_word = Signal(words)
        s4_eq, s4_above = Signal(P), Signal(P)
        s4_hits = [Signal(lane_count, name=f"s4_hits{b}") for b in range(buckets)]
        s4_eqs = Signal(lane_count)
        s4_below = [Signal(lane_count, name=f"s4_below{j}") for j in range(P)]
        m.d.sync += [s4_valid.eq(s3_valid), s4_last.eq(s3_last), s4_word.eq(s3_word),
                     s4_eq.eq(s3_eq), s4_above.eq(s3_above),
                     s4_eqs.eq(tree_sum(s3_eq[j] for j in range(P)))]
        for b in range(buckets):
            m.d.sync += s4_hits[b].eq(tree_sum(s3_eq[j] & s3_ge[j][b] for j in range(P)))
        for j in range(P):
            m.d.sync += s4_below[j].eq(tree_sum(s3_eq[i] for i in range(j)) if j else 0)

        # the mask: values above the last bucket, and in the final pass the equal ones
        # while fewer than `room` came before them (the lower index wins a tie)
        keep = Cat(*(s4_above[j] | (in_final & s4_eq[j] & (s4_below[j] < room))
                     for j in range(P)))
        for w in range(words):
            for j in range(P):
                with m.If(s4_valid & s4_word[w] & keep[j]):
                    m.d.sync += mask[w * P + j].eq(1)
        with m.If(s4_valid & in_final):
            m.d.sync += room.eq(room - s4_eqs)

        # s5: the pass's counts, then its decision: the highest bucket b with R_b >= 0
        acc_last = Signal()
        m.d.sync += acc_last.eq(s4_valid & s4_last & ~in_final)
        with m.If(s4_valid & ~in_final):
            m.d.sync += [acc[b].eq(acc[b] + s4_hits[b]) for b in range(buckets)]
        # the decision, in two registered steps: the bucket (one-hot and binary) and the
        # next digit, in by the next pass's first compare (the cycle after), and whether
        # it holds exactly the ones to keep; then the new need (R of the bucket above),
        # in_final and the counts' reset
        ge = Cat(*(~a[-1] for a in acc), Const(0, 1))
        chosen, chosen_zero = Signal(buckets), Signal(buckets)
        d2, decided = Signal(), Signal()
        m.d.sync += [d2.eq(acc_last), decided.eq(d2)]
        onehot = Cat(*(ge[b] & ~ge[b + 1] for b in range(buckets)))
        new_bp = Cat(*(Cat(*(onehot[b] for b in range(buckets) if b >> bit & 1)).any()
                       for bit in range(R)))
        with m.If(acc_last):
            m.d.sync += [chosen.eq(onehot), chosen_zero.eq(Cat(*(a == 0 for a in acc))),
                         bp.eq(new_bp), gp.eq(gp[1:])]
        below_next = [acc[b + 1] if b + 1 < buckets else neg_need for b in range(buckets)]
        new_neg_need = Signal.like(neg_need)
        m.d.comb += new_neg_need.eq(
            tree_or(below_next[b].as_unsigned() & chosen[b].replicate(len(neg_need))
                    for b in range(buckets)))
        done = (chosen & chosen_zero).any()
        with m.If(d2):
            m.d.sync += [neg_need.eq(new_neg_need), in_final.eq(done | gp[0])]
            m.d.sync += [a.eq(new_neg_need) for a in acc]
        # the final pass's room: need, a cycle after the decision (its first tie-rule
        # count is the cycle after)
        with m.If(decided):
            m.d.sync += room.eq(-neg_need)

        # ---- the passes ------------------------------------------------------------------
        with m.FSM(name="topk"):
            with m.State("IDLE"):
                with m.If(c_full):
                    m.d.sync += [n.eq(c_n), count.eq(c_kk), room.eq(c_kk),
                                 neg_need.eq(-c_kk), s_min.eq(c_min),
                                 span.eq(c_max - c_min),
                                 bp.eq(0), cand.eq(~0),
                                 wbank.eq(~wbank), c_full.eq(0), c_n.eq(0), load1.eq(1),
                                 # the first pass reads every word: word 0 first
                                 first.eq(1), ptr.eq(1), wptr.eq(0),
                                 last_entry.eq((c_n - 1) >> lane_bits),
                                 rd_en.eq(1), rd_idx.eq(0), rd_last.eq(c_n <= P),
                                 issuing.eq(c_n > P), gap.eq(PASS_GAP - 2),
                                 # k <= 0 or k >= n or equal values: nothing to decide
                                 in_final.eq(k_zero | k_ge_n | (c_min == c_max))]
                    m.d.sync += [a.eq(-c_kk) for a in acc]
                    m.next = "PASS"
            with m.State("PASS"):
                # the next pass (counting or final: known by its first compare) starts
                # PASS_GAP cycles after this one's last read; after the final one, the
                # mask's last write lands the cycle after DRAIN2
                with m.If(~issuing):
                    with m.If(gap != 0):
                        m.d.sync += gap.eq(gap - 1)
                    with m.Elif(in_final):
                        m.next = "DRAIN"
                    with m.Else():
                        # (the last word's compares may still add to the list next
                        # cycle: its entries are counted then, `fresh`)
                        m.d.sync += [issuing.eq(1), fresh.eq(1), ptr.eq(0), first.eq(0),
                                     rsel.eq(wsel)]
                # a one-word pass after a counting pass ends before its in_final is
                # in: the next one starts, and stops in its first cycle (`abort`) for
                # DRAIN2, the cycle DRAIN would have taken it there
                with m.If(abort):
                    m.next = "DRAIN2"
            with m.State("DRAIN"):
                m.next = "DRAIN2"
            with m.State("DRAIN2"):
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o_mask.valid.eq(1)
                with m.If(self.o_mask.ready):
                    m.d.sync += mask.eq(0)
                    m.next = "IDLE"
        m.d.comb += [self.o_mask.payload.mask.eq(mask), self.o_mask.payload.count.eq(count)]
        return m
