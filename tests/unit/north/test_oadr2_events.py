"""Event tracking over full oadrDistributeEvent lists (pure): new, modified, cancelled, gone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.north.openadr2.config import ProgramMapping
from gateway.north.openadr2.events import Tracker
from gateway.north.openadr2.mapping import OPT_IN, OPT_OUT, Decision, decide

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()


def ev(
    event_id: str, mod: int = 0, status: str = "far", payload: float = 0.0, respond: str = "always"
) -> dict[str, Any]:
    start = NOW + timedelta(minutes=1)
    return {
        "event_descriptor": {
            "event_id": event_id,
            "modification_number": mod,
            "event_status": status,
            "market_context": "http://m",
            "created_date_time": NOW,
        },
        "active_period": {"dtstart": start, "duration": timedelta(minutes=5)},
        "event_signals": [
            {
                "signal_name": "LOAD_CONTROL",
                "signal_type": "x-loadControlCapacity",
                "intervals": [
                    {
                        "dtstart": start,
                        "duration": timedelta(minutes=5),
                        "uid": 0,
                        "signal_payload": payload,
                    }
                ],
            }
        ],
        "response_required": respond,
    }


class Decider:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, event: Any) -> Decision:
        self.calls.append(event["event_descriptor"]["event_id"])
        return decide(event, ProgramMapping(), now=T, assess=lambda _: [])


def test_new_event_is_offered_and_answered_and_a_repeat_is_not_redecided() -> None:
    t, d = Tracker(), Decider()
    out = t.distribute([ev("a")], d)
    assert [e.controls for e in out.offers] == [ControlSet(connect=False)]
    assert [(r.event_id, r.opt) for r in out.responses] == [("a", OPT_IN)]
    assert out.changed
    again = t.distribute([ev("a")], d)
    assert d.calls == ["a"]
    assert again.offers == []
    assert again.cancels == []
    assert not again.changed
    assert [(r.event_id, r.opt) for r in again.responses] == [("a", OPT_IN)]


def test_empty_list_answers_nothing() -> None:
    out = Tracker().distribute([], Decider())
    assert out.offers == []
    assert out.responses == []
    assert not out.changed


def test_modification_cancels_the_old_intervals_and_offers_new_ones() -> None:
    t, d = Tracker(), Decider()
    first = t.distribute([ev("a")], d).offers[0].mrid
    out = t.distribute([ev("a", mod=1, payload=1.0)], d)
    assert out.cancels == [first]
    assert [e.controls for e in out.offers] == [ControlSet(connect=True)]
    assert out.offers[0].mrid != first
    assert [(r.modification_number, r.opt) for r in out.responses] == [(1, OPT_IN)]


def test_cancelled_status_cancels_and_implied_cancellation_cancels_what_is_gone() -> None:
    t, d = Tracker(), Decider()
    out = t.distribute([ev("a"), ev("b")], d)
    a, b = (e.mrid for e in out.offers)
    assert len(out.responses) == 2
    out = t.distribute([ev("a", mod=1, status="cancelled"), ev("b")], d)
    assert out.cancels == [a]
    assert out.offers == []
    out = t.distribute([ev("a", mod=1, status="cancelled")], d)
    assert out.cancels == [b]
    assert any("implied" in line for line in out.log)
    out = t.distribute([], d)
    assert out.cancels == []
    assert t.known == {}


def test_opt_out_is_remembered_with_its_reason_and_code() -> None:
    t, d = Tracker(), Decider()
    out = t.distribute([ev("a", payload=0.5)], d)
    assert out.offers == []
    assert out.responses[0].opt == OPT_OUT
    assert "0.5" in t.known["a"].reason
    out = t.distribute([ev("a", payload=0.5)], d)
    assert out.responses[0].opt == OPT_OUT
    assert d.calls == ["a"]


def test_state_survives_a_restart_through_json() -> None:
    t, d = Tracker(), Decider()
    t.distribute([ev("a"), ev("b", payload=0.5)], d)
    doc = json.loads(json.dumps(t.to_doc()))
    restored, problems = Tracker.from_doc(doc)
    assert problems == []
    assert restored.known == t.known
    d2 = Decider()
    out = restored.distribute([ev("a"), ev("b", payload=0.5)], d2)
    assert d2.calls == []
    assert out.offers == []
    assert out.cancels == []
    assert [r.opt for r in out.responses] == [OPT_IN, OPT_OUT]


def test_damaged_state_drops_only_the_bad_entries() -> None:
    doc = Tracker().to_doc()
    doc["events"] = {
        "ok": {"mod": 0, "opt": "optIn", "code": 200, "reason": "", "mrids": ["m"]},
        "bad": {"mod": "x"},
    }
    t, problems = Tracker.from_doc(doc)
    assert list(t.known) == ["ok"]
    assert len(problems) == 1
    assert "bad" in problems[0]
    assert Tracker.from_doc({"events": 3})[0].known == {}


def test_unidentifiable_events_are_logged_and_skipped() -> None:
    out = Tracker().distribute([{"x": 1}, "junk", ev("a")], Decider())
    assert [r.event_id for r in out.responses] == ["a"]
    assert sum("cannot identify" in line for line in out.log) == 2


def test_no_response_when_not_required_and_older_modification_is_ignored() -> None:
    t, d = Tracker(), Decider()
    assert t.distribute([ev("a", respond="never")], d).responses == []
    t.distribute([ev("a", respond="never"), ev("b", mod=3)], d)
    out = t.distribute([ev("a", respond="never"), ev("b", mod=2)], d)
    assert out.offers == []
    assert d.calls == ["a", "b"]
    assert any("older" in line for line in out.log)


entries = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 3),
        st.sampled_from(["far", "active", "cancelled", "completed"]),
        st.sampled_from([0.0, 1.0, 0.5]),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, min_size=1, max_size=8))
def test_any_sequence_of_lists_keeps_the_core_consistent(steps: list[Any]) -> None:
    t, d = Tracker(), Decider()
    offered: list[str] = []
    cancelled: set[str] = set()
    decided: set[tuple[str, int]] = set()  # since the id was last absent from a list

    def deciding(event: Any) -> Decision:
        desc = event["event_descriptor"]
        pair = (desc["event_id"], desc["modification_number"])
        assert pair not in decided, f"{pair} decided twice while listed"
        decided.add(pair)
        return d(event)

    for step in steps:
        listing: dict[str, dict[str, Any]] = {}
        for event_id, mod, status, payload in step:  # one entry per id, as a VTN sends
            listing.setdefault(event_id, ev(event_id, mod, status, payload))
        out = t.distribute(list(listing.values()), deciding)
        decided = {p for p in decided if p[0] in listing}
        offered += [e.mrid for e in out.offers]
        cancelled |= set(out.cancels)
        assert {r.event_id for r in out.responses} <= set(listing)
        assert set(t.known) <= set(listing)  # gone from the list = forgotten
        live = {m for k in t.known.values() if not k.cancelled for m in k.mrids}
        assert live <= set(offered)
        assert not live & cancelled  # what is known live was never cancelled
        assert set(offered) - live <= cancelled  # everything else was
    assert len(offered) == len(set(offered))  # no mRID offered twice


def test_an_event_listed_again_after_it_left_gets_new_mrids() -> None:
    t, d = Tracker(), Decider()
    first = t.distribute([ev("a")], d).offers[0].mrid
    assert t.distribute([], d).cancels == [first]
    again = t.distribute([ev("a")], d)
    assert [e.mrid for e in again.offers] == [f"{first}:g1"]
    restored, _ = Tracker.from_doc(json.loads(json.dumps(t.to_doc())))
    assert restored.gone == {"a": 1}
