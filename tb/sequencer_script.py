"""Heads for the sequencer's tests, as the inputs of each cycle, and the checks of its
outputs; shared by the amaranth.sim test and the cocotb module of the sequencer."""
from __future__ import annotations

from hdp_rtl.regmap import ErrorCode

__all__ = ["OUTPUTS", "STAGE_NAMES", "script", "check", "ABORT_OUTPUTS", "abort_script",
           "check_abort"]

THRESHOLD = 100
# name: (head_prune_enable, head_importance, last_row_held before output_done, pruned,
#        V's last row after the integer pass: DECIDE waits for it)
HEADS = {
    "kept": (1, THRESHOLD, True, False, False),        # HI == threshold: not below it
    "pruned": (1, THRESHOLD - 1, True, True, False),
    "pruning-off": (0, 0, True, False, False),
    "done-in-attn": (1, THRESHOLD + 1, False, False, False),  # last row out in ATTN
    "v-late": (1, THRESHOLD, True, False, True),
    "v-late-pruned": (1, 0, True, True, True),
}
#: the stages of each head: "int" includes INT_START and DECIDE; "-" no stage (idle, FINISH)
STAGES = {"kept": ["-", "load", "int", "attn", "out", "-"],
          "pruned": ["-", "load", "int", "out", "-"],
          "pruning-off": ["-", "load", "int", "attn", "out", "-"],
          "done-in-attn": ["-", "load", "int", "attn", "-"],
          "v-late": ["-", "load", "int", "attn", "out", "-"],
          "v-late-pruned": ["-", "load", "int", "out", "-"]}
OUTPUTS = ("busy", "done", "head_pruned", "scorer_start", "int_phase", "go", "prune_head")
STAGE_NAMES = ("load", "int", "attn", "out")
#: the inputs of the abort and the input timeout, idle in :func:`script`
ABORT_INPUTS = dict(abort_req=0, input_timeout=0, input_wait=0, out_valid=0)
ABORT_OUTPUTS = OUTPUTS + ("halt", "flush", "error")


def script() -> list[tuple[str, dict]]:
    """``(head, inputs)`` of every cycle: heads back to back, each input event a few
    cycles after the stage it ends began."""
    cycles = []
    for name, (enable, hi, held, _, v_late) in HEADS.items():
        now = dict(start=1, head_prune_enable=enable, head_threshold=THRESHOLD,
                   head_importance=hi, int_ready=0, input_last_row=0, int_done=0,
                   last_row_held=0, output_done=0, **ABORT_INPUTS)

        def hold(count, **changes):
            now.update(changes)
            cycles.extend((name, dict(now)) for _ in range(count))
            now["start"] = now["int_ready"] = now["input_last_row"] = 0   # pulses

        hold(1)                                   # start
        hold(3)                                   # LOAD
        hold(1, int_ready=1)                    # Q's first row (K is in)
        hold(2)                                   # INT_START, INT
        if not v_late:
            hold(1, input_last_row=1)             # V's last row during the integer pass
            hold(2)
            hold(4, int_done=1)                   # DECIDE, then ATTN (or OUTPUT)
        else:
            hold(4, int_done=1)                   # DECIDE waits for V
            hold(1, input_last_row=1)
            hold(4)
        if held:
            hold(3, last_row_held=1)
        hold(4, output_done=1)                    # FINISH, idle
        hold(2, int_done=0, last_row_held=0, output_done=0)
    return cycles


def _runs(seq) -> list:
    return [x for i, x in enumerate(seq) if i == 0 or x != seq[i - 1]]


def check(cycles: list[tuple[str, dict]]) -> None:
    """Check the recorded ``(head, inputs and outputs)`` of every cycle of ``script``;
    the stage flags are under :data:`STAGE_NAMES`."""
    for name, (_, _, _, pruned, _) in HEADS.items():
        mine = [v for h, v in cycles if h == name]
        stage = [next((s for s in STAGE_NAMES if v[s]), "-") for v in mine]
        assert _runs(stage) == STAGES[name], (name, stage)
        # busy from the cycle after start; done and head_pruned cleared by start
        assert _runs([v["busy"] for v in mine]) == [0, 1, 0], name
        assert [v["done"] for v in mine[1:]] == [1 - v["busy"] for v in mine[1:]], name
        assert not mine[1]["head_pruned"], name
        assert mine[-1]["done"] and mine[-1]["head_pruned"] == pruned, name
        # the scorer starts the cycle after Q's first row, once; int_phase from then until
        # the integer pass is done (not in DECIDE)
        starts = [i for i, v in enumerate(mine) if v["scorer_start"]]
        assert starts == [i + 1 for i, v in enumerate(mine) if v["int_ready"]], name
        done_at = next(i for i, v in enumerate(mine) if v["int_done"])
        assert [i for i, v in enumerate(mine) if v["int_phase"]] == \
            list(range(starts[0], done_at + 1)), name
        # go once, in DECIDE, never before V's last row is in
        go = [i for i, v in enumerate(mine) if v["go"]]
        v_in = next(i for i, v in enumerate(mine) if v["input_last_row"])
        assert len(go) == 1 and mine[go[0]]["prune_head"] == pruned, name
        assert go[0] == max(done_at, v_in) + 1, (name, go, done_at, v_in)


#: Cases of :func:`abort_script`: how each reaches its abort (or does not).
ABORT_CASES = ("load", "int-start", "attn-beat-offered", "pruned-output", "done-wins", "idle",
               "timeout", "timeout-interrupted", "abort-and-timeout", "timeout-off")
