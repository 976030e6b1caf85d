"""OpenADR 3 flows end to end: VTN (sim.vtn3) -> gateway -> simulated home, real sockets + TLS.

The QualityLogic catalogue is 2.0b only; these tests are named after the OpenADR 3 flow they
cover, with the nearest 2.0b case ID where one applies (E1_* events, N1_* registration).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from oadr3_rig import ISLAND_ALERTS, PROGRAM, SECRET, make_pki, oadr3_rig, run, vtn_server

from gateway.core.island import RelayPosition
from gateway.core.messages import EventCancelled, EventReceived
from gateway.north.openadr3 import client as client_module


def _received(rig: object) -> list[EventReceived]:
    return [i for i in rig.inputs if isinstance(i, EventReceived)]  # type: ignore[attr-defined]


def test_N1_token_auth_registers_the_ven_and_subscribes(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "one subscription")
            token_calls = r.state.requests_to("POST", "/oauth/token")
            assert [c.status for c in token_calls] == [200]
            # Form-encoded client credentials, as RFC 6749 §4.4 has it.
            assert b"grant_type=client_credentials" in token_calls[0].body
            assert [v["venName"] for v in r.state.vens.values()] == ["gateway-1"]
            (sub,) = r.state.subscriptions.values()
            assert sub["programID"] == r.pid
            (op,) = sub["objectOperations"]
            assert op["callbackUrl"].startswith("https://127.0.0.1:")
            assert len(op["bearerToken"]) >= 24

    run(body)


def test_N1_wrong_secret_is_a_clear_error_and_nothing_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, secret=SECRET + "x", poll_s=0.2) as r:
            r.add([{"EXPORT_CAPACITY_LIMIT": [1.0]}])
            await r.until(lambda: len(r.state.requests_to("POST", "/oauth/token")) >= 2, "a retry")
            assert all(c.status == 401 for c in r.state.requests_to("POST", "/oauth/token"))
            assert r.state.requests_to("GET", "/events") == []
            assert _received(r) == []
            assert r.export_limit() is None

    with caplog.at_level(logging.ERROR, logger="gateway.north.openadr3"):
        run(body)
    assert any("check client_id and client_secret" in m for m in caplog.messages)


def test_E1_export_limit_by_webhook_without_waiting_for_a_poll(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=60) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.until(lambda: len(r.state.requests_to("GET", "/events")) == 1, "first poll")
            t0 = time.monotonic()
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [1.5]}], units={"EXPORT_CAPACITY_LIMIT": "KW"})
            await r.until(lambda: r.export_limit() == 1500.0, "1.5 kW export limit in force")
            latency = time.monotonic() - t0
            assert latency < 2.0, latency
            # By notification: no further poll happened.
            assert len(r.state.requests_to("GET", "/events")) == 1
            assert [d.status for d in r.state.deliveries] == [200]
            (ev,) = _received(r)
            assert ev.event.mrid.startswith(f"openadr3:{eid}:")
            assert ev.event.origin == "openadr3"
            # The devices follow: the site's export stays under the limit.
            physics = r.site.home.physics
            await r.until(lambda: -physics.meter().net_w <= 1500.0 + 100, "export under 1.5 kW")

    run(body)


def test_N1_a_subscription_the_vtn_lost_is_made_again_and_notifications_resume(
    tmp_path: Path,
) -> None:
    """The VTN drops every subscription (restarted without its store, or it expires them): no
    notification comes. The next poll finds the event the webhook did not bring, the VEN sees
    that the VTN no longer holds its subscription, subscribes again (the old token, the same
    listener), and the next event arrives by notification, not by waiting for a poll."""

    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=1.0) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            (before,) = r.state.subscriptions.values()
            r.state.subscriptions.clear()  # lost by the VTN
            r.add([{"EXPORT_CAPACITY_LIMIT": [2.0]}])
            await r.until(lambda: r.export_limit() == 2000.0, "2 kW, by polling")
            assert r.state.deliveries == []  # nothing to notify
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed again")
            (after,) = r.state.subscriptions.values()
            assert after["id"] != before["id"]
            assert after["objectOperations"] == before["objectOperations"]
            assert r.gateway.client.resubscribed == 1
            r.add([{"EXPORT_CAPACITY_LIMIT": [1.5]}])
            await r.until(lambda: r.export_limit() == 1500.0, "1.5 kW")
            await r.until(lambda: bool(r.state.deliveries), "a notification")
            assert [d.status for d in r.state.deliveries] == [200]  # taken by our listener
            # Polls that change nothing check nothing (until VTN_CHECK_S has passed).
            checks = len(r.state.requests_to("GET", "/subscriptions"))
            polls = len(r.state.requests_to("GET", "/events"))
            await r.until(
                lambda: len(r.state.requests_to("GET", "/events")) >= polls + 2, "two polls"
            )
            assert len(r.state.requests_to("GET", "/subscriptions")) == checks
            assert r.gateway.client.resubscribed == 1
            assert len(r.state.subscriptions) == 1

    run(body)


def test_N1_a_lost_subscription_is_found_by_the_periodic_check_without_any_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no event to miss, the periodic check (``VTN_CHECK_S``, 300 s; 1 s here)
    finds the subscription gone and makes it again; while it is there, the check costs one
    GET per program and changes nothing."""
    monkeypatch.setattr(client_module, "VTN_CHECK_S", 1.0)

    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.3) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.until(lambda: len(r.state.requests_to("GET", "/subscriptions")) >= 3, "checks")
            assert len(r.state.requests_to("POST", "/subscriptions")) == 1  # still there
            r.state.subscriptions.clear()
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed again", 3.0)
            assert r.gateway.client.resubscribed == 1

    run(body)


