"""Heads for the sequencer's tests, as the inputs of each cycle, and the checks of its
outputs; shared by the amaranth.sim test and the cocotb module of the sequencer."""
from __future__ import annotations

__all__ = ["OUTPUTS", "STAGE_NAMES", "script", "check"]

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


def script() -> list[tuple[str, dict]]:
    """``(head, inputs)`` of every cycle: heads back to back, each input event a few
    cycles after the stage it ends began."""
    cycles = []
    for name, (enable, hi, held, _, v_late) in HEADS.items():
        now = dict(start=1, head_prune_enable=enable, head_threshold=THRESHOLD,
                   head_importance=hi, int_ready=0, input_last_row=0, int_done=0,
                   last_row_held=0, output_done=0)

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
