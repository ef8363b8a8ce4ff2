"""Input unpacker: s_axis beats to the words of K, Q and V rows in order, lane and tlast
errors, the held last beat of a word under back-pressure, in amaranth.sim and as
generated Verilog."""
import random

import numpy as np
import pytest

from hdp_rtl.config import HDPConfig
from hdp_rtl.regmap import INPUT_ORDER, TENSOR_CODE, ErrorCode
from hdp_rtl.rtl.unpacker import InputUnpacker
from tb.beats import input_beats
from cases import EDGE, run_unit_verilog
from unit_sim import axis_port, recv_stream, run_sim, send_stream

CONFIGS = {
    "edge": HDPConfig.preset("edge"),          # 8 one-beat words a row, B = lane = 8
    "bpr1": HDPConfig(seq_max=8, head_dim=8, int_lanes=8, mac_lanes=8, axis_elems=8),
    "words2x2": HDPConfig(seq_max=8, head_dim=8, int_lanes=4, mac_lanes=2,
                          axis_elems=2),       # 2 words a row, 2 beats a word
    "row-word": HDPConfig(seq_max=8, head_dim=8, int_lanes=8, mac_lanes=2,
                          axis_elems=2),       # one 4-beat word a row (as `default`)
    "b6": HDPConfig(seq_max=8, head_dim=8, int_bits=4, frac_bits=2, int_lanes=2,
                    mac_lanes=2, axis_elems=2),            # B = 6 in 8-bit lanes, 4 beats
    "b12-bpr1": HDPConfig(seq_max=6, head_dim=4, int_bits=6, frac_bits=6, int_lanes=4,
                          mac_lanes=4, axis_elems=4),      # B = 12 in 16-bit lanes
}


def _head(config, n, rng):
    """Three ``n x head_dim`` tensors in stream order (``INPUT_ORDER``: K, Q, V)."""
    return np.random.default_rng(rng.getrandbits(32)).integers(
        config.data_min, config.data_max + 1, (3, n, config.head_dim))


def _words(config, x):
    """The o_word payloads of head ``x`` (in stream order) as (tensor code, row, word,
    data)."""
    n = config.row_word_elems
    return [(TENSOR_CODE[INPUT_ORDER[t]], r, w, [int(v) for v in x[t][r][w * n:(w + 1) * n]])
            for t in range(3) for r in range(len(x[t])) for w in range(config.row_words)]


class Unpacker:
    """An InputUnpacker and its monitor: every cycle's beat, error, last_row, int_ready
    and q_rows."""

    def __init__(self, config):
        self.config = config
        self.dut = InputUnpacker.from_config(config)
        self.s_axis = axis_port(self.dut, "s_axis")
        self.cycles = []        # (beat taken, error, last_row, word offered, taken) a cycle
        self.int_ready = []     # (word offered, taken) of every cycle with int_ready
        self.q_rows = []        # (start, q_rows, a Q row taken) a cycle

    async def start(self, ctx, n: int) -> None:
        """Start a head of ``n`` rows, ``seq_len`` valid from the next cycle (as the
        register file's ``run``)."""
        assert not ctx.get(self.dut.s_axis_tready), "tready high while no head runs"
        ctx.set(self.dut.seq_len, 0)
        ctx.set(self.dut.start, 1)
        await ctx.tick()
        ctx.set(self.dut.start, 0)
        ctx.set(self.dut.seq_len, n)

    async def monitor(self, ctx):
        dut = self.dut
        async for _c, _r, beat, error, last_row, ready_int, q_rows, start, valid, ready, \
                word in ctx.tick().sample(dut.beat, dut.error, dut.last_row, dut.int_ready,
                                          dut.q_rows, dut.start, dut.o_word.valid,
                                          dut.o_word.ready, dut.o_word.payload):
            offered = (word.tensor, word.row, word.word) if valid else None
            self.cycles.append((beat, error, last_row, offered, valid and ready))
            if ready_int:
                self.int_ready.append((offered, valid and ready))
            q_taken = (valid and ready and word.tensor == TENSOR_CODE["q"]
                       and word.word == self.config.row_words - 1)     # a row's last word
            self.q_rows.append((start, q_rows, q_taken))

    def check_q_rows(self):
        """q_rows counts the Q rows taken since start, a cycle after each."""
        for (start, count, taken), (_, after, _) in zip(self.q_rows, self.q_rows[1:]):
            assert after == (0 if start else count + taken), (count, taken, after)

    def words(self, got) -> list:
        return [(g.tensor, g.row, g.word, [g.data[i] for i in range(self.config.row_word_elems)])
                for g in got]

    def errors(self) -> list:
        """(beat index, error) of every beat that raised an error."""
        beats = [(b, e) for b, e, _, _, _ in self.cycles if b or e]
        assert all(b for b, _ in beats), "an error without a beat"
        return [(i, e) for i, (_, e) in enumerate(beats) if e]


