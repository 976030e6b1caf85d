"""The utility simulator's pure state: scripting API, event status on the server clock, faults,
paging views, what clients reported (mirrors, ConnectionPoint), what a Notification carries,
and scenario files. No sockets (those are in tests/integration/sim)."""

from __future__ import annotations

import tomllib

import pytest

from gateway.north.sep2 import codec, identity, metering
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pubsub import ConnectionPoint, Notification
from gateway.north.sep2.resources import (
    DERProgramList,
    EndDevice,
    EndDeviceList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
)
from gateway.sim.utility import mirrors, notifier, paths, views
from gateway.sim.utility.records import Change, Tamper
from gateway.sim.utility.scenario import Scenario, ScenarioError, modes
from gateway.sim.utility.state import DOC_PEN, UtilityState

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
OTHER = "854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B"
T0 = 3_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = float(T0)

    def __call__(self) -> float:
        return self.t


def base(watts: int = 1000) -> DERControlBase:
    return DERControlBase(opModExpLimW=ActivePower.from_watts(watts))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> UtilityState:
    return UtilityState(clock=clock)


def test_mrids_carry_the_pen_and_are_unique(state: UtilityState) -> None:
    ids = {state.new_mrid() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(m) == 32 and int(m[-8:], 16) == DOC_PEN for m in ids)
    assert UtilityState(pen=0xABCDEF01).new_mrid().endswith("ABCDEF01")


def test_end_device_identity_pin_and_duplicates(state: UtilityState) -> None:
    e = state.add_end_device(LFDI.lower())
    assert (e.lfdi, e.sfdi, e.pin) == (LFDI, 167261211391, 111115)  # sep2.md §5.1 vectors
    assert e.registered_at == T0
    with pytest.raises(ValueError, match="already registered"):
        state.add_end_device(LFDI)
    with pytest.raises(ValueError, match="check digit"):
        state.add_end_device(OTHER, pin=111111)
    with pytest.raises(identity.IdentityError):
        state.add_end_device("XYZ")
    assert state.end_device(1) is e
    assert state.end_device(LFDI.lower()) is e
    assert views.registration(state, e) is not None
    nopin = state.add_end_device(OTHER, pin=None)
    assert views.registration(state, nopin) is None
    assert views.end_device(nopin).RegistrationLink is None  # ALL-05


def test_visibility_device_and_aggregator(state: UtilityState) -> None:
    agg = "A" * 40
    mine = state.add_end_device(LFDI)
    theirs = state.add_end_device(OTHER, aggregator=agg)
    assert state.visible_to(LFDI) == [mine]
    assert state.visible_to(agg.lower()) == [theirs]
    assert state.visible_to(None) == []
    assert agg in state.aggregators


def test_event_status_follows_the_server_clock(state: UtilityState, clock: Clock) -> None:
    state.add_end_device(LFDI)
    p = state.add_program("p")
    mrid = state.add_control(p, start=T0 + 100, duration=60, base=base())
    c = state.control(mrid)
    assert c.status(state.now()) == (0, T0)
    clock.t = T0 + 100
    assert c.status(state.now()) == (1, T0 + 100)
    clock.t = T0 + 130
    state.cancel(mrid, randomized=True)
    assert c.status(state.now()) == (3, T0 + 130)
    assert c.version == 1
    assert c.creation_time == T0  # the event's identity does not change
    control = views.control(state, p, c)
    assert control.EventStatus.currentStatus == 3
    assert control.replyTo == paths.response_list(p.number)
    assert control.responseRequired == 3


def test_supersede_marks_the_old_and_adds_the_new(state: UtilityState, clock: Clock) -> None:
    p = state.add_program("p")
    old = state.add_control(p, start=T0 + 10, duration=60, base=base(1000))
    clock.t += 5
    new = state.supersede(old, base=base(500))
    assert state.control(old).status(state.now())[0] == 4
    assert state.control(new).start == T0 + 10
    assert state.control(new).base == base(500)
    listed = views.control_list(state, p, 0, 10)
    assert [c.mRID for c in listed.DERControl] == [new, old]  # same start: newest first
    state.delete_control(old)
    assert views.control_list(state, p, 0, 10).all == 1


