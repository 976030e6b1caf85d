"""Subscription procedures (CSIP-AUS ALL-14 ... ALL-17, GEN-05 ... 08, LOA-05 ... 08).

The gateway subscribes to each program's DERControlList and DefaultDERControl, runs its own
mutual-TLS listener, and acts on a notification without waiting for the next poll. Here the
poll rate is raised to an hour after discovery, so only a notification can bring a control in.
"""

from __future__ import annotations

from pathlib import Path

from sep2_rig import POLLED, export_limit, gateway_rig, run

from gateway.core.controls import Mode
from gateway.north.sep2 import codec
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.pubsub import Subscription
from gateway.north.sep2.session import WALK, Task, TaskKind

HOUR = 3600


def test_ALL_14_subscribe_and_act_on_notifications(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            subs = lambda: r.recorder.requests("POST", "/edev/1/sub", status=201)  # noqa: E731
            await r.until(lambda: len(subs()) == 2, "subscriptions to the control list and default")
            for x in subs():
                sub = codec.decode(x.body)
                assert isinstance(sub, Subscription)
                assert sub.notificationURI.startswith("https://127.0.0.1:")
                assert sub.subscribedResource.startswith("/derp/")
            for resource in POLLED:
                r.state.set_poll_rate(resource, HOUR)  # type: ignore[arg-type]
            session = r.gateway.client.session
            program = Task(TaskKind.PROGRAM, r.program.mrid)
            await r.until(
                lambda: session.rate(WALK) == HOUR and session.rate(program) == HOUR,
                "a walk that learns the hourly rates",
            )
            polls = len(r.recorder.requests("GET", "/derp/"))
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now - 1, duration=600, base=export_limit(1200)
            )
            await r.until(
                lambda: r.site.engine.schedule.get(mrid) is not None,  # type: ignore[arg-type]
                "the control reaches the engine through the notification",
                timeout=5,
            )
            assert r.recorder.notifications()
            limit = r.site.engine.schedule.in_force
            await r.until(
                lambda: limit(Mode.EXPORT_LIMIT_W, r.http.time.now()).value == 1200,
                "the new export limit in force",
                timeout=2,
            )
            await r.until(lambda: r.codes(mrid) == [1, 2], "1 and 2 for it")
            # It came through the notification: not one program poll since the hourly rates.
            assert len(r.recorder.requests("GET", "/derp/")) == polls

    run(body)


def test_polling_carries_on_when_notifications_stop(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    """The listener goes away (a firewall, a crash): notifications fail on the server's side,
    and the next poll still brings the control in."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            subs = lambda: r.recorder.requests("POST", "/edev/1/sub", status=201)  # noqa: E731
            await r.until(lambda: len(subs()) == 2, "subscribed")
            assert r.listener is not None
            await r.listener.stop()
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now - 1, duration=600, base=export_limit(1300)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2], "the control, by polling")
            sent = r.recorder.notifications()
            assert sent
            assert all(x.status != 201 for x in sent[-1:])  # the last delivery failed

    run(body)