@pytest.mark.parametrize("webhook", [True, False])
def test_N1_a_program_the_vtn_lists_under_a_new_id_is_followed_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: bool
) -> None:
    """The VTN restarts without its store: same program name, new id, no events, no
    subscriptions. Polling the old id would only ever show an empty list, so the program
    would be lost for good. At the next check (``VTN_CHECK_S``; 1 s here) the VEN follows the
    new id (subscribing there when it has a webhook); the old id's export limit ends, as the
    VTN no longer has it, and an event on the new id is followed."""
    monkeypatch.setattr(client_module, "VTN_CHECK_S", 1.0)

    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.3, webhook=webhook) as r:
            r.add([{"EXPORT_CAPACITY_LIMIT": [2.0]}], duration_s=600)
            await r.until(lambda: r.export_limit() == 2000.0, "2 kW on the first program")
            old = r.pid
            for table in (r.state.programs, r.state.events, r.state.subscriptions):
                table.clear()
            r.vtn.program_id = r.state.add_program(PROGRAM)
            await r.until(lambda: r.gateway.client.programs_moved == 1, "the new id followed")
            assert list(r.gateway.client.programs) == [r.pid] != [old]
            await r.until(lambda: r.export_limit() is None, "the old program's limit ended")
            if webhook:  # one subscription, on the new id (none left on the old one)
                await r.until(
                    lambda: [x["programID"] for x in r.state.subscriptions.values()] == [r.pid],
                    "subscribed there, and only there",
                )
            r.add([{"EXPORT_CAPACITY_LIMIT": [1.5]}])
            await r.until(lambda: r.export_limit() == 1500.0, "1.5 kW on the new id")

    run(body)


def test_N1_a_program_past_the_vtns_first_page_of_programs_is_found(tmp_path: Path) -> None:
    """A VTN with more programs than one page (50) lists ours on the second: the VEN pages
    ``GET /programs`` as it pages events, and follows it."""

    async def body() -> None:
        async with vtn_server(make_pki(tmp_path / "pki")) as vtn:
            vtn.state.programs.clear()
            for i in range(55):
                vtn.state.add_program(f"other-{i}")
            vtn.program_id = vtn.state.add_program(PROGRAM)
            async with oadr3_rig(tmp_path, vtn=vtn, poll_s=0.3) as r:
                await r.until(lambda: r.pid in r.gateway.client.programs, "our program found")
                assert list(r.gateway.client.programs) == [r.pid]
                r.add([{"EXPORT_CAPACITY_LIMIT": [2.5]}])
                await r.until(lambda: r.export_limit() == 2500.0, "its event followed")

    run(body)