def test_defaults_versions_and_404_when_none(state: UtilityState) -> None:
    p = state.add_program("p", default=base(5000))
    first = views.default(p)
    assert first is not None
    assert first.href == paths.dderc(p.key)
    assert first.version == 0
    state.set_default(p, base(3000))
    second = views.default(p)
    assert second is not None
    assert second.version == 1
    assert second.mRID != first.mRID
    state.set_default(p, None)
    assert views.default(p) is None
    codec.decode(codec.encode(second))  # what is served is what the codec accepts


def test_programs_reach_current_and_future_devices(state: UtilityState) -> None:
    early = state.add_end_device(LFDI)
    everyone = state.add_program("everyone", primacy=5)
    only = state.add_program("only", primacy=1, end_devices=[LFDI])
    late = state.add_end_device(OTHER)
    assert early.fsas[0].programs == [everyone.number, only.number]
    assert late.fsas[0].programs == [everyone.number]
    listed = views.derp_list(state, early, early.fsas[0], 0, 10)
    assert [p.mRID for p in listed.DERProgram] == [only.mrid, everyone.mrid]  # by primacy
    state.remove_fsa(LFDI, 1)
    assert views.fsa_list(state, early, 0, 10).all == 0


def test_relocation_moves_hrefs(state: UtilityState) -> None:
    p = state.add_program("p")
    old = p.key
    new = state.relocate_program(p)
    assert new != old
    assert state.program_at(old) is None
    assert state.program_at(new) is p
    assert views.program(p).href == paths.derp(new)


def test_paging_all_and_results(state: UtilityState) -> None:
    for i in range(5):
        state.add_end_device(f"{i:040X}")
    page = views.end_device_list(state, state.end_devices, 3, 10)
    assert (page.all, page.results) == (5, 2)
    assert views.end_device_list(state, state.end_devices, 0, 0).results == 0
    sfdis = [e.sFDI for e in views.end_device_list(state, state.end_devices, 0, 5).EndDevice]
    assert sfdis == sorted(sfdis)


def test_poll_rates(state: UtilityState) -> None:
    assert views.dcap(state).pollRate is None
    state.set_poll_rate("dcap", 60)
    state.set_poll_rate("fsa", 30)
    assert views.dcap(state).pollRate == 60
    e = state.add_end_device(LFDI)
    assert views.fsa_list(state, e, 0, 1).pollRate == 30
    state.set_post_rate(120)
    assert views.end_device(e).postRate == 120
    with pytest.raises(ValueError, match="pollRate"):
        state.set_poll_rate("derc", 10)  # type: ignore[arg-type]


def test_faults_count_paths_methods_and_clear(state: UtilityState) -> None:
    state.fail(429, retry_after=7, count=2, paths=["/derp/*/derc"])
    assert state.take_fault("GET", "/dcap") is None
    hit = state.take_fault("GET", "/derp/1/derc")
    assert hit is not None
    assert (hit.status, hit.retry_after) == (429, 7)
    assert state.take_fault("GET", "/derp/1/derc") is not None
    assert state.take_fault("GET", "/derp/1/derc") is None  # used up
    state.fail(500, methods=["post"])
    assert state.take_fault("GET", "/edev") is None
    for _ in range(3):
        assert state.take_fault("POST", "/edev") is not None  # until cleared
    state.clear_faults()
    assert state.take_fault("POST", "/edev") is None
    with pytest.raises(ValueError, match="4xx or 5xx"):
        state.fail(200)


def test_changes_name_the_hrefs(state: UtilityState) -> None:
    seen: list[Change] = []
    state.listen(seen.append)
    p = state.add_program("p")
    mrid = state.add_control(p, duration=10, base=base())
    state.cancel(mrid)
    state.set_default(p, base())
    state.cut()
    kinds = [(c.kind, c.hrefs) for c in seen]
    assert ("control", (paths.derc_list(p.key),)) in kinds
    assert ("control", (paths.derc_list(p.key), paths.derc(p.key, 1))) in kinds
    assert ("default", (paths.dderc(p.key),)) in kinds
    assert kinds[-1] == ("comms", ())
    assert not state.comms_up