TIMEOUT = 4


def abort_script() -> tuple[list[tuple[str, dict]], dict]:
    """``(cycles, expect)``: ``(case, inputs)`` of every cycle of :data:`ABORT_CASES`
    back to back, and for each case ``(abort_at, cause)``: the cycle (index within the
    case) in which the sequencer must decide to abort (``abort_req`` seen, or the input
    timeout's registered compare high), or ``None`` when the head must not be aborted,
    and the error the abort raises."""
    cycles, expect = [], {}
    for name in ABORT_CASES:
        mine = []
        now = dict(start=0, head_prune_enable=1, head_threshold=THRESHOLD,
                   head_importance=THRESHOLD, int_ready=0, input_last_row=0, int_done=0,
                   last_row_held=0, output_done=0, **ABORT_INPUTS)

        def hold(count, **changes):
            now.update(changes)
            mine.extend(dict(now) for _ in range(count))
            for pulse in ("start", "int_ready", "input_last_row", "abort_req"):
                now[pulse] = 0

        abort_at, cause = None, ErrorCode.ABORTED
        if name != "idle":
            hold(1, start=1, input_timeout=TIMEOUT if "timeout" in name and
                 name != "timeout-off" else 0)
            hold(2)                                   # LOAD
        if name == "load":
            abort_at = len(mine)
            hold(1, abort_req=1)
        elif name == "int-start":
            hold(1, int_ready=1)
            abort_at = len(mine)                      # in INT_START
            hold(1, abort_req=1)
        elif name in ("attn-beat-offered", "pruned-output", "done-wins"):
            pruned = name == "pruned-output"
            hold(1, int_ready=1, head_importance=THRESHOLD - pruned)
            hold(2, input_last_row=1)
            hold(2, int_done=1)                       # DECIDE, then ATTN (pruned: OUTPUT)
            hold(2, out_valid=1)
            if name == "done-wins":                   # the abort meets the last beat: done
                hold(1, last_row_held=1)
                hold(1, abort_req=1, output_done=1)
            else:
                abort_at = len(mine)
                hold(1, abort_req=1)
                hold(3)                               # the offered beat waits for the host
        elif name == "idle":
            hold(2)
            hold(1, abort_req=1)
        elif name == "timeout":                       # TIMEOUT + 1 cycles without a beat
            hold(TIMEOUT + 1, input_wait=1)
            abort_at = len(mine)
            cause = ErrorCode.INPUT_TIMEOUT
        elif name in ("timeout-interrupted", "abort-and-timeout"):
            hold(TIMEOUT, input_wait=1)
            hold(1, input_wait=0)                     # a beat: the count starts again
            hold(TIMEOUT, input_wait=1)
            if name == "abort-and-timeout":
                hold(1)
                abort_at = len(mine)                  # both at once: the host's abort wins
                hold(1, abort_req=1)
            else:                                     # no timeout: an abort ends the head
                hold(1, input_wait=0)
                abort_at = len(mine)
                hold(1, abort_req=1)
        elif name == "timeout-off":
            hold(3 * TIMEOUT, input_wait=1)
            abort_at = len(mine)
            hold(1, abort_req=1)
        hold(6, input_wait=0, out_valid=0, int_done=0, last_row_held=0, output_done=0)
        cycles.extend((name, c) for c in mine)
        expect[name] = (abort_at, cause)
    return cycles, expect


def check_abort(cycles: list[tuple[str, dict]], expect: dict) -> None:
    """Check the recorded ``(case, inputs and ABORT_OUTPUTS)`` of every cycle of
    :func:`abort_script`: ``halt`` from the cycle after the abort decision until the
    flush; ``flush`` (with the cause on ``error``) the cycle after the first cycle of
    halt with no beat offered; ``busy`` low the cycle after the flush; ``done`` and
    ``head_pruned`` low after it; without an abort, none of this, and a head whose output
    is all sent finishes."""
    for name, (abort_at, cause) in expect.items():
        mine = [v for h, v in cycles if h == name]
        halt = [i for i, v in enumerate(mine) if v["halt"]]
        flush = [i for i, v in enumerate(mine) if v["flush"]]
        errors = [(i, v["error"]) for i, v in enumerate(mine) if v["error"]]
        if abort_at is None:
            assert not halt and not flush and not errors, (name, halt, flush, errors)
            if name == "done-wins":
                assert mine[-1]["done"] and not mine[-1]["busy"], name
            else:                                   # idle: nothing changes
                assert not any(v["busy"] for v in mine), name
                assert all(v["done"] == mine[0]["done"] for v in mine), name
            continue
        flush_at = next(i for i in range(abort_at + 1, len(mine))
                        if not mine[i]["out_valid"]) + 1
        assert halt == list(range(abort_at + 1, flush_at + 1)), (name, abort_at, halt)
        assert flush == [flush_at], (name, flush_at, flush)
        assert errors == [(flush_at, cause)], (name, errors)
        busy = [v["busy"] for v in mine]        # from the cycle after start to FLUSH
        assert busy == [0] + [1] * flush_at + [0] * (len(mine) - flush_at - 1), (name, busy)
        assert not any(v["done"] for v in mine[1:]), name
        assert not mine[-1]["head_pruned"], name
        if name == "pruned-output":
            assert mine[abort_at]["head_pruned"], name
        assert not any(v["go"] or v["scorer_start"] for v in mine[abort_at + 1:]), name