@pytest.mark.parametrize("name", CONFIGS)
def test_rows_in_order(name):
    """Two heads back to back under random idle and back-pressure: every word of every
    row in order, no error, one last_row per head (on V's last word) and one int_ready
    (on the last word of Q's first row, after all of K), q_rows counting Q's rows,
    tready low between heads."""
    config = CONFIGS[name]
    rng = random.Random(name)
    heads = [_head(config, n, rng) for n in (min(config.seq_max, 12), 3)]
    unit = Unpacker(config)
    got = []

    async def source(ctx):
        for x in heads:
            await unit.start(ctx, len(x[0]))
            await send_stream(ctx, unit.s_axis, [b for t in x for b in input_beats(config, t)],
                              rng=rng, idle=0.3)
        await ctx.tick()
        assert not ctx.get(unit.dut.s_axis_tready)

    async def sink(ctx):
        total = sum(3 * len(x[0]) for x in heads) * config.row_words
        got.extend(await recv_stream(ctx, unit.dut.o_word, total, rng=rng, backpressure=0.4))

    run_sim(unit.dut, source, sink, extra=[unit.monitor], deadline_cycles=20_000)
    assert unit.words(got) == [w for x in heads for w in _words(config, x)]
    assert unit.errors() == []
    beats = sum(3 * len(x[0]) for x in heads) * config.beats_per_row
    assert sum(c[0] for c in unit.cycles) == beats
    v_last = [(2, len(x[0]) - 1, config.row_words - 1) for x in heads]
    assert {offered for _, _, last, offered, _ in unit.cycles if last} <= set(v_last)
    assert [offered for _, _, last, offered, taken in unit.cycles if last and taken] == v_last
    q_first = (TENSOR_CODE["q"], 0, config.row_words - 1)
    assert [offered for offered, taken in unit.int_ready if taken] == [q_first] * len(heads)
    assert {offered for offered, _ in unit.int_ready} == {q_first}
    unit.check_q_rows()
    assert unit.q_rows[-1][1] == len(heads[-1][0])


@pytest.mark.parametrize("name", CONFIGS)
def test_input_errors(name):
    """A lane that is not the sign extension of its element raises 8 (the element is
    its low B bits), tlast before or missing on a tensor's last beat raises 9; the head
    goes on with every row."""
    config = CONFIGS[name]
    rng = random.Random(name)
    x = _head(config, 2, rng)
    beats = [input_beats(config, t) for t in x]
    per_tensor = len(beats[0])
    want = []
    if config.in_lane_bits > config.data_bits:          # lanes wider than B
        for t in range(3):
            i = rng.randrange(per_tensor)
            lane = rng.randrange(config.axis_elems)
            beats[t][i]["tdata"] ^= 1 << (lane * config.in_lane_bits + config.data_bits)
            want.append((t * per_tensor + i, ErrorCode.INPUT_LANE))
    for t, i in ((0, per_tensor - 1), (1, 0), (2, per_tensor - 1)):
        if any(b == t * per_tensor + i for b, _ in want):
            continue                              # one error a beat
        beats[t][i]["tlast"] ^= 1                 # missing on the last beat, or early
        want.append((t * per_tensor + i, ErrorCode.INPUT_TLAST))
    unit = Unpacker(config)
    got = []

    async def source(ctx):
        await unit.start(ctx, 2)
        await send_stream(ctx, unit.s_axis, [b for t in beats for b in t], rng=rng, idle=0.3)

    async def sink(ctx):
        got.extend(await recv_stream(ctx, unit.dut.o_word, 6 * config.row_words, rng=rng,
                                     backpressure=0.3))

    run_sim(unit.dut, source, sink, extra=[unit.monitor], deadline_cycles=5_000)
    assert unit.words(got) == _words(config, x)
    assert unit.errors() == sorted(want)