def test_mirrors_created_overwritten_read_and_lost(state: UtilityState, clock: Clock) -> None:
    mup = metering.der_mirror_usage_point(LFDI, DOC_PEN, at=T0, der_w=-500, volts=231)
    held, created = mirrors.store_mup(state, mup, b"raw", OTHER)  # an aggregator posts it
    assert (held.number, created, held.body) == (1, True, b"raw")
    clock.t += 5
    again, created = mirrors.store_mup(state, mup, b"raw 2", OTHER)
    assert (again is held, created, held.updated) == (True, False, T0 + 5)
    w, v = (m.mRID for m in mup.MirrorMeterReading)
    value_only = metering.MirrorMeterReading(mRID=v, Reading=metering.Reading(value=2320))
    assert mirrors.store_readings(state, held, [value_only]) == [2]
    stray = metering.MirrorMeterReading(mRID="01" * 16, Reading=metering.Reading(value=1))
    with pytest.raises(ValueError, match="ReadingType"):
        mirrors.store_readings(state, held, [stray])
    assert len(state.readings()) == 5  # 2 + 2 in the MUP POSTs, 1 alone
    assert len(state.readings(LFDI)) == len(state.readings(OTHER.lower())) == 5
    assert state.readings("AB" * 20) == []
    last = state.readings(mrid=v)[-1]
    assert (last.mup, last.at, last.reading.Reading) == (mup.mRID, T0 + 5, value_only.Reading)
    assert last.reading.ReadingType == mup.MirrorMeterReading[1].ReadingType
    assert len(state.readings(mup=mup.mRID.lower(), mrid=w)) == 2
    assert mirrors.first_level(held).MirrorMeterReading == ()
    assert mirrors.mup_list(state, OTHER, 0, 10).all == 1
    assert mirrors.mup_list(state, LFDI, 0, 10).all == 0  # not the poster
    assert state.mirror_usage_points(LFDI) == [mup]
    state.lose_mup(2)  # no such mirror: nothing lost
    assert state.find_mup(mup.mRID) is held
    sc = Scenario.parse({"step": [{"at": 1, "action": "lose_mup", "mup": 1}]})
    sc.run_step(state, sc.steps[0])
    assert (state.mup(1), state.readings()) == (None, [])


def test_connection_point_subscriptions_and_der_queries(state: UtilityState) -> None:
    edev = state.add_end_device(LFDI)
    assert views.end_device(edev).ConnectionPointLink == views.Link(paths.cp(edev.number))
    assert state.connection_point(LFDI) is None
    state.set_connection_point(LFDI.lower(), "4102345678")
    assert state.connection_point(LFDI) == ConnectionPoint("4102345678")
    assert state.subscriptions(LFDI) == []
    assert state.der_status(LFDI) is None
    with pytest.raises(KeyError):
        state.connection_point(OTHER)
    with pytest.raises(KeyError):
        state.der_settings(LFDI, der=9)


def test_what_a_notification_carries(state: UtilityState) -> None:
    mine = state.add_end_device(LFDI)
    theirs = state.add_end_device(OTHER)
    p = state.add_program("p")
    at = notifier.resource_at
    listed = at(state, "/edev", 5, mine)
    assert isinstance(listed, EndDeviceList)
    assert [e.lFDI for e in listed.EndDevice] == [LFDI]  # only what the subscriber may see
    assert isinstance(at(state, "/edev/1", 1, mine), EndDevice)
    assert at(state, f"/edev/{theirs.number}", 1, mine) is None
    assert isinstance(at(state, "/edev/1/fsa", 1, mine), FunctionSetAssignmentsList)
    assert isinstance(at(state, "/edev/1/fsa/1", 1, mine), FunctionSetAssignments)
    derps = at(state, "/edev/1/fsa/1/derp?l=9", 0, mine)
    assert isinstance(derps, DERProgramList)
    assert (derps.all, derps.results) == (1, 0)  # limit 0: the list without its items
    for nothing in ("/edev/1/fsa/9", "/edev/1/der", "/edev/1/fsa/1/x", "/derp/zz", "/tm"):
        assert at(state, nothing, 1, mine) is None
    assert notifier.covers("/edev/1/fsa", paths.derp_list(1, 1))
    assert not notifier.covers("/edev/1/fsa", "/edev/1")
    assert not notifier.covers(f"/derp/{p.key}", "/derp/10")
    body = notifier.notification_body(
        "/edev/1", "https://s/edev/1/sub/1", at(state, "/edev/1", 1, mine)
    )
    note = codec.decode(body)
    assert isinstance(note, Notification)
    assert (note.status, note.Resource) == (0, views.end_device(mine))
    with pytest.raises(ValueError, match="retries"):
        notifier.Deliverer(None, None, state.clock, retries=-1)  # type: ignore[arg-type]


