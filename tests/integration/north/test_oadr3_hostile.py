"""Hostile and invalid OpenADR 3 input end to end: each gets a clear log line and nothing in
force changes (malformed JSON, wrong types, intervals in the past, absurd values, a webhook
call without our token, a bad notification)."""

from __future__ import annotations

import io
import json
import logging
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
from oadr3_rig import Rig, oadr3_rig, run

from gateway.core.messages import EventReceived

LOGGER = "gateway.north.openadr3"


def _received(r: Rig) -> list[EventReceived]:
    return [i for i in r.inputs if isinstance(i, EventReceived)]


def test_malformed_event_list_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.2, webhook=False) as r:
            r.add([{"EXPORT_CAPACITY_LIMIT": [3.0]}])
            await r.until(lambda: r.export_limit() == 3000.0, "3 kW")
            polls = len(r.state.requests_to("GET", "/events"))
            huge = b"[" + b" " * (2 << 20) + b"]"
            for raw in (b'[{"id": NaN}]', b"[" * 50 + b"]" * 50, b"<xml/>", b'{"a": 1}', huge):
                r.state.raw_events = raw
                target = polls + 2
                await r.until(
                    lambda t=target: len(r.state.requests_to("GET", "/events")) >= t, "polled"
                )
                polls = len(r.state.requests_to("GET", "/events"))
                # Not read as "every event vanished": the limit stays.
                assert r.export_limit() == 3000.0
            assert len(_received(r)) == 1

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run(body)
    text = "\n".join(caplog.messages)
    assert "NaN is not a number JSON allows; nothing changed" in text
    assert "nested deeper than 32 levels; nothing changed" in text
    assert "not JSON" in text
    assert "events: expected a list, got an object; nothing changed" in text
    assert "answer over the 1048576-byte cap; nothing changed" in text


def test_a_large_answer_in_many_chunks_is_read_whole(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.2, webhook=False) as r:
            doc = r.state.event_doc(
                r.pid, [{"EXPORT_CAPACITY_LIMIT": [1.25]}], start=time.time(), duration_s=60
            )
            doc.update(id="padded")
            r.state.raw_events = b"[" + json.dumps(doc).encode() + b" " * 700_000 + b"]"
            await r.until(lambda: r.export_limit() == 1250.0, "the padded event followed")

    run(body)


def test_wrong_types_in_one_event_keep_the_others_and_the_old_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.2, webhook=False) as r:
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [3.0]}])
            await r.until(lambda: r.export_limit() == 3000.0, "3 kW")
            # The VTN garbles the event (priority as text): the version in force stays.
            r.state.events[eid] = {**r.state.events[eid], "priority": "urgent"}
            r.add([{"IMPORT_CAPACITY_LIMIT": [6.0]}])
            await r.until(
                lambda: r.site.engine.resolved.controls.import_limit_w == 6000.0, "the other one"
            )
            assert r.export_limit() == 3000.0

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run(body)
    assert any(
        "does not read, ignored: events[0].priority: expected an integer, got a string" in m
        for m in caplog.messages
    )


def test_intervals_in_the_past_and_absurd_values_put_nothing_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.observed()
            past = r.add([{"EXPORT_CAPACITY_LIMIT": [1.0]}], start=time.time() - 7200)
            absurd = r.add([{"EXPORT_CAPACITY_LIMIT": [5e6]}])
            negative = r.add([{"IMPORT_CAPACITY_LIMIT": [-2.0]}])
            text = r.add([{"DISPATCH_SETPOINT": ["lots"]}])
            unknown = r.add([{"PRICE": [0.31]}, {"GHG": [400]}])
            ids = (past, absurd, negative, text, unknown)
            await r.until(lambda: all(i in r.gateway.client.tracker.known for i in ids), "all seen")
            assert _received(r) == []
            assert r.site.engine.resolved.controls.export_limit_w is None
            assert r.site.engine.resolved.controls.import_limit_w is None

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run(body)
    text = "\n".join(caplog.messages)
    assert "interval 0 ended at" in text
    assert "in the past" in text
    assert "EXPORT_CAPACITY_LIMIT of 5e+06 KW is absurd for a home; check the units" in text
    assert "IMPORT_CAPACITY_LIMIT must not be negative" in text
    assert "DISPATCH_SETPOINT must be a number, got 'lots'" in text
    assert "payload type 'PRICE' is not one this gateway maps" in text
    assert text.count("nothing put in force") == 5


def test_island_the_site_cannot_carry_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from oadr3_rig import ISLAND_ALERTS

    async def body() -> None:
        async with oadr3_rig(tmp_path, mapping=ISLAND_ALERTS) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            r.site.home.physics.charger.ev_connected = False
            await r.until(
                lambda: (
                    (o := r.site.runner.last_observed) is not None
                    and o.charger is not None
                    and not o.charger.ev_connected
                ),
                "EV unplugged seen",
            )
            eid = r.add([{"ALERT_GRID_EMERGENCY": ["storm"]}])
            await r.until(lambda: eid in r.gateway.client.tracker.known, "seen")
            assert _received(r) == []
            assert r.site.engine.resolved.controls.connect is None

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run(body)
    assert any("not followed" in m and "no EV connected" in m for m in caplog.messages)


def test_webhook_refuses_calls_without_our_token_and_bad_notifications(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            listener = r.gateway.listener
            assert listener is not None
            ctx = ssl.create_default_context(cafile=str(r.vtn.pki.ca))
            event = r.state.event_doc(
                r.pid, [{"EXPORT_CAPACITY_LIMIT": [0.5]}], start=time.time(), duration_s=60
            )
            event.update(id="forged")
            good = {"objectType": "EVENT", "operation": "POST", "object": event}
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
                for auth in (None, "Bearer wrong", f"Basic {listener.bearer}"):
                    headers = {} if auth is None else {"Authorization": auth}
                    async with s.post(listener.url, json=good, headers=headers) as resp:
                        assert resp.status == 401
                ok = {"Authorization": f"Bearer {listener.bearer}"}
                for bad in (b"{", b'{"objectType":"EVENT","operation":"POST","object":[]}'):
                    async with s.post(listener.url, data=bad, headers=ok) as resp:
                        assert resp.status == 400
                        problem = await resp.json(content_type=None)
                        assert problem["status"] == 400
                big = b'{"objectType":"EVENT","operation":"POST","object":{}' + b" " * (2 << 20)
                async with s.post(listener.url, data=io.BytesIO(big + b"}"), headers=ok) as resp:
                    assert resp.status == 413
            assert listener.refused == 5
            assert _received(r) == []
            assert r.export_limit() is None

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run(body)
    assert any("without our bearer token" in m for m in caplog.messages)
    assert any("bad notification, nothing changed" in m for m in caplog.messages)
