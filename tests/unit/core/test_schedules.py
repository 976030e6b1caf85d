"""Several north links on one site (issue 15): one schedule per link, combined when resolving.

The rules (``core.schedules``, docs/architecture.md "Several north links"): a limit from any
link always holds (the smallest wins); a setpoint comes from 2030.5, then OpenADR 2.0b, then
OpenADR 3, events before defaults; ``connect=False`` from any link islands; a link's cancel and
its responses are its own; a default limit of one link still holds against another link's
event.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.engine import Engine
from gateway.core.messages import (
    DefaultsReceived,
    EventCancelled,
    EventReceived,
    Input,
    NorthReport,
    Persist,
    Table,
    Tick,
)
from gateway.core.resolve import Claim, resolve
from gateway.core.schedule import Event, ResponseCode, ResponseDue, Schedule
from gateway.core.schedules import LINKS, Schedules
from gateway.core.site import SiteConfig
from gateway.core.units import MRID

T0 = 1_800_000_000.0
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


def _event(
    origin: str,
    mrid: str,
    controls: ControlSet,
    *,
    primacy: int = 1,
    start: float = T0,
    duration: float = 600.0,
    response_required: int = 0,
) -> Event:
    return Event(
        mrid=MRID(mrid),
        program=f"{origin}-program",
        primacy=primacy,
        creation_time=start,
        start=start,
        duration=duration,
        controls=controls,
        response_required=response_required,
        reply_to="/rsp" if origin == "sep2" else None,
        origin=origin,
    )


def _draw(bound: int) -> int:
    return 0 if bound == 0 else random.Random(bound).randint(min(0, bound), max(0, bound))


class Site:
    """The engine alone, fed inputs; what it reported north, by link."""

    def __init__(self) -> None:
        self.engine = Engine(CONFIG, draw=_draw)
        self.reports: list[NorthReport] = []
        self.notes: list[str] = []

    def feed(self, item: Input) -> None:
        for a in self.engine.handle(item):
            if isinstance(a, NorthReport):
                self.reports.append(a)

    def in_force(self, mode: Mode) -> bool | float | None:
        return self.engine.resolved.controls.get(mode)

    def codes(self, origin: str) -> list[tuple[str, int]]:
        return [(r.subject, r.code) for r in self.reports if r.origin == origin]


def test_each_links_export_limit_holds_and_neither_supersedes_the_other() -> None:
    # 2030.5 ranks higher (primacy 0) with the looser limit: in one schedule it superseded the
    # OpenADR 3 event on export_limit_w, and the site exported up to 3 kW against the VTN's 1 kW.
    site = Site()
    site.feed(
        EventReceived(
            T0,
            _event("sep2", "A1", ControlSet(export_limit_w=3000.0), primacy=0, response_required=3),
        )
    )
    site.feed(
        EventReceived(
            T0, _event("openadr3", "openadr3:e:d:0", ControlSet(export_limit_w=1000.0), primacy=5)
        )
    )
    site.feed(Tick(T0 + 1))
    assert site.in_force(Mode.EXPORT_LIMIT_W) == 1000.0
    # The 2030.5 server hears about its own control only, and never a 7 caused by a VTN.
    assert site.codes("sep2") == [("A1", 1), ("A1", 2)]
    assert site.engine.schedule.of("openadr3").get(MRID("openadr3:e:d:0")) is not None
    rec = site.engine.schedule.get(MRID("openadr3:e:d:0"))
    assert rec is not None
    assert rec.codes == (ResponseCode.RECEIVED, ResponseCode.STARTED)
    # The VTN's event ends first: the 2030.5 limit is what is left.
    site.feed(EventCancelled(T0 + 2, MRID("openadr3:e:d:0"), origin="openadr3"))
    site.feed(Tick(T0 + 3))
    assert site.in_force(Mode.EXPORT_LIMIT_W) == 3000.0
    assert "(sep2)" in site.engine.explain(Mode.EXPORT_LIMIT_W)


def test_a_setpoint_comes_from_2030_5_then_openadr_2_then_openadr_3() -> None:
    site = Site()
    site.feed(EventReceived(T0, _event("openadr3", "openadr3:x:d:0", ControlSet(target_w=5000.0))))
    site.feed(
        EventReceived(T0, _event("openadr2", "oadr2:x:m0:s0:i0", ControlSet(target_w=3000.0)))
    )
    site.feed(Tick(T0 + 1))
    assert site.in_force(Mode.TARGET_W) == 3000.0
    site.feed(EventReceived(T0 + 1, _event("sep2", "B1", ControlSet(target_w=2000.0), primacy=9)))
    site.feed(Tick(T0 + 2))
    assert site.in_force(Mode.TARGET_W) == 2000.0
    decision = site.engine.resolved.decisions[Mode.TARGET_W]
    assert decision.link == "sep2"
    assert sorted(c.link or "" for c in decision.overruled) == ["openadr2", "openadr3"]
    site.feed(EventCancelled(T0 + 3, MRID("B1")))
    site.feed(Tick(T0 + 4))
    assert site.in_force(Mode.TARGET_W) == 3000.0


def test_one_links_cancel_never_removes_another_links_control() -> None:
    site = Site()
    site.feed(EventReceived(T0, _event("sep2", "C1", ControlSet(export_limit_w=500.0))))
    site.feed(EventCancelled(T0 + 1, MRID("C1"), origin="openadr3"))
    site.feed(EventCancelled(T0 + 1, MRID("C1"), origin="openadr2"))
    site.feed(Tick(T0 + 2))
    assert site.in_force(Mode.EXPORT_LIMIT_W) == 500.0
    rec = site.engine.schedule.get(MRID("C1"))
    assert rec is not None
    assert rec.cancel_status is None


def test_an_mrid_another_link_holds_is_refused_and_the_holder_keeps_its_event() -> None:
    s = Schedules(draw=_draw)
    s.offer(_event("sep2", "D1", ControlSet(export_limit_w=500.0)), T0)
    due = s.offer(_event("openadr3", "D1", ControlSet(export_limit_w=9000.0)), T0)
    assert [(d.origin, d.code) for d in due] == [("openadr3", ResponseCode.INVALID)]
    rec = s.get(MRID("D1"))
    assert rec is not None
    assert rec.event.origin == "sep2"
    assert s.of("openadr3").get(MRID("D1")) is None


def test_an_island_request_from_any_link_holds_until_no_link_asks() -> None:
    site = Site()
    site.feed(
        EventReceived(
            T0, _event("openadr2", "oadr2:i:m0:s0:i0", ControlSet(connect=False), duration=60)
        )
    )
    site.feed(EventReceived(T0, _event("sep2", "E1", ControlSet(connect=True), duration=600)))
    site.feed(Tick(T0 + 1))
    assert site.in_force(Mode.CONNECT) is False
    assert site.engine.resolved.decisions[Mode.CONNECT].source is Source.UTILITY_EVENT
    site.feed(Tick(T0 + 61))
    assert site.in_force(Mode.CONNECT) is True


def test_a_default_setpoint_yields_to_any_links_event_but_a_default_limit_holds() -> None:
    site = Site()
    controls = ControlSet(export_limit_w=1500.0, target_w=1000.0)
    site.feed(DefaultsReceived(T0, "feeder", 1, controls))
    site.feed(Tick(T0 + 1))
    assert site.in_force(Mode.TARGET_W) == 1000.0
    oadr = _event("openadr3", "openadr3:f:d:0", ControlSet(export_limit_w=5000.0, target_w=4000.0))
    site.feed(EventReceived(T0 + 1, oadr))
    site.feed(Tick(T0 + 2))
    assert site.in_force(Mode.TARGET_W) == 4000.0  # an event beats every link's default
    assert site.in_force(Mode.EXPORT_LIMIT_W) == 1500.0  # a limit of any link holds
    assert site.engine.resolved.decisions[Mode.EXPORT_LIMIT_W].source is Source.UTILITY_DEFAULT


def test_the_responses_of_each_link_come_out_with_its_origin() -> None:
    s = Schedules(draw=_draw)
    s.offer(_event("sep2", "G1", ControlSet(export_limit_w=1.0), duration=10), T0)
    s.offer(_event("openadr2", "oadr2:g:m0:s0:i0", ControlSet(export_limit_w=2.0), duration=5), T0)
    due: list[ResponseDue] = s.advance(T0 + 20)
    assert {(d.mrid, d.origin) for d in due} == {
        (MRID("G1"), "sep2"),
        (MRID("oadr2:g:m0:s0:i0"), "openadr2"),
    }
    assert [d.at for d in due] == sorted(d.at for d in due)


def test_defaults_and_records_of_every_link_survive_a_restart() -> None:
    s = Schedules(draw=_draw)
    s.set_default("feeder", 1, ControlSet(export_limit_w=1500.0))
    s.set_default("dr", 2, ControlSet(import_limit_w=4000.0), origin="openadr3")
    s.offer(_event("openadr2", "oadr2:h:m0:s0:i0", ControlSet(export_limit_w=900.0)), T0)
    doc = s.defaults()
    assert [p["program"] for p in doc["programs"]] == ["feeder"]  # a 2030.5 site's document
    again = Schedules(draw=_draw)
    again.restore_defaults(doc)
    again.restore(s.records())
    active = again.active(T0 + 1)
    assert active[Mode.EXPORT_LIMIT_W].value == 900.0
    assert active[Mode.IMPORT_LIMIT_W].value == 4000.0
    assert set(again.links) == {"sep2", "openadr2", "openadr3"}


def test_one_link_alone_is_exactly_its_own_schedule() -> None:
    s = Schedules(draw=_draw)
    s.offer(_event("sep2", "J1", ControlSet(export_limit_w=700.0)), T0)
    assert s.in_force(Mode.EXPORT_LIMIT_W, T0 + 1) == s.of("sep2").in_force(
        Mode.EXPORT_LIMIT_W, T0 + 1
    )
    assert s.links == ("sep2",)


_link = st.sampled_from(LINKS)
_offer = st.tuples(
    _link,
    st.floats(0, 20_000, allow_nan=False),  # export limit, W
    st.integers(0, 3),  # primacy
    st.floats(0, 300, allow_nan=False),  # start offset
    st.floats(1, 600, allow_nan=False),  # duration
)


@settings(max_examples=150, deadline=None)
@given(
    offers=st.lists(_offer, min_size=1, max_size=12),
    default=st.one_of(st.none(), st.floats(0, 20_000, allow_nan=False)),
    at=st.floats(0, 900, allow_nan=False),
)
def test_the_combined_export_limit_never_exceeds_any_links_own_limit(
    offers: list[tuple[str, float, int, float, float]], default: float | None, at: float
) -> None:
    s = Schedules(draw=_draw)
    # Each link alone, as a site following only that link would have it: the reference.
    alone = {link: Schedule(draw=_draw) for link in LINKS}
    if default is not None:
        s.set_default("feeder", 1, ControlSet(export_limit_w=default))
        alone["sep2"].set_default("feeder", 1, ControlSet(export_limit_w=default))
    for i, (link, limit, primacy, start, duration) in enumerate(offers):
        event = _event(
            link,
            f"{link}:{i}",
            ControlSet(export_limit_w=limit),
            primacy=primacy,
            start=T0 + start,
            duration=duration,
        )
        s.offer(event, T0)
        alone[link].offer(event, T0)
    now = T0 + at
    s.advance(now)
    claims: dict[Mode, list[Claim]] = {}
    for link, mode, f in s.claims(now):
        assert f.source is not None
        assert f.value is not None
        claims.setdefault(mode, []).append(Claim(f.source, f.value, f.why, link))
    combined = resolve(claims).controls.export_limit_w
    own = [alone[link].in_force(Mode.EXPORT_LIMIT_W, now).value for link in LINKS]
    own_limits = [float(v) for v in own if v is not None]
    if not own_limits:
        assert combined is None
        return
    assert combined is not None
    assert all(combined <= v for v in own_limits)
    assert combined == min(own_limits)
    assert s.in_force(Mode.EXPORT_LIMIT_W, now).value == combined


def test_a_restarted_engine_keeps_each_links_events_apart() -> None:
    """What the engine persisted (events by mRID, the defaults document) brings every link's
    schedule back: the limits still combine, and a cancel still reaches only its own link."""
    site = Site()
    events: dict[str, dict[str, object]] = {}
    state: dict[str, dict[str, object]] = {}

    def feed(item: Input) -> None:
        for a in site.engine.handle(item):
            if isinstance(a, Persist):
                (events if a.table is Table.EVENT else state)[a.key] = dict(a.doc)

    feed(EventReceived(T0, _event("sep2", "K1", ControlSet(export_limit_w=3000.0))))
    feed(EventReceived(T0, _event("openadr3", "openadr3:k:d:0", ControlSet(export_limit_w=800.0))))
    feed(DefaultsReceived(T0, "feeder", 1, ControlSet(import_limit_w=5000.0)))
    feed(Tick(T0 + 1))
    again = Engine(CONFIG, draw=_draw, events=list(events.values()), state=state)
    again.handle(Tick(T0 + 2))
    assert again.resolved.controls.export_limit_w == 800.0
    assert again.resolved.controls.import_limit_w == 5000.0
    assert again.schedule.links == ("sep2", "openadr3")
    again.handle(EventCancelled(T0 + 3, MRID("openadr3:k:d:0"), origin="sep2"))
    again.handle(Tick(T0 + 4))
    assert again.resolved.controls.export_limit_w == 800.0
    again.handle(EventCancelled(T0 + 5, MRID("openadr3:k:d:0"), origin="openadr3"))
    again.handle(Tick(T0 + 6))
    assert again.resolved.controls.export_limit_w == 3000.0


_mixed = st.tuples(
    _link,
    st.one_of(st.none(), st.floats(-9_000, 9_000, allow_nan=False)),  # target W
    st.one_of(st.none(), st.booleans()),  # connect
    st.integers(0, 3),  # primacy
    st.floats(0, 300, allow_nan=False),  # start offset
    st.floats(1, 600, allow_nan=False),  # duration
)


@settings(max_examples=150, deadline=None)
@given(offers=st.lists(_mixed, min_size=1, max_size=12), at=st.floats(0, 900, allow_nan=False))
def test_a_setpoint_is_the_first_links_own_and_any_links_disconnect_holds(
    offers: list[tuple[str, float | None, bool | None, int, float, float]], at: float
) -> None:
    s = Schedules(draw=_draw)
    alone = {link: Schedule(draw=_draw) for link in LINKS}
    for i, (link, target, connect, primacy, start, duration) in enumerate(offers):
        controls = ControlSet(target_w=target, connect=connect)
        if controls.is_empty():
            continue
        event = _event(
            link, f"{link}:{i}", controls, primacy=primacy, start=T0 + start, duration=duration
        )
        s.offer(event, T0)
        alone[link].offer(event, T0)
    now = T0 + at
    s.advance(now)
    claims: dict[Mode, list[Claim]] = {}
    for link, mode, f in s.claims(now):
        assert f.source is not None
        assert f.value is not None
        claims.setdefault(mode, []).append(Claim(f.source, f.value, f.why, link, LINKS.index(link)))
    combined = resolve(claims).controls
    targets = [alone[link].in_force(Mode.TARGET_W, now).value for link in LINKS]
    first = next((v for v in targets if v is not None), None)
    assert combined.target_w == first
    connects = [alone[link].in_force(Mode.CONNECT, now).value for link in LINKS]
    said = [v for v in connects if v is not None]
    assert combined.connect == (None if not said else all(said))
