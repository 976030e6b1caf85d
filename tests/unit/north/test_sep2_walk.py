"""The 2030.5 discovery walk, driven by an in-test fake server (href -> Reply; no sockets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest

from gateway.north.sep2 import codec
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
)
from gateway.north.sep2.resources import (
    DERProgram,
    DERProgramList,
    DeviceCapability,
    EndDevice,
    EndDeviceList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    Link,
    ListLink,
    Registration,
    Time,
)
from gateway.north.sep2.walk import (
    Discovery,
    NotRegisteredError,
    RegistrationError,
    Reply,
    Request,
    RetryableWalkError,
    Walk,
    WalkError,
    discover,
)

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
OTHER_LFDI = "854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B"
PIN = 111115
PAGE = 2


def _mrid(n: int) -> str:
    return f"{n:032X}"


def _edev(n: int, lfdi: str) -> EndDevice:
    return EndDevice(
        href=f"/edev/{n}",
        sFDI=167261211391,
        changedTime=1764072000,
        lFDI=lfdi,
        FunctionSetAssignmentsListLink=ListLink(f"/edev/{n}/fsa", all=1),
        RegistrationLink=Link(f"/edev/{n}/rg"),
    )


def _control(n: int) -> DERControl:
    return DERControl(
        href=f"/derp/1/derc/{n}",
        mRID=_mrid(100 + n),
        creationTime=1764072000,
        EventStatus=EventStatus(currentStatus=0, dateTime=1764072000),
        interval=DateTimeInterval(duration=1800, start=1764075600 + 1800 * n),
        DERControlBase=DERControlBase(opModExpLimW=ActivePower(5000)),
    )


DCAP = DeviceCapability(
    href="/dcap",
    pollRate=60,
    TimeLink=Link("/tm"),
    EndDeviceListLink=ListLink("/edev", all=3),
)
TIME = Time(
    href="/tm",
    currentTime=1764072000,
    dstEndTime=1775318400,
    dstOffset=3600,
    dstStartTime=1759593600,
    quality=4,
    tzOffset=36000,
    pollRate=900,
)
OURS = replace(_edev(3, LFDI.lower()), lFDI=LFDI)  # the codec upper-cases; we match any case
REG = Registration(href="/edev/3/rg", dateTimeRegistered=1764000000, pIN=PIN, pollRate=300)
FSA = FunctionSetAssignments(
    href="/edev/3/fsa/1", mRID=_mrid(1), DERProgramListLink=ListLink("/edev/3/fsa/1/derp", all=2)
)
PROGRAM_1 = DERProgram(
    href="/derp/1",
    mRID=_mrid(11),
    primacy=1,
    DefaultDERControlLink=Link("/derp/1/dderc"),
    DERControlListLink=ListLink("/derp/1/derc", all=3),
)
PROGRAM_2 = DERProgram(
    href="/derp/2",
    mRID=_mrid(12),
    primacy=2,
    DERControlListLink=ListLink("/derp/2/derc", all=0),
)
DEFAULT = DefaultDERControl(
    href="/derp/1/dderc", mRID=_mrid(50), DERControlBase=DERControlBase(opModExpLimW=ActivePower(1))
)
CONTROLS = (_control(1), _control(2), _control(3))


def _ok(resource: codec.AnyResource) -> Reply:
    return Reply(200, codec.encode(resource), {"Content-Type": "application/sep+xml"})


def _server() -> dict[str, Reply]:
    """The happy path: 3 EndDevices over 2 pages (ours last), 1 FSA, 2 programs."""
    others = (_edev(1, OTHER_LFDI), _edev(2, "0F3078CFDDAEE28DC20B95635DC116CC2A6D877F"))
    return {
        "/dcap": _ok(DCAP),
        "/tm": _ok(TIME),
        "/edev?s=0&l=2": _ok(EndDeviceList(all=3, results=2, EndDevice=others, pollRate=120)),
        "/edev?s=2&l=2": _ok(EndDeviceList(all=3, results=1, EndDevice=(OURS,), pollRate=120)),
        "/edev/3/rg": _ok(REG),
        "/edev/3/fsa?s=0&l=2": _ok(
            FunctionSetAssignmentsList(all=1, results=1, FunctionSetAssignments=(FSA,))
        ),
        "/edev/3/fsa/1/derp?s=0&l=2": _ok(
            DERProgramList(all=2, results=2, DERProgram=(PROGRAM_1, PROGRAM_2), pollRate=30)
        ),
        "/derp/1/dderc": _ok(DEFAULT),
        "/derp/1/derc?s=0&l=2": _ok(DERControlList(all=3, results=2, DERControl=CONTROLS[:2])),
        "/derp/1/derc?s=2&l=2": _ok(DERControlList(all=3, results=1, DERControl=CONTROLS[2:])),
        "/derp/2/derc?s=0&l=2": _ok(DERControlList(all=0, results=0)),
    }


EXPECTED_REQUESTS = [
    "/dcap",
    "/tm",
    "/edev?s=0&l=2",
    "/edev?s=2&l=2",
    "/edev/3/rg",
    "/edev/3/fsa?s=0&l=2",
    "/edev/3/fsa/1/derp?s=0&l=2",
    "/derp/1/dderc",
    "/derp/1/derc?s=0&l=2",
    "/derp/1/derc?s=2&l=2",
    "/derp/2/derc?s=0&l=2",
]


def drive(walk: Walk, server: Mapping[str, Reply], log: list[Request]) -> Discovery:
    """Pump the generator: answer each request from ``server`` (404 for an unknown href)."""
    request = next(walk)
    while True:
        log.append(request)
        reply = server.get(request.href, Reply(404, b"", {}))
        try:
            request = walk.send(reply)
        except StopIteration as done:
            result: Discovery = done.value
            return result


def drive_with(walk: Walk, answer: Callable[[Request], Reply]) -> Discovery:
    request = next(walk)
    while True:
        try:
            request = walk.send(answer(request))
        except StopIteration as done:
            result: Discovery = done.value
            return result


def _walk(server: Mapping[str, Reply], *, pin: int | None = PIN) -> tuple[Discovery, list[str]]:
    log: list[Request] = []
    found = drive(discover("/dcap", lfdi=LFDI, pin=pin, page_size=PAGE), server, log)
    assert all(r.method == "GET" and r.body is None for r in log)
    return found, [r.href for r in log]


def test_happy_path_walks_every_resource_in_order() -> None:
    found, hrefs = _walk(_server())

    assert hrefs == EXPECTED_REQUESTS
    assert found.dcap == DCAP
    assert found.time == TIME
    assert found.end_device == OURS
    assert found.registration == REG
    assert found.fsas == (FSA,)
    assert [v.program for v in found.programs] == [PROGRAM_1, PROGRAM_2]
    assert found.programs[0].default == DEFAULT
    assert found.programs[0].controls == CONTROLS
    assert found.programs[1].default is None
    assert found.programs[1].controls == ()
    assert found.poll_rates == {
        "/dcap": 60,
        "/tm": 900,
        "/edev": 120,
        "/edev/3/rg": 300,
        "/edev/3/fsa/1/derp": 30,
    }


def test_correct_pin_and_no_pin_both_proceed() -> None:
    assert _walk(_server(), pin=PIN)[0].registration == REG
    assert _walk(_server(), pin=None)[0].registration == REG


def test_all_03_rej_wrong_pin_is_rejected() -> None:
    with pytest.raises(RegistrationError, match="expected 123457, /edev/3/rg has 111115"):
        _walk(_server(), pin=123457)


def test_all_05_no_registration_link_proceeds() -> None:
    server = _server()
    unlinked = replace(OURS, RegistrationLink=None)
    server["/edev?s=2&l=2"] = _ok(EndDeviceList(all=3, results=1, EndDevice=(unlinked,)))
    found, hrefs = _walk(server)
    assert found.registration is None
    assert "/edev/3/rg" not in hrefs
    assert len(found.programs) == 2


def test_our_lfdi_absent_is_not_registered() -> None:
    server = _server()
    server["/edev?s=2&l=2"] = _ok(EndDeviceList(all=3, results=0))
    with pytest.raises(NotRegisteredError, match="in-band registration") as info:
        _walk(server)
    assert LFDI in str(info.value)


def test_default_der_control_404_means_none() -> None:
    server = _server()
    del server["/derp/1/dderc"]  # the fake answers 404
    found, hrefs = _walk(server)
    assert found.programs[0].default is None
    assert found.programs[0].controls == CONTROLS
    assert hrefs == EXPECTED_REQUESTS


def test_server_error_is_retryable() -> None:
    server = _server()
    server["/edev/3/fsa/1/derp?s=0&l=2"] = Reply(500, b"oops", {})
    with pytest.raises(RetryableWalkError) as info:
        _walk(server)
    assert info.value.href == "/edev/3/fsa/1/derp?s=0&l=2"
    assert info.value.status == 500
    assert info.value.retry_after_s is None


def test_429_carries_retry_after() -> None:
    server = _server()
    server["/dcap"] = Reply(429, b"", {"retry-after": "30"})
    with pytest.raises(RetryableWalkError) as info:
        _walk(server)
    assert info.value.retry_after_s == 30
    assert info.value.status == 429


def test_other_error_status_is_not_retryable() -> None:
    server = _server()
    del server["/edev/3/rg"]
    with pytest.raises(WalkError) as info:
        _walk(server)
    assert not isinstance(info.value, RetryableWalkError)
    assert (info.value.href, info.value.status) == ("/edev/3/rg", 404)


def test_hostile_body_names_the_href() -> None:
    server = _server()
    server["/tm"] = Reply(
        200,
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">]>'
        b'<Time xmlns="urn:ieee:std:2030.5:ns">&a;</Time>',
        {},
    )
    with pytest.raises(WalkError, match="/tm") as info:
        _walk(server)
    assert info.value.href == "/tm"
    assert isinstance(info.value.__cause__, ValueError)


def test_wrong_resource_type_names_the_href() -> None:
    server = _server()
    server["/edev/3/rg"] = _ok(TIME)
    with pytest.raises(WalkError, match=r"/edev/3/rg.*expected a Registration, got a Time"):
        _walk(server)


def test_no_module_state_between_walks() -> None:
    assert _walk(_server())[1] == _walk(_server())[1] == EXPECTED_REQUESTS


def test_all_02_in_band_registration_posts_our_end_device_and_follows_location() -> None:
    server = _server()
    server["/edev?s=2&l=2"] = _ok(EndDeviceList(all=2, results=0))
    mine = EndDevice(sFDI=167261211391, changedTime=1764072000, lFDI=LFDI)
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, register=mine)
    log: list[Request] = []
    request = next(walk)
    while True:
        log.append(request)
        if request.method == "POST":
            assert request.href == "/edev"
            assert request.body is not None
            assert codec.decode(request.body) == mine
            reply = Reply(201, b"", {"Location": "/edev/3"})
        else:
            reply = (
                _ok(OURS)
                if request.href == "/edev/3"
                else server.get(request.href, Reply(404, b""))
            )
        try:
            request = walk.send(reply)
        except StopIteration as done:
            found: Discovery = done.value
            break
    assert found.end_device == OURS
    assert [(r.method, r.href) for r in log][4:7] == [
        ("POST", "/edev"),
        ("GET", "/edev/3"),
        ("GET", "/edev/3/rg"),
    ]
    assert len(found.programs) == 2


def test_in_band_registration_409_says_what_to_do() -> None:
    server = _server()
    server["/edev?s=2&l=2"] = _ok(EndDeviceList(all=2, results=0))
    mine = EndDevice(sFDI=167261211391, changedTime=1764072000, lFDI=LFDI)
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, register=mine)

    def answer(request: Request) -> Reply:
        if request.method == "POST":
            return Reply(409, b"")
        return server.get(request.href, Reply(404, b""))

    with pytest.raises(WalkError, match="duplicate"):
        drive_with(walk, answer)


def test_program_views_name_the_list_they_came_from() -> None:
    found, _ = _walk(_server())
    assert {v.list_href for v in found.programs} == {"/edev/3/fsa/1/derp"}


def test_one_unreadable_control_is_set_aside_not_the_whole_list() -> None:
    server = _server()
    body = codec.encode(DERControlList(all=3, results=2, DERControl=CONTROLS[:2]))
    # The second control's export limit becomes negative: the codec refuses it.
    first, second = body.split(b"<DERControl ", 2)[1:]
    bad_second = second.replace(b"<value>5000</value>", b"<value>-5000</value>", 1)
    assert bad_second != second
    broken = body.replace(second, bad_second)
    server["/derp/1/derc?s=0&l=2"] = Reply(200, broken, {})
    found, _ = _walk(server)
    view = found.programs[0]
    assert view.controls == (CONTROLS[0], CONTROLS[2])
    (bad,) = view.unreadable
    assert bad.mRID == CONTROLS[1].mRID
    assert "opModExpLimW" in bad.reason
    assert first  # the split found both controls


def test_a_list_that_is_not_xml_is_still_a_walk_error() -> None:
    server = _server()
    server["/derp/1/derc?s=0&l=2"] = Reply(200, b"<DERControlList", {})
    with pytest.raises(WalkError, match="undecodable"):
        _walk(server)


def test_a_hint_that_still_holds_our_end_device_skips_the_list() -> None:
    server = _server()
    server["/edev/3"] = _ok(OURS)
    log: list[Request] = []
    found = drive(
        discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, hint="/edev/3"), server, log
    )
    hrefs = [r.href for r in log]
    assert found.end_device == OURS
    assert hrefs[:3] == ["/dcap", "/tm", "/edev/3"]
    assert not any(h.startswith("/edev?") for h in hrefs)


@pytest.mark.parametrize(
    "answer",
    [Reply(404, b""), _ok(_edev(3, OTHER_LFDI)), Reply(200, b"<garbage")],
    ids=["gone", "another-device", "bad-body"],
)
def test_a_stale_hint_falls_back_to_the_list(answer: Reply) -> None:
    server = _server()
    server["/edev/3"] = answer
    log: list[Request] = []
    found = drive(
        discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, hint="/edev/3"), server, log
    )
    assert found.end_device == OURS
    assert "/edev?s=0&l=2" in [r.href for r in log]


# --- where to subscribe, and to what (ALL-14) -------------------------------------------------


def test_subscribable_holds_only_what_says_1_or_3() -> None:
    """The XSD's default for ``subscribable`` is 0 ("does not support subscriptions"): absent
    says no, 2 (conditional only) says no to a Subscription without a Condition."""
    server = _server()
    server["/edev/3/fsa?s=0&l=2"] = _ok(
        FunctionSetAssignmentsList(all=1, results=1, FunctionSetAssignments=(FSA,), subscribable=1)
    )
    server["/edev/3/fsa/1/derp?s=0&l=2"] = _ok(
        DERProgramList(all=2, results=2, DERProgram=(PROGRAM_1, PROGRAM_2), subscribable=2)
    )
    server["/derp/1/dderc"] = _ok(replace(DEFAULT, subscribable=3))
    server["/derp/1/derc?s=0&l=2"] = _ok(
        DERControlList(all=3, results=2, DERControl=CONTROLS[:2], subscribable=1)
    )
    # /derp/2/derc: no attribute at all
    found, _ = _walk(server)
    assert found.subscribable == {"/edev/3/fsa", "/derp/1/dderc", "/derp/1/derc"}
    assert found.subscription_list is None  # OURS links none, and no aggregator was named


AGGREGATOR = "AB" * 20  # the certificate's LFDI, not ours


def _with_aggregator_end_device() -> dict[str, Reply]:
    """The reference server's habit: the aggregator's own EndDevice /edev/0 (first in the
    list) has the only SubscriptionListLink."""
    server = _server()
    own = EndDevice(
        href="/edev/0",
        sFDI=1,
        changedTime=1764072000,
        lFDI=AGGREGATOR,
        SubscriptionListLink=ListLink("/edev/0/sub", all=0),
    )
    server["/edev/0"] = _ok(own)
    server["/edev?s=0&l=2"] = _ok(
        EndDeviceList(all=2, results=2, EndDevice=(own, OURS), pollRate=120)
    )
    return server


def test_the_aggregators_own_end_device_gives_the_subscription_list() -> None:
    server = _with_aggregator_end_device()
    log: list[Request] = []
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, aggregator=AGGREGATOR.lower())
    found = drive(walk, server, log)
    assert found.end_device == OURS
    assert found.subscription_list == "/edev/0/sub"
    assert found.subscriber == "/edev/0"
    # With the hint, the aggregator's EndDevice is read directly.
    log.clear()
    walk = discover(
        "/dcap",
        lfdi=LFDI,
        pin=PIN,
        page_size=PAGE,
        hint="/edev/3",
        aggregator=AGGREGATOR,
        aggregator_hint="/edev/0",
    )
    server["/edev/3"] = _ok(OURS)
    found = drive(walk, server, log)
    assert found.subscription_list == "/edev/0/sub"
    assert [r.href for r in log][:5] == ["/dcap", "/tm", "/edev/3", "/edev/3/rg", "/edev/0"]


def test_our_own_subscription_list_wins_and_none_anywhere_is_none() -> None:
    server = _with_aggregator_end_device()
    ours = replace(OURS, SubscriptionListLink=ListLink("/edev/3/sub", all=0))
    server["/edev?s=0&l=2"] = _ok(EndDeviceList(all=1, results=1, EndDevice=(ours,)))
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, aggregator=AGGREGATOR)
    assert drive(walk, server, []).subscription_list == "/edev/3/sub"
    # The aggregator is not listed at all: no SubscriptionList, and the walk goes on.
    server = _server()
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, aggregator=AGGREGATOR)
    found = drive(walk, server, [])
    assert found.subscription_list is None
    assert [v.program for v in found.programs] == [PROGRAM_1, PROGRAM_2]


def test_after_our_own_post_a_different_pin_is_reported_not_refused() -> None:
    """The PIN is an out-of-band check: a Registration the server made in answer to our POST
    carries the server's PIN (the reference server picks a random one)."""
    server = _server()
    server["/edev?s=2&l=2"] = _ok(EndDeviceList(all=2, results=0))
    mine = EndDevice(sFDI=167261211391, changedTime=1764072000, lFDI=LFDI)
    seen: list[EndDevice] = []
    walk = discover(
        "/dcap", lfdi=LFDI, pin=123457, page_size=PAGE, register=mine, on_registered=seen.append
    )

    def answer(request: Request) -> Reply:
        if request.method == "POST":
            assert seen == []  # told once the POST succeeded, before the rest of the walk
            return Reply(201, b"", {"Location": "/edev/3"})
        if request.href == "/edev/3":
            return _ok(OURS)
        return server.get(request.href, Reply(404, b""))

    found = drive_with(walk, answer)
    assert seen == [OURS]
    assert found.registered_in_band
    assert found.assigned_pin == REG.pIN
    assert len(found.programs) == 2


def test_an_end_device_we_registered_before_is_not_held_to_the_pin() -> None:
    assert OURS.href == "/edev/3"
    walk = discover("/dcap", lfdi=LFDI, pin=123457, page_size=PAGE, registered_in_band="/edev/3")
    found = drive(walk, _server(), [])
    assert found.assigned_pin == REG.pIN
    assert found.registered_in_band
    with pytest.raises(RegistrationError, match="not trusting"):  # out of band: refused
        drive(discover("/dcap", lfdi=LFDI, pin=123457, page_size=PAGE), _server(), [])


def test_an_end_device_provisioned_elsewhere_since_is_held_to_the_pin_again() -> None:
    """We registered /edev/9 in band; the utility since put us at /edev/3, out of band."""
    walk = discover("/dcap", lfdi=LFDI, pin=123457, page_size=PAGE, registered_in_band="/edev/9")
    with pytest.raises(RegistrationError, match="not trusting"):
        drive(walk, _server(), [])


def test_a_matching_pin_after_our_post_reports_nothing() -> None:
    walk = discover("/dcap", lfdi=LFDI, pin=PIN, page_size=PAGE, registered_in_band="/edev/3")
    assert drive(walk, _server(), []).assigned_pin is None
