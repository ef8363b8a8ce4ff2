"""Heads for the sequencer's tests, as the inputs of each cycle, and the checks of its
outputs; shared by the amaranth.sim test and the cocotb module of the sequencer."""
from __future__ import annotations

__all__ = ["OUTPUTS", "STAGE_NAMES", "script", "check"]

THRESHOLD = 100
# name: (head_prune_enable, head_importance, last_row_held before output_done, pruned)
HEADS = {
    "kept": (1, THRESHOLD, True, False),               # HI == threshold: not below it
    "pruned": (1, THRESHOLD - 1, True, True),
    "pruning-off": (0, 0, True, False),
    "done-in-attn": (1, THRESHOLD + 1, False, False),  # the last row went out in ATTN
}
#: the stages of each head: "int" includes DECIDE; "-" no stage (idle, FINISH)
STAGES = {"kept": ["-", "load", "int", "attn", "out", "-"],
          "pruned": ["-", "load", "int", "out", "-"],
          "pruning-off": ["-", "load", "int", "attn", "out", "-"],
          "done-in-attn": ["-", "load", "int", "attn", "-"]}
OUTPUTS = ("busy", "done", "head_pruned", "scorer_start", "int_phase", "go", "prune_head")
STAGE_NAMES = ("load", "int", "attn", "out")


def script() -> list[tuple[str, dict]]:
    """``(head, inputs)`` of every cycle: heads back to back, each input event a few
    cycles after the stage it ends began."""
    cycles = []
    for name, (enable, hi, held, _) in HEADS.items():
        now = dict(start=1, head_prune_enable=enable, head_threshold=THRESHOLD,
                   head_importance=hi, input_last_row=0, int_done=0, last_row_held=0,
                   output_done=0)

        def hold(count, **changes):
            now.update(changes)
            cycles.extend((name, dict(now)) for _ in range(count))
            now["start"] = now["input_last_row"] = 0        # pulses

        hold(1)                                   # start
        hold(3)                                   # LOAD
        hold(1, input_last_row=1)                 # V's last row
        hold(3)                                   # INT
        hold(4, int_done=1)                       # DECIDE, then ATTN (or OUTPUT)
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
    for name, (_, _, _, pruned) in HEADS.items():
        mine = [v for h, v in cycles if h == name]
        stage = [next((s for s in STAGE_NAMES if v[s]), "-") for v in mine]
        assert _runs(stage) == STAGES[name], (name, stage)
        # busy from the cycle after start; done and head_pruned cleared by start
        assert _runs([v["busy"] for v in mine]) == [0, 1, 0], name
        assert [v["done"] for v in mine[1:]] == [1 - v["busy"] for v in mine[1:]], name
        assert not mine[1]["head_pruned"], name
        assert mine[-1]["done"] and mine[-1]["head_pruned"] == pruned, name
        # the scorer starts with V's last row; int_phase then and in INT (not DECIDE)
        assert [v["scorer_start"] for v in mine] == [v["input_last_row"] for v in mine], name
        assert [v["int_phase"] for v in mine] == \
            [int(v["scorer_start"] or s == "int" and not v["go"]) for v, s in zip(mine, stage)]
        go = [v for v in mine if v["go"]]
        assert len(go) == 1 and go[0]["prune_head"] == pruned, name