@pytest.mark.parametrize("name", ["edge", "bpr1", "words2x2", "row-word"])
def test_back_pressure_holds_the_last_beat(name):
    """A word is offered in the cycle its last beat arrives; while o_word is not ready
    that beat waits (tready low, o_word held), and both transfer in one cycle."""
    config = CONFIGS[name]
    x = _head(config, 1, random.Random(name))
    per_word = config.row_word_elems // config.axis_elems
    beats = input_beats(config, x[0])[:per_word]           # the first word's
    unit = Unpacker(config)
    dut = unit.dut

    async def bench(ctx):
        await unit.start(ctx, 1)
        ctx.set(dut.o_word.ready, 0)
        for beat in beats[:-1]:
            ctx.set(unit.s_axis.payload, beat)
            ctx.set(unit.s_axis.valid, 1)
            assert ctx.get(dut.s_axis_tready) and not ctx.get(dut.o_word.valid)
            await ctx.tick()
        ctx.set(unit.s_axis.payload, beats[-1])
        ctx.set(unit.s_axis.valid, 1)
        for _ in range(4):
            assert not ctx.get(dut.s_axis_tready)
            assert ctx.get(dut.o_word.valid)
            assert unit.words([ctx.get(dut.o_word.payload)]) == _words(config, x)[:1]
            await ctx.tick()
        ctx.set(dut.o_word.ready, 1)
        assert ctx.get(dut.s_axis_tready) and ctx.get(dut.beat)
        await ctx.tick()
        ctx.set(unit.s_axis.valid, 0)
        if config.row_words == 1:
            assert not ctx.get(dut.o_word.valid)

    run_sim(dut, bench, deadline_cycles=1_000)


@pytest.mark.parametrize("name", ["edge", "bpr1", "words2x2", "row-word"])
def test_channel_mask_zeroes_dropped_channels_of_q_and_k(name):
    """With channel_pruning, Q's and K's channels head_dim - channel_drop and up are
    stored as 0 (V as it comes), under stalls, for three heads back to back with
    different channel_drop (a partial beat, none kept - a drop above head_dim -, every
    channel), channel_drop changing only between heads."""
    config = CONFIGS[name].replace(channel_pruning=True)
    d = config.head_dim
    rng = random.Random(name)
    kept_of = [min(d - 1, config.axis_elems + 1), 0, d]
    heads = [_head(config, n, rng) for n in (min(config.seq_max, 5), 3, 2)]
    unit = Unpacker(config)
    got = []

    async def source(ctx):
        for x, kept in zip(heads, kept_of):
            await ctx.tick().until(~unit.dut.s_axis_tready)
            ctx.set(unit.dut.channel_drop, config.head_dim - kept + (kept == 0) * 5)
            await unit.start(ctx, len(x[0]))
            await send_stream(ctx, unit.s_axis, [b for t in x for b in input_beats(config, t)],
                              rng=rng, idle=0.3)

    async def sink(ctx):
        total = sum(3 * len(x[0]) for x in heads) * config.row_words
        got.extend(await recv_stream(ctx, unit.dut.o_word, total, rng=rng, backpressure=0.4))

    run_sim(unit.dut, source, sink, extra=[unit.monitor], deadline_cycles=20_000)
    want = []
    for x, kept in zip(heads, kept_of):
        x = x.copy()
        for t in ("q", "k"):
            x[INPUT_ORDER.index(t)][:, kept:] = 0
        want += _words(config, x)
    assert unit.words(got) == want
    assert unit.errors() == []


@pytest.mark.parametrize("preset,simulator", EDGE)
def test_verilog(preset, simulator):
    run_unit_verilog("unpacker", preset, simulator)
