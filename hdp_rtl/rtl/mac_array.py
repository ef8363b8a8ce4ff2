"""MAC array with the approximation unit (spec steps 5 and 7)."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import widths as W
from .arith import lut_multiply, tree_or, tree_sum
from .bram import bram, registered_read_port
from .layouts import out_chunk_signature, pair_layout, prob_layout, score_layout
from .outqueue import credit_room, output_queue
from .rowmem import RowReadSignature, word_addr

__all__ = ["MacArray", "SUM_GROUP", "sum_levels", "score_latency", "ROW_LATENCY",
           "ACC_RAM_MIN_CHUNKS"]


#: Lanes summed in one registered group: the lane term (product less the
#: approximation) and a 4-term tree are three adder levels (ECP5: about 3 ns an adder
#: level); the sums of the groups are summed in groups of 4 in turn, registered.
SUM_GROUP = 4


def sum_levels(lanes: int) -> int:
    """Registered stages that sum ``lanes`` lane terms: the sums of groups of
    ``SUM_GROUP``, then of groups of those, until one is left; two at least (the group
    sums and their sum, as up to 16 lanes always had), three for 32 or 64 lanes."""
    levels, groups = 1, -(-lanes // SUM_GROUP)
    while groups > 1 or levels < 2:
        levels, groups = levels + 1, -(-groups // SUM_GROUP)
    return levels


def score_latency(lanes: int) -> int:
    """Cycles from a score operation's last chunk in the issue stage to its score on
    ``o_score`` (the row words' copy, operands, products, the :func:`sum_levels` sum
    stages, score register): 6 up to 16 lanes."""
    return 4 + sum_levels(lanes)


#: Cycles from a P x V operation's chunk to the row's output chunk on ``o_chunk`` (the
#: copy, operands, products, the rotating accumulators' tail, the chunk rounded from
#: the tail); the same with the accumulators in block RAM (``acc_ram``).
ROW_LATENCY = 5
#: With ``acc_ram``, a chunk's word is read (address in stage 1) 2 cycles before its new
#: sums are written back (from the stage-3 register): the next operation's read of the
#: same word, ``head_dim / mac_lanes`` cycles after this one at the earliest, must come
#: after that write, so at least 3 chunks an operation (4: chunks are powers of two).
ACC_RAM_MIN_CHUNKS = 3


class MacArray(wiring.Component):
    """``mac_lanes`` lanes shared by the scores of kept pairs and by ``P x V``.

    Each operation (a kept pair's score, or one probability times a V row) takes
    ``head_dim / mac_lanes`` cycles, one chunk of ``mac_lanes`` elements a cycle; the
    row it needs is read in the last cycle of the operation before, so operations
    follow each other without a bubble. When both inputs have work they alternate.

    Pipelined for the clock: operands, products (in the DSP's output register), the
    sums of groups of ``SUM_GROUP`` lanes and then the sum of the groups (of groups of
    groups, with more than 16 lanes: :func:`sum_levels`) are each registered, so a
    score leaves :func:`score_latency` cycles (6 up to 16 lanes) after its last chunk was
    issued (its register filled from the running sum of its chunks) and an output
    chunk ``ROW_LATENCY`` = 5. The pipeline never stalls: no output's ``ready`` reaches
    it. Instead an operation is issued only when its result is sure to have room, on
    credits held in registers: a pair while one of the ``score_depth`` places for
    scores (the ``o_score`` register and a FIFO behind it) is unclaimed, a row's last
    probability while one of the ``out_rows`` places for output rows (the serializer's
    row RAM) is (given back on ``i_row_free``). ``score_depth`` covers the scores in
    flight at full rate, so scores go out one per ``head_dim / mac_lanes`` cycles.

    Each lane has one hard multiplier, ``q x k`` for a score and ``p x v`` for P x V:
    ``q.k`` is the exact score ``S_int*2^2F + (qi.kf + qf.ki)*2^F + qf.kf``. With
    ``approximation`` built and ``approx_enable`` set, the approximation unit subtracts
    ``qf.kf``, an ``F x F`` product built in LUTs (:func:`~.arith.lut_multiply`), which
    gives the spec's approximate score. A lane costs one DSP whatever the mode: the
    approximation only adds LUTs and changes the result, so the presets leave it out.
    P x V accumulates ``head_dim`` sums of ``p * v`` in rotating accumulators: a ring
    of ``head_dim / mac_lanes`` stages of ``mac_lanes`` sums that moves by one stage a
    P x V chunk (operations run their chunks in order, back to back), so its head is
    always the chunk being updated and only ``mac_lanes`` adders exist, not
    ``head_dim``, each ``head + p * v`` into the tail. A row's last probability writes
    each chunk's finished sums ``round(sum / 2^out_shift)``, saturated to ``out_bits``,
    to ``o_chunk`` (``mac_lanes`` rounding and saturating circuits, not ``head_dim``),
    the cycle after the tail took them, ``last`` on the row's last chunk; the ring
    restarts those sums at half an output step. The array holds no output row: the
    serializer keeps rows in a block RAM. Against one accumulator with its own adder per element, the rotation
    keeps the flip-flops and the latency and saves ``head_dim - mac_lanes`` adders and
    rounding and saturating circuits: on the edge preset (``head_dim`` 32, 4 lanes,
    iCE40) the array went from 3275 to 1235 LUT and 856 to 156 carry cells, on the
    default (64, 16 lanes, ECP5, the unit alone) from 5971 to 3060 LUT4 and 1090 to 370
    CCU2C.

    With ``acc_ram`` the ring lives in a block RAM instead of flip-flops, for FPGAs
    whose flip-flops run out first: one word of ``mac_lanes`` sums per chunk, read for
    the chunk's update (its address in stage 1, the word with the products in stage
    2) and written back from the ``mac_lanes`` sums' register (stage 3, the ring's tail
    before), which the output row is still rounded from; a word ``head_dim /
    mac_lanes`` holds ``half``, which a row's first operation reads instead of its
    chunks' words (written from the tail's reset value in the cycle after a reset, so a
    reset mid-row leaves no stale sum). Same latency and results; needs at least
    ``ACC_RAM_MIN_CHUNKS`` chunks (a word is read again ``head_dim / mac_lanes`` cycles
    after its last read at the earliest, and written back 2 cycles after it).

    Parameters
    ----------
    seq_max, head_dim, int_bits, frac_bits, mac_lanes, prob_bits, out_bits, out_frac : int
        As in :class:`~hdp_rtl.config.HDPConfig`.
    acc_ram : bool
        The P x V accumulators in block RAM (:class:`~hdp_rtl.config.HDPConfig`'s
        ``pv_acc_ram``).
    out_rows : int
        Places for output rows downstream (``HDPConfig.out_row_buffers``): the credits
        of a row's last probability.
    approximation : bool
        Build the approximation unit (``HDPConfig.approximation``) and its
        ``approx_enable`` port; without it every score is exact.
    channel_skip : bool
        ``HDPConfig.channel_pruning`` (with more than one chunk): a score operation
        runs the chunks ``0 .. score_last_chunk`` only (the channel mask's kept
        channels fill the first chunks; Q is 0 in the others, so their products are):
        ``score_last_chunk + 1`` cycles a score instead of ``head_dim / mac_lanes``,
        the same scores; P x V runs every chunk. ``score_depth`` then covers scores of
        one chunk.

    Members
    -------
    approx_enable : In(1)
        With ``approximation``: run-time register, stable during a head.
    q_rd, k_rd, v_rd : In(RowReadSignature)
        Row-buffer read ports (one cycle latency).
    i_pair : In(stream.Signature(pair_layout))
        Kept pairs ``(row, col)``; ``last`` ends a row.
    o_score : Out(stream.Signature(score_layout))
        Each pair's score, ``col`` and ``last`` copied.
    i_prob : In(stream.Signature(prob_layout))
        The probabilities of a row's kept pairs; ``last`` ends the row.
    o_chunk : Out(out_chunk_signature)
        One output row per probability row, a chunk of ``mac_lanes`` outputs a cycle
        (chunks in order, ``last`` on the row's last); no ``ready``: sent on a credit.
    i_row_free : In(1)
        The consumer freed a row's place (one pulse per row, rows in order).
    busy_mac : Out(1)
        High in each cycle the lanes do useful work.
    score_last_chunk : In(range(head_dim // mac_lanes))
        With ``channel_skip``: a score's last chunk (run-time), stable during a head.
    score_depth : int
        Places for scores (attribute, not a port): the credits of ``i_pair``.
    acc_ram_hazard : Signal
        With ``acc_ram`` (attribute, not a port; for the formal check): high in a cycle
        the accumulator RAM is read at a word that is written in that cycle or the next
        (never).

    Every pair reads its Q and K rows (in the cycle the pair is taken), so the array
    keeps no row across operations and may share its read ports with another unit
    between heads.
    """

    def __init__(self, *, seq_max: int, head_dim: int, int_bits: int, frac_bits: int,
                 mac_lanes: int, prob_bits: int, out_bits: int, out_frac: int,
                 word_elems: int | None = None, acc_ram: bool = False, out_rows: int = 2,
                 channel_skip: bool = False, approximation: bool = False):
        self.seq_max, self.head_dim = seq_max, head_dim
        self.approximation = approximation and frac_bits > 0
        self.word_elems = word_elems = word_elems or head_dim
        if word_elems % mac_lanes or head_dim % word_elems:
            raise ValueError(f"word_elems must be a multiple of mac_lanes ({mac_lanes}) "
                             f"and divide head_dim ({head_dim}), not {word_elems}")
        self.I, self.F, self.B = int_bits, frac_bits, int_bits + frac_bits
        self.lanes, self.P = mac_lanes, prob_bits
        self.out_bits = out_bits
        self.out_shift = W.out_shift(frac_bits=frac_bits, prob_bits=prob_bits, out_frac=out_frac)
        self.seq_bits = W.index_bits(seq_max)
        self.score_bits = W.score_bits(data_bits=self.B, head_dim=head_dim)
        self.acc_bits = W.pv_acc_bits(prob_bits=prob_bits, data_bits=self.B, seq_max=seq_max)
        chunks = head_dim // mac_lanes
        self.channel_skip = channel_skip = channel_skip and chunks > 1
        self.acc_ram = acc_ram
        self.out_rows = out_rows
        if acc_ram and (chunks < ACC_RAM_MIN_CHUNKS or chunks & (chunks - 1)):
            raise ValueError(f"acc_ram needs head_dim / mac_lanes >= {ACC_RAM_MIN_CHUNKS}, "
                             f"a power of two, not {chunks}")
        if acc_ram:
            self.acc_ram_hazard = Signal()
        #: Places for scores (the o_score register and a FIFO behind it): a credit is
        #: out from a pair's acceptance until its score is handed on, chunks + 6 cycles
        #: at best, while pairs are accepted every chunks cycles; one more absorbs a
        #: cycle of o_score backpressure without a bubble. With channel_skip for scores
        #: of one chunk (accepted every cycle).
        fewest = 1 if channel_skip else chunks
        self.score_depth = -(-(fewest + score_latency(mac_lanes) + 1) // fewest) + 1
        rd = RowReadSignature(seq_max=seq_max, head_dim=head_dim, data_bits=self.B,
                              word_elems=word_elems)
        super().__init__({
            **({"approx_enable": In(1)} if self.approximation else {}),
            "q_rd": In(rd), "k_rd": In(rd), "v_rd": In(rd),
            "i_pair": In(stream.Signature(pair_layout(seq_bits=self.seq_bits))),
            "o_score": Out(stream.Signature(score_layout(score_bits=self.score_bits,
                                                         seq_bits=self.seq_bits))),
            "i_prob": In(stream.Signature(prob_layout(prob_value_bits=prob_bits + 1,
                                                      seq_bits=self.seq_bits))),
            "o_chunk": Out(out_chunk_signature(out_bits=out_bits, mac_lanes=mac_lanes)),
            "i_row_free": In(1),
            "busy_mac": Out(1),
            **({"score_last_chunk": In(range(chunks), init=chunks - 1)} if channel_skip else {}),
        })

    @classmethod
    def from_config(cls, config):
        return cls(seq_max=config.seq_max, head_dim=config.head_dim, int_bits=config.int_bits,
                   frac_bits=config.frac_bits, mac_lanes=config.mac_lanes,
                   prob_bits=config.prob_bits, out_bits=config.out_bits, out_frac=config.out_frac,
                   word_elems=config.row_word_elems, acc_ram=config.pv_acc_ram,
                   out_rows=config.out_row_buffers, channel_skip=config.channel_pruning,
                   approximation=config.approximation)

    def elaborate(self, platform):
        m = Module()
        L, F, d = self.lanes, self.F, self.head_dim
        chunks = d // L
        words = d // self.word_elems
        per_word = self.word_elems // L           # chunks in a row-buffer word
        log_pw = per_word.bit_length() - 1
        sh = self.out_shift
        top = (1 << (self.out_bits - 1)) - 1
        depth = self.score_depth

        # ---- the pipeline: issue -> operands -> products -> sums -> outputs ----------------
        # Each stage holds one chunk of one operation and hands it on in the next cycle:
        # the pipeline never stalls (no clock enable from an output's ready). Room for
        # each result is reserved when its operation is issued, from credits held in
        # registers (below), so no output's ready reaches the pipeline.
        ctrl = data.StructLayout({"valid": 1, "is_pv": 1, "chunk": range(max(2, chunks)),
                                  "last_chunk": 1, "col": self.seq_bits, "last": 1})
        s1, s2, s3, s4 = (Signal(ctrl, name=f"ctrl{i}") for i in (1, 2, 3, 4))

        # ---- credits ----------------------------------------------------------------------
        # Scores: `depth` places (the o_score register and the FIFO behind it); a pair
        # takes one when it is accepted, a score handed on gives it back (counted in the
        # next cycle). `depth` covers the scores in flight while o_score is always ready,
        # so credits cost no throughput then.
        # (the state the formal harness's invariants name: hdp_rtl/formal/mac_array.py)
        self.state = state = dict(score_credit={}, row_credit={}, score_queue={})
        s_room = credit_room(m, depth, take=self.i_pair.valid & self.i_pair.ready,
                             give=self.o_score.valid & self.o_score.ready, name="score",
                             state=state["score_credit"])
        # Output rows: `out_rows` places downstream (the serializer's row RAM). A row's
        # last probability (the operation that completes it) is accepted only while a
        # place is unclaimed; the place comes back on i_row_free, usable a cycle later.
        # The row's chunks go out from ROW_LATENCY cycles after the acceptance on, one a
        # cycle, into a place that is free.
        o_room = credit_room(m, self.out_rows,
                             take=self.i_prob.valid & self.i_prob.ready & self.i_prob.payload.last,
                             give=self.i_row_free, name="row", state=state["row_credit"])

        # ---- issue stage: the operation whose rows were read, one chunk a cycle ----------
        active = Signal()
        is_pv = Signal()
        op_row = Signal(self.seq_bits)    # (the Q row: read again word by word)
        op_col = Signal(self.seq_bits)
        op_last = Signal()
        op_p = Signal(self.P + 1)
        chunk = Signal(range(max(2, chunks)))
        last_chunk = Signal(init=int(chunks == 1))    # chunk == chunks - 1, registered
        advance = ~active | last_chunk
        m.d.comb += self.busy_mac.eq(active)

        last_was_pv = Signal()       # alternate when both inputs wait
        pair = self.i_pair.payload
        prob = self.i_prob.payload
        pv_ok = self.i_prob.valid & (~prob.last | o_room)
        pair_ok = self.i_pair.valid & s_room
        pick_pv = pv_ok & (~pair_ok | ~last_was_pv)
        pick_pair = pair_ok & ~pick_pv
        m.d.comb += [
            self.i_prob.ready.eq(advance & pick_pv), self.i_pair.ready.eq(advance & pick_pair),
            self.q_rd.en.eq(0), self.k_rd.en.eq(0), self.v_rd.en.eq(0),
        ]
        if words == 1:
            m.d.comb += [self.q_rd.addr.eq(pair.row), self.k_rd.addr.eq(pair.col),
                         self.v_rd.addr.eq(prob.col)]
        else:
            # a new operation's first word, or the running one's next word (read in the
            # last chunk of the word before: one read a word, as with one-word rows)
            word_end = chunk[:log_pw].all() if per_word > 1 else Const(1)
            next_word = Mux(advance, 0, (chunk >> log_pw) + 1)
            m.d.comb += [
                self.q_rd.addr.eq(word_addr(Mux(advance, pair.row, op_row), next_word,
                                            words=words)),
                self.k_rd.addr.eq(word_addr(Mux(advance, pair.col, op_col), next_word,
                                            words=words)),
                self.v_rd.addr.eq(word_addr(Mux(advance, prob.col, op_col), next_word,
                                            words=words)),
            ]
            with m.If(active & ~last_chunk & word_end):
                with m.If(is_pv):
                    m.d.comb += self.v_rd.en.eq(1)
                with m.Else():
                    m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]
        with m.If(active):
            m.d.sync += [chunk.eq(Mux(last_chunk, 0, chunk + 1)),
                         last_chunk.eq(chunk == chunks - 2 if chunks > 1 else 1)]
        if self.channel_skip:
            # a score runs chunks 0 .. score_last_chunk: its first chunk is its last
            # when that is 0 (a P x V operation has chunks > 1 chunks)
            last_at = self.score_last_chunk
            with m.If(advance):
                m.d.sync += last_chunk.eq(pick_pair & (last_at == 0))
            with m.Else():
                m.d.sync += last_chunk.eq(chunk == Mux(is_pv, chunks - 2, last_at - 1))
        with m.If(advance):
            m.d.sync += active.eq(pick_pv | pick_pair)
            with m.If(pick_pv):
                m.d.comb += self.v_rd.en.eq(1)
                m.d.sync += [is_pv.eq(1), op_col.eq(prob.col), op_last.eq(prob.last),
                             op_p.eq(prob.prob), last_was_pv.eq(1)]
            with m.Elif(pick_pair):
                m.d.comb += [self.q_rd.en.eq(1), self.k_rd.en.eq(1)]
                m.d.sync += [is_pv.eq(0), op_row.eq(pair.row), op_col.eq(pair.col),
                             op_last.eq(pair.last), last_was_pv.eq(0)]

        # Stage 0: the row words read are copied, and the issue stage's view of the chunk
        # with them. A block RAM's read data leaves it 5.8 ns after the clock on ECP5 (no
        # output register): routed across the device into the operand multiplexers it
        # was the default core's critical path (12.35 ns post-route, 80.9 MHz); the copy
        # splits that route in two.
        q_word, k_word, v_word = (Signal.like(rd.data, name=f"{t}_word", reset_less=True)
                                  for t, rd in (("q", self.q_rd), ("k", self.k_rd),
                                                ("v", self.v_rd)))
        m.d.sync += [q_word.eq(self.q_rd.data), k_word.eq(self.k_rd.data),
                     v_word.eq(self.v_rd.data)]
        s0 = Signal(ctrl, name="ctrl0")
        s0_p = Signal.like(op_p, reset_less=True)
        m.d.sync += [s0.valid.eq(active), s0.is_pv.eq(is_pv), s0.chunk.eq(chunk),
                     s0.last_chunk.eq(last_chunk), s0.col.eq(op_col), s0.last.eq(op_last),
                     s0_p.eq(op_p)]

        # The operand multiplexers select by one-hot flip-flops decoded two cycles early
        # (the operation's kind and chunk, a cycle before the copy): an AND-OR two LUTs
        # deep.
        nxt_pv = Mux(advance, pick_pv, is_pv)
        nxt_chunk = Mux(active, Mux(last_chunk, 0, chunk + 1), chunk)
        # (of the chunks in the word read: the row's `chunk`-th with one-word rows)
        early_qk = Signal(per_word, init=1)
        early_v = Signal(per_word)
        early_p = Signal()
        sel_qk = Signal(per_word, init=1)   # chunk `ch` of a score: q and k
        sel_v = Signal(per_word)            # chunk `ch` of P x V: v
        sel_p = Signal()                    # P x V: the probability
        m.d.sync += [early_p.eq(nxt_pv), sel_p.eq(early_p),
                     sel_qk.eq(early_qk), sel_v.eq(early_v)]
        for ch in range(per_word):
            hit = (nxt_chunk[:log_pw] == ch) if per_word > 1 else Const(1)
            m.d.sync += [early_qk[ch].eq(~nxt_pv & hit), early_v[ch].eq(nxt_pv & hit)]

        def pick(word, sel, lane):
            value = Signal(signed(self.B))
            m.d.comb += value.eq(
                tree_or([Mux(sel[ch], word[ch * L + lane], 0) for ch in range(per_word)]))
            return value

        # stage 1: the chunk's operands, registered from the copy
        # stage 2: the products, registered (a DSP's output register)
        a_shape, b_shape = signed(max(self.B, self.P + 2)), signed(self.B)
        products, fines = [], []
        m.d.sync += [s1.eq(s0), s2.eq(s1), s3.eq(s2), s4.eq(s3)]
        for lane in range(L):
            q = pick(q_word, sel_qk, lane)     # 0 for P x V
            k = pick(k_word, sel_qk, lane)
            v = pick(v_word, sel_v, lane)      # 0 for a score
            # the lane's one hard multiplier, shared: q x k (the exact score term) for a
            # score, p x v for P x V
            a = Signal(a_shape, name=f"lane{lane}_a")
            b = Signal(b_shape, name=f"lane{lane}_b")
            prod = Signal(signed(len(a) + len(b)), name=f"lane{lane}_prod")
            products.append(prod)
            m.d.sync += [a.eq(Mux(sel_p, s0_p, 0) | q), b.eq(v | k), prod.eq(a * b)]
            if self.approximation:
                # the approximation unit drops qf x kf from q x k = qi.ki 2^2F +
                # (qi.kf + qf.ki) 2^F + qf.kf: an F x F product, small enough for LUTs,
                # registered as 0 without the approximation (unused for P x V)
                qf, kf = Signal(F, name=f"lane{lane}_qf"), Signal(F, name=f"lane{lane}_kf")
                fine = Signal(2 * F, name=f"lane{lane}_fine")
                fines.append(fine)
                m.d.sync += [qf.eq(Value.cast(q)[:F]), kf.eq(Value.cast(k)[:F]),
                             fine.eq(Mux(self.approx_enable, lut_multiply(qf, kf), 0))]

        # stages 3, 4 (and 5 with more than 16 lanes), scores: the sums of groups of
        # SUM_GROUP lanes, then of groups of those until one is left (`partial`), each
        # registered; `s_sum` is the control of partial's stage
        terms = [p - f for p, f in zip(products, fines)] if fines else products
        levels = sum_levels(L)
        s_sum, sum_stages = s4, []
        for level in range(1, levels + 1):
            names = (["partial"] if level == levels else
                     [f"group{j}" if level == 1 else f"sum{level}_{j}"
                      for j in range(-(-len(terms) // SUM_GROUP))])
            groups = [Signal(signed(self.score_bits), name=name) for name in names]
            for j, group in enumerate(groups):
                m.d.sync += group.eq(tree_sum(terms[j * SUM_GROUP:(j + 1) * SUM_GROUP]))
            terms = groups
            if level > 2:
                nxt = Signal(ctrl, name=f"ctrl_sum{level}")
                m.d.sync += nxt.eq(s_sum)
                s_sum = nxt
                sum_stages.append(nxt)
        (partial,) = terms
        # stage 3, P x V: the rotating accumulators. The `head_dim` sums form a ring of
        # `chunks` stages of L, ring[0] the head, ring[-1] the tail. An operation's
        # chunks run 0 .. chunks - 1 in consecutive cycles and every P x V chunk moves
        # the ring by one stage (a score's do not), so the head always holds the sums of
        # the chunk whose products are in stage 2: the only L adders put head + products
        # into the tail as the ring moves. A sum starts at half an output step, so that
        # rounding is a shift (acc_bits has room: |sum| < 2^(acc_bits - 2), half <
        # 2^(acc_bits - 3)): the ring is reset to `half` (the stage after the tail by
        # `clear`, in the cycle after the reset), and a row's finished sums, read
        # from the tail in the cycle after the row's last operation wrote them (stage 4,
        # below), are replaced by `half` as the ring moves them out of the tail, so they
        # come back to the head as the next row's fresh start. The ring's flip-flops
        # share one enable, `shift`, a flip-flop decoded a stage early; the replacement
        # is the synchronous set/reset of the stage after the tail (no LUT), or with
        # chunks == 1 (the tail is the head) a multiplexer at the adders' input.
        half = (1 << (sh - 1)) if sh > 0 else 0
        if self.acc_ram:
            tail = self._acc_in_ram(m, s1, s2, s3, products, half)
        else:
            ring = [[Signal(signed(self.acc_bits), init=half, name=f"ring{st}_lane{lane}",
                            reset_less=(st == chunks - 2)) for lane in range(L)]
                    for st in range(chunks)]
            head, tail = ring[0], ring[-1]
            shift = Signal()        # a P x V chunk's products are in stage 2
            tail_done = Signal()    # the tail holds a finished row's sums
            m.d.sync += shift.eq(s1.valid & s1.is_pv)
            with m.If(shift):
                m.d.sync += tail_done.eq(s2.last)
                for st in range(chunks - 2):
                    m.d.sync += [r.eq(x) for r, x in zip(ring[st], ring[st + 1])]
            if chunks > 1:
                # the stage after the tail's only reset, a flip-flop: `shift & tail_done`
                # decoded a stage early, and 1 in the cycle after the domain's reset (while
                # the ring does not move yet)
                clear = Signal(init=1)
                m.d.sync += clear.eq(s1.valid & s1.is_pv & Mux(shift, s2.last, tail_done))
                with m.If(clear):
                    m.d.sync += [r.eq(half) for r in ring[-2]]
                with m.Elif(shift):
                    m.d.sync += [r.eq(x) for r, x in zip(ring[-2], tail)]
                addend = head
            else:
                addend = [Mux(tail_done, half, value) for value in tail]
            with m.If(shift):
                m.d.sync += [t.eq(a + p) for t, a, p in zip(tail, addend, products)]

        # stage 5, scores: the chunk's sum added to the pair's earlier chunks (an
        # operation's chunks follow each other, so s_acc may take any other stage-4
        # content in between); the score of the operation's last chunk goes to the
        # output register, or to the FIFO behind it
        if chunks > 1:
            s_acc = Signal(signed(self.score_bits))
            total = Mux(s_sum.chunk == 0, partial, s_acc + partial)
            m.d.sync += s_acc.eq(total)
        else:
            total = partial
        s_new = Signal()
        s_new_payload = Signal.like(self.o_score.payload)
        m.d.comb += [s_new.eq(s_sum.valid & ~s_sum.is_pv & s_sum.last_chunk),
                     s_new_payload.score.eq(total), s_new_payload.col.eq(s_sum.col),
                     s_new_payload.last.eq(s_sum.last)]
        # the register and the FIFO behind it (depth >= 3: the credits guarantee room)
        output_queue(m, self.o_score, s_new, s_new_payload, depth, "score",
                     state=state["score_queue"])

        # stage 4, P x V: a row's last operation writes its chunks' finished sums to the
        # tail one a cycle; each is rounded (a shift) and saturated in the next cycle
        # onto o_chunk (L circuits, not head_dim)
        o_valid = Signal(name="o_chunk_valid")
        o_last = Signal(name="o_chunk_last")
        m.d.sync += [o_valid.eq(s2.valid & s2.is_pv & s2.last),
                     o_last.eq(s2.valid & s2.is_pv & s2.last & s2.last_chunk)]
        m.d.comb += [self.o_chunk.valid.eq(o_valid), self.o_chunk.payload.last.eq(o_last)]
        # saturated: the bits above the output's sign all equal to it, or the extreme of
        # the sign (LUTs, no comparator)
        for lane in range(L):
            rounded = tail[lane] >> sh if sh > 0 else tail[lane]
            high = rounded[self.out_bits - 1:]
            value = self.o_chunk.payload.out[lane]
            if len(high) > 1:
                fits = high.all() | ~high.any()
                m.d.comb += value.eq(
                    Mux(fits, rounded[:self.out_bits], Mux(high[-1], -top - 1, top)))
            else:
                m.d.comb += value.eq(rounded)
        state.update(active=active, is_pv=is_pv, chunk=chunk, last_chunk=last_chunk,
                  op_col=op_col, op_last=op_last, stages=[s0, s1, s2, s3, s4, *sum_stages],
                  o_valid=o_valid, o_last=o_last)
        return m

    def _acc_in_ram(self, m, s1, s2, s3, products, half):
        """Stage 3, P x V, with ``acc_ram``: the ring's ``head_dim`` sums in a block RAM.
        Returns the stage-3 register, the ``mac_lanes`` sums of the chunk in stage 3."""
        L, chunks = self.lanes, self.head_dim // self.lanes
        # Word `ch` (< chunks) holds chunk ch's L sums, word `chunks` holds `half` in
        # every lane: a row's first operation reads that word for each of its chunks
        # (the fresh start), the others their chunk's word. The address is presented
        # with the chunk in stage 1, the word arrives with the chunk's products in stage
        # 2 (the read port's register, the block RAM's own) and L adders put word +
        # products into `tail` (stage 3, the ring's tail before), which writes them back
        # to the chunk's word and which a row's last operation rounds onto o_chunk from
        # (stage 4, as without acc_ram: same latency).
        # Hazard: chunk ch of an operation issued in cycle t is read in t + 1 and
        # written in t + 3; the next P x V operation's chunk ch is issued in t + chunks
        # at the earliest (operations run their chunks in order and back to back, and
        # the pipeline never stalls), so it is read in t + chunks + 1 >= t + 4
        # (ACC_RAM_MIN_CHUNKS): after the write, never in its cycle (bram.py). The
        # formal check mac_array_ram asserts it (acc_ram_hazard).
        # Block RAM is not reset: in the cycle after a reset (`clear`, also at power-up)
        # `tail` holds its reset value `half`, which is written to word `chunks` then;
        # no operation is in stages 1 to 3 (the first read comes 2 cycles later), and
        # `start` (1 after a reset) makes the next operation a row's first, so a row
        # cut short by a reset leaves no stale sum.
        mem = bram(m, "pv_acc", shape=data.ArrayLayout(signed(self.acc_bits), L),
                   depth=chunks + 1)
        rd = registered_read_port(m, mem, name="pv_acc_rd")
        wr = mem.write_port()
        pv1 = s1.valid & s1.is_pv
        shift = Signal(name="acc_shift")    # a P x V chunk's products are in stage 2
        start = Signal(init=1)              # the P x V operation in stage 1 starts a row
        m.d.sync += shift.eq(pv1)
        with m.If(pv1 & s1.last_chunk):
            m.d.sync += start.eq(s1.last)
        m.d.comb += [rd.en.eq(pv1), rd.addr.eq(Mux(start, chunks, s1.chunk))]
        tail = [Signal(signed(self.acc_bits), init=half, name=f"acc_lane{lane}")
                for lane in range(L)]
        with m.If(shift):
            m.d.sync += [t.eq(rd.data[lane] + p)
                         for lane, (t, p) in enumerate(zip(tail, products))]
        clear = Signal(init=1, name="acc_clear")
        m.d.sync += clear.eq(0)
        m.d.comb += [
            wr.en.eq(clear | (s3.valid & s3.is_pv)),
            wr.addr.eq(Cat(s3.chunk, clear)),   # word `chunks` (s3.chunk is 0 then)
            wr.data.eq(Cat(*tail)),
            self.acc_ram_hazard.eq(rd.en & (wr.en & (wr.addr == rd.addr)
                                            | shift & (s2.chunk == rd.addr))),
        ]
        return tail
