"""Event tracking: new, modified, deleted, vanished -> core inputs; restart from the saved doc."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.core.messages import EventCancelled, EventReceived
from gateway.core.units import Timestamp
from gateway.north.openadr3.mapping import ProgramMapping, map_event
from gateway.north.openadr3.model import Event, Interval, IntervalPeriod, ValuesMap
from gateway.north.openadr3.tracking import Tracker

NOW = 1_800_000_000.0
CFG = ProgramMapping("p")


def _ev(eid: str, kw: float, digest: str, program: str = "p1", n: int = 1) -> Event:
    return Event(
        id=eid,
        program_id=program,
        intervals=tuple(
            Interval(i, None, (ValuesMap("EXPORT_CAPACITY_LIMIT", (kw,)),)) for i in range(n)
        ),
        interval_period=IntervalPeriod(NOW + 10, 600),
        digest=digest,
    )


def _mapper(ev: Event, now: Timestamp):  # type: ignore[no-untyped-def]
    return map_event(ev, CFG, now)


def _yes(_c: ControlSet, _now: Timestamp) -> list[str]:
    return []


def _tracker(**kw: object) -> Tracker:
    return Tracker(_mapper, _yes, **kw)  # type: ignore[arg-type]


def test_new_modified_unchanged_vanished() -> None:
    t = _tracker()
    first = t.sync("p1", [_ev("a", 1, "d1", n=2)], [], NOW)
    assert [type(i) for i in first.inputs] == [EventReceived, EventReceived]
    assert first.followed == ["a"]
    assert t.sync("p1", [_ev("a", 1, "d1", n=2)], [], NOW).inputs == []  # re-poll: nothing
    mod = t.sync("p1", [_ev("a", 2, "d2")], [], NOW)
    # Make before break: the new version first, then the old one's cancellations (the other
    # way round, the devices ran without the limit between the two: conformance OA3-08).
    assert [type(i) for i in mod.inputs] == [EventReceived, EventCancelled, EventCancelled]
    cancelled = {i.mrid for i in mod.inputs if isinstance(i, EventCancelled)}
    assert cancelled == {"openadr3:a:d1:0", "openadr3:a:d1:1"}
    assert "event a modified: 2 old interval(s) cancelled" in mod.log
    gone = t.sync("p1", [], [], NOW)
    assert [i.mrid for i in gone.inputs if isinstance(i, EventCancelled)] == ["openadr3:a:d2:0"]
    assert t.known == {}


def test_unreadable_event_is_not_a_deletion_and_other_programs_are_untouched() -> None:
    t = _tracker()
    t.sync("p1", [_ev("a", 1, "d1")], [], NOW)
    t.sync("p2", [_ev("b", 1, "d1", program="p2")], [], NOW)
    assert t.sync("p1", [], ["a"], NOW).inputs == []
    assert set(t.known) == {"a", "b"}
    wrong = t.sync("p1", [_ev("c", 1, "d1", program="p2")], [], NOW)
    assert "polled for 'p1': ignored" in wrong.log[0]


def test_delete_by_notification_and_unknown_delete() -> None:
    t = _tracker()
    t.upsert(_ev("a", 1, "d1"), NOW)
    out = t.remove("a", NOW)
    assert [type(i) for i in out.inputs] == [EventCancelled]
    assert t.remove("a", NOW).inputs == []


def test_refused_by_assess_is_logged_once_and_not_fed() -> None:
    calls: list[ControlSet] = []

    def no(c: ControlSet, _now: Timestamp) -> list[str]:
        calls.append(c)
        return ["cannot island: no EV connected to carry the home"]

    t = Tracker(_mapper, no)
    out = t.upsert(_ev("a", 1, "d1"), NOW)
    assert out.inputs == []
    assert any("not followed" in line and "no EV" in line for line in out.log)
    assert t.upsert(_ev("a", 1, "d1"), NOW).log == []  # final for that version
    assert len(calls) == 1


def test_restart_from_the_saved_doc_feeds_nothing_twice() -> None:
    t = _tracker()
    t.sync("p1", [_ev("a", 1, "d1")], [], NOW)
    doc = t.to_doc()
    again = _tracker(known=Tracker.known_from_doc(doc))
    assert again.sync("p1", [_ev("a", 1, "d1")], [], NOW).inputs == []
    assert again.known["a"].start == NOW + 10
    assert again.known["a"].end == NOW + 610
    # A damaged doc is dropped entry by entry, not trusted.
    bad = {"events": {"x": {"program": 1}, "y": "z", "a": doc["events"]["a"]}}
    assert set(Tracker.known_from_doc(bad)) == {"a"}
    assert Tracker.known_from_doc(None) == {}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from("abcd"), st.sampled_from(["d1", "d2", "d3"])),
            max_size=4,
            unique_by=lambda x: x[0],
        ),
        max_size=6,
    )
)
def test_property_every_fed_mrid_is_cancelled_exactly_once_when_it_goes(
    polls: list[list[tuple[str, str]]],
) -> None:
    t = _tracker()
    live: set[str] = set()
    for poll in [*polls, []]:  # the last poll lists nothing: everything ends
        out = t.sync("p1", [_ev(e, 1, d) for e, d in poll], [], NOW)
        for i in out.inputs:
            if isinstance(i, EventCancelled):
                assert i.mrid in live
                live.remove(i.mrid)
            elif isinstance(i, EventReceived):
                assert i.event.mrid not in live
                live.add(i.event.mrid)
        assert live == {m for k in t.known.values() for m in k.mrids}
    assert live == set()
