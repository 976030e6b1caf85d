"""EiOpt decisions (north/openadr2/opts.py): availability, debounce, event opts, persistence."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.island import ChargerMode
from gateway.core.messages import ChargerTelemetry
from gateway.north.openadr2.opts import CancelOpt, CreateOpt, OptBook, unavailable

CTX = "http://utility.example/islanding"
NO_EV = ["cannot island: no EV connected to carry the home"]


def book(debounce_s: float = 10.0, horizon_s: float = 3600.0) -> OptBook:
    ids = itertools.count(1)
    return OptBook(debounce_s, horizon_s, new_id=lambda: f"opt-{next(ids)}")


def charger(*, connected: bool = True, soc: float | None = 60.0) -> ChargerTelemetry:
    return ChargerTelemetry(0.0, ChargerMode.STOPPED, 0.0, soc, ev_connected=connected)


def test_island_availability_is_the_cores_own_assessment() -> None:
    assert unavailable("island", island=lambda: NO_EV, charger=None, reserve_pct=20) == NO_EV
    assert unavailable("island", island=list, charger=None, reserve_pct=20) == []


def test_discharge_needs_a_connected_ev_above_its_reserve() -> None:
    def why(c: ChargerTelemetry | None) -> list[str]:
        return unavailable("discharge", island=lambda: NO_EV, charger=c, reserve_pct=20.0)

    assert why(charger()) == []
    assert "not reporting" in why(None)[0]
    assert "no EV" in why(charger(connected=False))[0]
    assert "reserve 20 %" in why(charger(soc=20.0))[0]
    assert "not known" in why(charger(soc=None))[0]


def test_opt_out_only_after_the_debounce_then_cancel_after_the_debounce() -> None:
    b = book()
    assert b.step(0.0, {CTX: NO_EV}, {}) == []
    assert b.step(9.9, {CTX: NO_EV}, {}) == []
    [create] = b.step(10.0, {CTX: NO_EV}, {})
    assert isinstance(create, CreateOpt)
    assert (create.opt_type, create.opt_reason, create.market_context) == (
        "optOut",
        "notParticipating",
        CTX,
    )
    assert (create.start, create.duration_s, create.event_id) == (10.0, 3600.0, None)
    assert "no EV" in create.reason
    b.sent(create)
    assert b.step(11.0, {CTX: NO_EV}, {}) == []
    # A plug jiggle shorter than the debounce is not reported.
    assert b.step(12.0, {CTX: []}, {}) == []
    assert b.step(15.0, {CTX: NO_EV}, {}) == []
    assert b.step(30.0, {CTX: []}, {}) == []
    assert b.step(39.0, {CTX: []}, {}) == []
    [cancel] = b.step(40.0, {CTX: []}, {})
    assert cancel == CancelOpt(CTX, create.opt_id, "available again")
    b.sent(cancel)
    assert b.open == {}
    assert b.step(41.0, {CTX: []}, {}) == []


def test_a_send_the_vtn_did_not_acknowledge_is_due_again() -> None:
    b = book(debounce_s=0.0)
    [first] = b.step(0.0, {CTX: NO_EV}, {})
    [again] = b.step(1.0, {CTX: NO_EV}, {})  # not sent(): the VTN never acknowledged
    assert isinstance(again, CreateOpt)
    assert again.opt_id != first.opt_id
    b.sent(again)
    assert b.step(2.0, {CTX: NO_EV}, {}) == []


def test_the_schedule_is_renewed_when_its_horizon_runs_out() -> None:
    b = book(debounce_s=5.0, horizon_s=100.0)
    b.step(0.0, {CTX: NO_EV}, {})
    [create] = b.step(5.0, {CTX: NO_EV}, {})
    b.sent(create)
    assert b.step(104.9, {CTX: NO_EV}, {}) == []
    [renew] = b.step(105.0, {CTX: NO_EV}, {})  # at once: the site never became available
    assert isinstance(renew, CreateOpt)
    assert (renew.start, renew.opt_id) == (105.0, create.opt_id)  # a revised schedule
    b.sent(renew)
    assert b.step(106.0, {CTX: NO_EV}, {}) == []


def test_an_open_ended_schedule_never_runs_out() -> None:
    b = book(debounce_s=0.0, horizon_s=0.0)
    [create] = b.step(0.0, {CTX: NO_EV}, {})
    assert create.duration_s == 0.0
    b.sent(create)
    assert b.step(1e9, {CTX: NO_EV}, {}) == []


def test_an_event_the_site_can_no_longer_carry_out_is_opted_out_once_per_modification() -> None:
    b = book(debounce_s=2.0)
    assert b.step(0.0, {}, {("e1", 0): []}) == []
    assert b.step(1.0, {}, {("e1", 0): NO_EV}) == []
    [create] = b.step(3.0, {}, {("e1", 0): NO_EV})
    assert isinstance(create, CreateOpt)
    assert (create.event_id, create.modification_number, create.start) == ("e1", 0, None)
    assert create.market_context is None
    b.sent(create)
    assert b.step(10.0, {}, {("e1", 0): NO_EV}) == []
    assert b.step(10.0, {}, {("e1", 0): []}) == []  # never cancelled by us
    # A modification is a new decision at the VTN: opted out again if it still cannot be done.
    assert b.step(11.0, {}, {("e1", 1): NO_EV}) == []
    [again] = b.step(13.0, {}, {("e1", 1): NO_EV})
    assert (again.event_id, again.modification_number) == ("e1", 1)
    b.sent(again)
    assert b.step(14.0, {}, {}) == []
    assert b.open == {}  # the event is over: forgotten


def test_open_opts_survive_a_restart_and_are_cancelled_with_their_id() -> None:
    b = book(debounce_s=0.0)
    [create] = b.step(0.0, {CTX: NO_EV}, {})
    b.sent(create)
    doc = b.to_doc()
    after = book(debounce_s=0.0)
    assert after.load(doc) == []
    assert after.step(1.0, {CTX: NO_EV}, {}) == []  # no second optOut
    [cancel] = after.step(2.0, {CTX: []}, {})
    assert cancel == CancelOpt(CTX, create.opt_id, "available again")


def test_a_damaged_stored_document_is_reported_and_skipped() -> None:
    b = book()
    problems = b.load({"a": {"until": 1.0}, "b": {"opt_id": "x", "until": None}, "c": 3})
    assert len(problems) == 2
    assert list(b.open) == ["b"]


@given(
    st.lists(st.tuples(st.floats(0.0, 5.0), st.booleans(), st.booleans()), min_size=1, max_size=40)
)
def test_any_plug_history_never_repeats_an_opt_out_and_settles_on_the_truth(
    history: list[tuple[float, bool, bool]],
) -> None:
    """(seconds later, EV away?, VTN acknowledges?) in any order: never a second optOut while
    one is open, never a cancel of anything but the open opt, and once the state holds (and
    the VTN answers) the open opts say exactly whether the site is unavailable."""
    b = book(debounce_s=2.0, horizon_s=0.0)
    t = 0.0
    away = False
    for dt, away, ack in history:
        t += dt
        for action in b.step(t, {CTX: NO_EV if away else []}, {}):
            if isinstance(action, CreateOpt):
                assert CTX not in b.open
            else:
                assert action.opt_id == b.open[CTX].opt_id
            if ack:
                b.sent(action)
    for settle in (t + 3.0, t + 6.0):
        for action in b.step(settle, {CTX: NO_EV if away else []}, {}):
            b.sent(action)
    assert (CTX in b.open) is away