SCENARIO = f"""
[server]
poll_rate = {{ dcap = 60, derp = 30 }}
registration_pin = 222220

[[end_device]]
lfdi = "{LFDI}"

[[end_device]]
cert = "other"
pin = 111115

[[program]]
name = "feeder"
primacy = 1
default = {{ opModExpLimW = 5000, opModImpLimW = 0, setGradW = 27 }}

[[control]]
name = "evening"
program = "feeder"
start = 60
duration = 3600
modes = {{ opModExpLimW = 1500, opModConnect = true }}

[[step]]
at = 600
action = "cancel"
control = "evening"

[[step]]
at = 30
action = "fail"
status = 429
retry_after = 10
count = 1
"""


def test_scenario_sets_up_and_plays_steps(state: UtilityState) -> None:
    sc = Scenario.parse(tomllib.loads(SCENARIO))
    names = sc.apply(state, cert_lfdi=lambda name: OTHER)
    assert [e.lfdi for e in state.end_devices] == [LFDI, OTHER]
    assert [e.pin for e in state.end_devices] == [222220, 111115]
    assert state.poll_rates == {"dcap": 60, "derp": 30}
    feeder = state.program(names["feeder"])
    assert feeder.default is not None
    assert feeder.default.setGradW == 27
    evening = state.control(names["evening"])
    assert evening.start == T0 + 60
    assert evening.base.opModConnect is True
    assert evening.base.opModExpLimW == ActivePower(1500)
    assert [s.at for s in sc.steps] == [30, 600]  # sorted
    sc.run_step(state, sc.steps[0])
    assert state.faults[0].status == 429
    sc.run_step(state, sc.steps[1])
    assert evening.forced_status == 2


def test_scenario_errors_are_explained() -> None:
    with pytest.raises(ScenarioError, match="unknown sections"):
        Scenario.parse({"nonsense": []})
    with pytest.raises(ScenarioError, match="unknown mode"):
        modes({"opModWarp": 1}, "control x")
    sc = Scenario.parse({"control": [{"program": "nope", "duration": 1}]})
    with pytest.raises(ScenarioError, match="must name a"):
        sc.apply(UtilityState())


def test_a_tamper_with_a_count_rewrites_that_many_bodies_then_is_gone() -> None:
    state = UtilityState()
    state.tamper(["/edev"], lambda b: b"garbled", count=1)
    state.tamper(["/derp/*/derc"], lambda b: b.upper())  # until cleared
    assert Tamper.apply(state.tampers, "/edev", b"<EndDeviceList/>") == b"garbled"
    assert Tamper.apply(state.tampers, "/edev", b"<EndDeviceList/>") == b"<EndDeviceList/>"
    assert Tamper.apply(state.tampers, "/derp/1/derc", b"x") == b"X"
    assert Tamper.apply(state.tampers, "/derp/1/derc", b"y") == b"Y"
    with pytest.raises(ValueError, match="at least 1"):
        state.tamper(["/edev"], lambda b: b, count=0)
    state.clear_faults()
    assert state.tampers == []


def test_the_reference_servers_habits_are_off_by_default_and_set_by_a_scenario(
    state: UtilityState,
) -> None:
    assert (state.random_registration_pin, state.restamp_on_cancel, state.mup_post_rate) == (
        False,
        False,
        None,
    )
    assert state.in_band_pin() == state.registration_pin
    Scenario.parse(
        {
            "server": {
                "random_registration_pin": True,
                "restamp_on_cancel": True,
                "mup_post_rate": 60,
            }
        }
    ).apply(state)
    assert (state.random_registration_pin, state.restamp_on_cancel, state.mup_post_rate) == (
        True,
        True,
        60,
    )
    pins = {state.in_band_pin() for _ in range(20)}
    assert len(pins) > 1
    assert all(p is not None and identity.pin_valid(p) for p in pins)
    program = state.add_program("p", primacy=1)
    mrid = state.add_control(program, duration=60, base=DERControlBase())
    created = state.control(mrid).creation_time
    state.cancel(mrid)
    assert state.control(mrid).creation_time > created
