"""A scripted expectation that does not hold is reported plainly: what was expected and what was seen."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from demo.runner import HourRunner
from demo.script import Expectation, Step, dnd_stays_off, starface_is
from demo.stack import DemoStack
from demo.view import PlainView
from simulators.paired import paired_seeds


def test_it_reports_a_timed_out_and_a_broken_expectation_with_what_it_saw(tmp_path: Path) -> None:
    out = io.StringIO()
    notes: list[str] = []
    with DemoStack(paired_seeds(12), tmp_path, 1.0, notes.append) as demo:
        steps = [
            Step(0, "user 1 signs in and starts a Teams call",
                 lambda d: (d.s.teams(1, "sign_in"), d.s.teams(1, "call_start")), (1,),
                 (Expectation("user 1: chat text 'nonsense'", starface_is(1, dnd=True, text="nonsense"),
                              timeout_s=3.0),
                  Expectation("user 1: DND stays off", dnd_stays_off(1), timeout_s=10.0, kind="throughout"))),
        ]
        result = HourRunner(demo, steps, [1], PlainView(Console(file=out, width=200)),
                            hour_s=5.0, tick_s=0.25).run()
    assert [o.ok for o in result.outcomes] == [False, False]
    assert {o.what for o in result.outcomes} == {"user 1: chat text 'nonsense'", "user 1: DND stays off"}
    assert all("DND on, chat text 'On a call in MS Teams'" in o.seen for o in result.outcomes)
    text = out.getvalue()
    assert "FAIL  expected: user 1: chat text 'nonsense' (within 3 s); seen: DND on" in text
    assert "FAIL  expected: user 1: DND stays off (within 10 s); seen: DND on" in text
    assert len(result.failures) == 2