def test_N1_a_vtn_that_refuses_the_check_still_gets_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A VTN that answers the programs check with an error (here every check): the warning
    is logged, and polling goes on as before: the events still arrive."""
    monkeypatch.setattr(client_module, "VTN_CHECK_S", 0.2)

    async def refuse(self: client_module.VenClient) -> dict[str, object]:
        raise client_module.VtnError("GET /programs answered 403: not today")

    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.3, webhook=False) as r:
            await r.until(lambda: bool(r.gateway.client.programs), "connected")
            monkeypatch.setattr(client_module.VenClient, "_vtn_programs", refuse)
            polls = r.gateway.client.polls
            r.add([{"EXPORT_CAPACITY_LIMIT": [3.5]}])
            await r.until(lambda: r.export_limit() == 3500.0, "followed by polling")
            await r.until(lambda: r.gateway.client.polls >= polls + 3, "polls go on")

    with caplog.at_level(logging.WARNING, logger="gateway.north.openadr3.client"):
        run(body)
    assert any("not today" in m for m in caplog.messages)


def test_E1_export_limit_by_polling_when_no_webhook(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.3, webhook=False) as r:
            await r.until(lambda: len(r.state.requests_to("GET", "/events")) >= 1, "polling")
            r.add([{"EXPORT_CAPACITY_LIMIT": [2000]}], units={"EXPORT_CAPACITY_LIMIT": "W"})
            await r.until(lambda: r.export_limit() == 2000.0, "2 kW export limit in force")
            assert r.state.subscriptions == {}
            assert r.state.deliveries == []

    run(body)


def test_E1_modified_event_replaces_the_old_one(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [3.0]}])
            await r.until(lambda: r.export_limit() == 3000.0, "3 kW")
            old = _received(r)[0].event.mrid
            r.state.modify_event(
                eid, intervals=[{"EXPORT_CAPACITY_LIMIT": [1.0]}], start=time.time(), duration_s=60
            )
            await r.until(lambda: r.export_limit() == 1000.0, "1 kW after the modification")
            assert EventCancelled in {type(i) for i in r.inputs}
            cancelled = [i.mrid for i in r.inputs if isinstance(i, EventCancelled)]
            assert cancelled == [old]
            new = _received(r)[-1].event.mrid
            assert new != old
            assert new.startswith(f"openadr3:{eid}:")

    run(body)


def test_E1_deleted_event_ends_by_notification_and_by_vanishing(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.3) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            a = r.add([{"EXPORT_CAPACITY_LIMIT": [3.0]}])
            await r.until(lambda: r.export_limit() == 3000.0, "3 kW")
            r.state.delete_event(a)  # notified
            await r.until(lambda: r.export_limit() is None, "limit gone after DELETE")
            b = r.add([{"IMPORT_CAPACITY_LIMIT": [4.0]}])
            await r.until(
                lambda: r.site.engine.resolved.controls.import_limit_w == 4000.0, "import 4 kW"
            )
            r.state.delete_event(b, notify=False)  # implied: it vanishes from the list
            await r.until(
                lambda: r.site.engine.resolved.controls.import_limit_w is None,
                "import limit gone when the event vanishes",
            )

    run(body)


def test_E1_multi_interval_event_steps_through_its_intervals(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            r.add(
                [{"EXPORT_CAPACITY_LIMIT": [3.0]}, {"EXPORT_CAPACITY_LIMIT": [1.0]}, {}],
                duration_s=1.5,
            )
            await r.until(lambda: r.export_limit() == 3000.0, "first interval: 3 kW")
            await r.until(lambda: r.export_limit() == 1000.0, "second interval: 1 kW")
            await r.until(lambda: r.export_limit() is None, "after the second interval")
            assert len(_received(r)) == 2  # the empty third interval sets nothing

    run(body)


def test_E1_island_alert_opens_the_relay_and_its_end_reconnects(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, mapping=ISLAND_ALERTS) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.observed()
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "grid-connected")
            eid = r.add([{"ALERT_GRID_EMERGENCY": ["storm"]}], duration_s=3)
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            charger = r.site.home.physics.charger
            await r.until(lambda: charger.mode.name == "GRID_FORMING", "the EV forms the grid")
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "recloses at the end", 15)
            assert eid in r.gateway.client.tracker.known

    run(body)


def test_E1_island_alert_deleted_reconnects_early(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, mapping=ISLAND_ALERTS) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.observed()
            eid = r.add([{"ALERT_GRID_EMERGENCY": ["storm"]}], duration_s=600)
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            r.state.delete_event(eid)
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "recloses on delete", 15)

    run(body)


def test_E1_alert_by_default_prepares_the_ev(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            r.add([{"ALERT_POSSIBLE_OUTAGE": ["heat wave"]}])
            await r.until(
                lambda: r.site.engine.resolved.controls.soc_target_pct == 100.0, "SoC target 100 %"
            )
            assert r.relay() is RelayPosition.CLOSED

    run(body)
