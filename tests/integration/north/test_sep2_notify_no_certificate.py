"""Notifications from a server that presents no client certificate (issue 16, item 7).

The reference CSIP-AUS server (bsgip/envoy) POSTs notifications without a client certificate
unless ``notifications_with_mtls`` is set. 2030.5 secures every exchange with mutual TLS, so by
default the gateway's listener refuses such a sender at the handshake; with ``[sep2.notify]
require_certificate = false`` it lets it in, and takes what it sends only as a reason to GET
the resource from the server over the gateway's own mutual-TLS connection. All over real TLS
sockets: the simulated utility plays the habit (``notify_with_certificate=False``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from sep2_rig import POLLED, GatewayRig, export_limit, gateway_rig, run, utility_server

from gateway.core.controls import Mode, Source
from gateway.north.sep2 import tls
from gateway.north.sep2.model import DERControlList
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.pubsub import NotificationStatus, Subscription
from gateway.north.sep2.session import WALK, Task, TaskKind
from gateway.sim.utility import paths, views
from gateway.sim.utility.notifier import notification_body
from gateway.sim.utility.records import Control

HOUR = 3600


async def hourly(r: GatewayRig) -> None:
    """Subscribed to the control list; every poll an hour, learned: only a notification (or
    what it makes the gateway GET) can bring a control in within seconds."""
    await r.until(
        lambda: paths.derc_list(r.program.key) in subscribed(r), "subscribed to the control list"
    )
    for resource in POLLED:
        r.state.set_poll_rate(resource, HOUR)  # type: ignore[arg-type]
    session = r.gateway.client.session
    program = Task(TaskKind.PROGRAM, r.program.mrid)
    await r.until(
        lambda: session.rate(WALK) == HOUR and session.rate(program) == HOUR, "hourly rates"
    )


def subscribed(r: GatewayRig) -> dict[str, str]:
    """subscribedResource -> the Location the server answered."""
    return {
        s.subscribedResource: x.location or ""
        for x, s in r.recorder.decoded(Subscription, "POST", "/edev/1/sub", status=201)
    }


def control_list_gets(r: GatewayRig, since: float) -> int:
    return len(r.recorder.requests("GET", path=paths.derc_list(r.program.key), since=since))


def test_a_notification_without_a_certificate_fails_the_handshake_by_default(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with (
            utility_server(sep2_pki, notify_with_certificate=False) as u,
            gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True, utility=u) as r,
        ):
            await hourly(r)
            r.state.add_control(r.program, start=int(r.server_now()) - 1, duration=600,
                                base=export_limit(1100))  # fmt: skip
            await r.until(lambda: bool(r.recorder.notifications()), "a delivery attempt")
            first = r.recorder.notifications()[0]
            # Refused in the handshake: no HTTP status at all, an SSL error on the server side.
            assert first.status == 0, first
            assert first.error is not None
            # The listener accepted the connection and reset it in the handshake (TLS 1.2: the
            # missing certificate ends it with an alert), not a refused port.
            assert "ConnectionResetError" in first.error, first.error
            assert r.listener is not None
            assert r.listener.unverified == 0
            # Nothing reached the engine: the next poll is an hour away.
            assert (
                r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now()).value
                != 1100
            )

    run(body)


def test_require_certificate_false_delivers_and_acts_on_a_get(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with (
            utility_server(sep2_pki, notify_with_certificate=False) as u,
            gateway_rig(
                sep2_pki,
                tmp_path / "gw.db",
                notifications=True,
                utility=u,
                notify_require_certificate=False,
            ) as r,
        ):
            await hourly(r)
            since = r.state.clock()
            mrid = r.state.add_control(
                r.program, start=int(r.server_now()) - 1, duration=600, base=export_limit(1100)
            )
            in_force = r.site.engine.schedule.in_force
            await r.until(
                lambda: in_force(Mode.EXPORT_LIMIT_W, r.http.time.now()).mrid == mrid,
                "the control, within seconds of an hour-long poll period",
                5,
            )
            held = in_force(Mode.EXPORT_LIMIT_W, r.http.time.now())
            assert (held.value, held.source) == (1100, Source.UTILITY_EVENT)
            delivered = [x for x in r.recorder.notifications() if x.status == 201]
            assert delivered, r.recorder.notifications()
            assert r.listener is not None
            assert r.listener.unverified >= 1
            # The notification carried the whole list, yet the gateway read it from the server.
            assert control_list_gets(r, since) >= 1
            await r.until(lambda: r.codes(mrid) == [1, 2], "1, 2")

    run(body)


async def post_unverified(r: GatewayRig, pki: PkiFiles, body: bytes) -> int:
    """POST ``body`` to the gateway's listener over TLS, presenting no certificate."""
    assert r.listener is not None
    context = tls.anonymous_client_context(pki.serca)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.post(
            r.listener.url, data=body, headers={"Content-Type": "application/sep+xml"}
        ) as reply,
    ):
        return reply.status


def test_an_unverified_notification_s_content_is_never_used(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """Anyone who can reach the listener can POST without a certificate: a forged control list
    must not reach the engine, a forged "subscription ended" must not end it, and a
    notification naming no subscription of ours costs nothing."""

    async def body() -> None:
        async with gateway_rig(
            sep2_pki, tmp_path / "gw.db", notifications=True, notify_require_certificate=False
        ) as r:
            await hourly(r)
            derc = paths.derc_list(r.program.key)
            location = subscribed(r)[derc]
            ours = r.server.url(urlsplit(location).path)
            # A forged list: a 0 W export limit the server never issued.
            p = r.state.program(r.program.mrid)
            now = r.state.now()
            fake = Control(
                number=99,
                mrid=r.state.new_mrid(),
                start=now - 1,
                duration=600,
                base=export_limit(0),
                creation_time=now,
                status_time=now,
                response_required=3,
                reply_to=paths.response_list(p.number),
            )
            forged_mrid = fake.mrid
            forged = DERControlList(
                all=1, results=1, DERControl=(views.control(r.state, p, fake),), href=derc
            )
            since = r.state.clock()  # float: Exchange.at is the server clock unrounded
            gets = control_list_gets(r, since)
            status = await post_unverified(r, sep2_pki, notification_body(derc, ours, forged))
            assert status == 201
            await r.until(lambda: control_list_gets(r, since) > gets, "the gateway GETs the list")
            schedule = r.site.engine.schedule
            assert schedule.get(forged_mrid) is None  # type: ignore[arg-type]
            # A forged "subscription ended": the gateway asks the server, which still has it.
            subs_before = len(r.recorder.requests("POST", "/edev/1/sub"))
            status = await post_unverified(
                r, sep2_pki, notification_body(derc, ours, None, NotificationStatus.CANCELLED)
            )
            assert status == 201
            sub_path = urlsplit(location).path
            await r.until(
                lambda: bool(r.recorder.requests("GET", path=sub_path, since=since)),
                "the gateway GETs its subscription",
            )
            assert len(r.recorder.requests("POST", "/edev/1/sub")) == subs_before
            assert r.gateway.client.session.discovery is not None  # no re-walk was started
            # Naming no subscription of ours: ignored, nothing requested.
            assert r.router is not None
            unrouted = r.router.unrouted
            later = r.state.clock()
            status = await post_unverified(
                r, sep2_pki, notification_body(derc, r.server.url("/edev/1/sub/999"), forged)
            )
            assert status == 201
            assert r.router.unrouted == unrouted + 1
            await asyncio.sleep(0.5)
            assert control_list_gets(r, later) == 0
            assert schedule.get(forged_mrid) is None  # type: ignore[arg-type]

    run(body)
