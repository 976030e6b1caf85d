"""Subscription procedures (CSIP-AUS ALL-14 ... ALL-17, GEN-05 ... 08, LOA-05 ... 08).

The gateway subscribes to its FSA list, each DERProgramList, and each program's DERControlList
and DefaultDERControl, runs its own mutual-TLS listener, and acts on a notification without
waiting for the next poll. Here the poll rate is raised to an hour after discovery, so only a
notification can bring a control in.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sep2_rig import POLLED, GatewayRig, export_limit, fast_site, gateway_rig, run

from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.island import RelayPosition
from gateway.core.schedule import InForce
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import ConnectStatus
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.pubsub import Subscription
from gateway.north.sep2.session import WALK, Task, TaskKind
from gateway.sim.utility import paths

HOUR = 3600
# ALL-14: the FSA list, the DERProgramList, the DERControlList and the DefaultDERControl.
WANTED = sorted(
    [
        paths.fsa_list(1),
        paths.derp_list(1, 1),
        paths.derc_list("1"),
        paths.dderc("1"),
    ]
)


def subscribed_to(r: GatewayRig) -> list[str]:
    posts = r.recorder.decoded(Subscription, "POST", "/edev/1/sub", status=201)
    return sorted(s.subscribedResource for _, s in posts)


async def subscribed(r: GatewayRig) -> None:
    await r.until(lambda: subscribed_to(r) == WANTED, f"subscriptions to {WANTED}")


def test_ALL_14_subscribe_and_act_on_notifications(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            await subscribed(r)
            for x in r.recorder.requests("POST", "/edev/1/sub", status=201):
                sub = codec.decode(x.body)
                assert isinstance(sub, Subscription)
                assert sub.notificationURI.startswith("https://127.0.0.1:")
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
            # A new program in the DERProgramList, then a new FSA: each notification makes
            # the gateway walk again at once (an hour before its next walk), and subscribe
            # to what it found.
            second = r.state.add_program("second", primacy=2, end_devices=[r.lfdi])
            await r.until(lambda: session.view(second.mrid) is not None, "the new program", 5)
            third = r.state.add_program("third", primacy=3, end_devices=[])
            r.state.add_fsa(r.lfdi, [third], "second FSA")
            await r.until(lambda: session.view(third.mrid) is not None, "the new FSA's", 5)
            await r.until(
                lambda: (
                    {paths.derc_list(second.key), paths.derc_list(third.key)}
                    <= set(subscribed_to(r))
                ),
                "subscriptions to the new programs' control lists",
                5,
            )
            notified = {n.subscribedResource for _, n in r.recorder.notes(delivered=True)}
            assert {paths.derp_list(1, 1), paths.fsa_list(1)} <= notified

    run(body)


def test_polling_carries_on_when_notifications_stop(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    """The listener goes away (a firewall, a crash): notifications fail on the server's side,
    and the next poll still brings the control in."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            await subscribed(r)
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


# --- ALL-15 ... ALL-17, GEN-05 ... GEN-08, LOA-05 ... LOA-08 ---------------------------------
# Each: subscribed, every poll rate raised to an hour and learned, then the server changes a
# control or the default. A complete DERControlList arrives in the Notification itself (no
# request); a DefaultDERControl notification makes the gateway fetch the program once, at once.
# So: program GETs since the hourly rates <= default notifications delivered, and the change
# takes effect within seconds of an hour-long poll period.


async def notified_only(r: GatewayRig) -> tuple[int, int]:
    """Subscribed, hourly polls learned; returns the program fetches (default, list) so far."""
    await subscribed(r)
    for resource in POLLED:
        r.state.set_poll_rate(resource, HOUR)  # type: ignore[arg-type]
    session = r.gateway.client.session
    program = Task(TaskKind.PROGRAM, r.program.mrid)
    await r.until(
        lambda: session.rate(WALK) == HOUR and session.rate(program) == HOUR,
        "a walk that learns the hourly rates",
    )
    return _fetches(r)


def _fetches(r: GatewayRig) -> tuple[int, int]:
    gets = [x.path for x in r.recorder.requests("GET", "/derp/")]
    return sum(p.endswith("/dderc") for p in gets), sum(p.endswith("/derc") for p in gets)


def assert_no_poll(r: GatewayRig, before: tuple[int, int]) -> None:
    """No program poll but the one fetch (its default and its list) each DefaultDERControl
    notification asks for; a DERControlList notification carries the list and asks for none."""
    defaults = [
        n for _, n in r.recorder.notes(delivered=True) if n.subscribedResource.endswith("/dderc")
    ]
    now = _fetches(r)
    extra = (now[0] - before[0], now[1] - before[1])
    assert max(extra) <= len(defaults), (extra, len(defaults))


def in_force(r: GatewayRig, mode: Mode) -> InForce:
    return r.site.engine.schedule.in_force(mode, r.http.time.now())


def _gen_status(r: GatewayRig) -> int | None:
    status = r.state.der_status(r.lfdi)
    if status is None or status.genConnectStatus is None:
        return None
    return int(status.genConnectStatus.value)


def test_ALL_15_energize_by_notification(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            polls = await notified_only(r)
            await r.until(lambda: physics.pv.power_w > 2000, "the PV generating")
            await r.until(lambda: (_gen_status(r) or 0) & ConnectStatus.OPERATING != 0, "bit 2")
            now = int(r.server_now())
            off = r.state.add_control(
                r.program, start=now - 1, duration=300, base=DERControlBase(opModEnergize=False)
            )
            await r.until(lambda: in_force(r, Mode.ENERGIZE).value is False, "de-energize", 3)
            await r.until(lambda: physics.pv.power_w < 10, "the PV ceases to energize", 3)
            await r.until(lambda: r.codes(off) == [1, 2], "1, 2 for de-energize")
            await r.until(
                lambda: (_gen_status(r) or 0) & ConnectStatus.OPERATING == 0,
                "DERStatus genConnectStatus bit 2 clear",
                4,
            )
            now = int(r.server_now())
            on = r.state.add_control(
                r.program, start=now - 1, duration=600, base=DERControlBase(opModEnergize=True)
            )
            await r.until(lambda: in_force(r, Mode.ENERGIZE).value is True, "energize", 3)
            await r.until(lambda: r.codes(on) == [1, 2], "1, 2 for energize")
            # The newer control of the same mode and primacy supersedes the older.
            await r.until(lambda: r.codes(off) == [1, 2, 7], "7 for de-energize")
            await r.until(
                lambda: (_gen_status(r) or 0) & ConnectStatus.OPERATING != 0,
                "DERStatus genConnectStatus bit 2 set again",
                4,
            )
            await r.until(lambda: physics.pv.power_w > 2000, "the PV generating again", 4)
            assert_no_poll(r, polls)

    run(body)


def test_ALL_16_disconnect_by_notification(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            polls = await notified_only(r)
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "grid-connected")
            await r.until(lambda: (_gen_status(r) or 0) & ConnectStatus.CONNECTED != 0, "bit 0")
            now = int(r.server_now())
            off = r.state.add_control(
                r.program, start=now - 1, duration=300, base=DERControlBase(opModConnect=False)
            )
            await r.until(lambda: in_force(r, Mode.CONNECT).value is False, "disconnect", 3)
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens", 3)
            await r.until(
                lambda: (_gen_status(r) or 0) & ConnectStatus.CONNECTED == 0,
                "DERStatus genConnectStatus bit 0 clear",
                4,
            )
            await r.until(lambda: r.codes(off) == [1, 2], "1, 2 for disconnect")
            now = int(r.server_now())
            on = r.state.add_control(
                r.program, start=now - 1, duration=600, base=DERControlBase(opModConnect=True)
            )
            await r.until(lambda: in_force(r, Mode.CONNECT).value is True, "connect", 3)
            await r.until(lambda: r.codes(on) == [1, 2], "1, 2 for connect")
            await r.until(lambda: r.codes(off) == [1, 2, 7], "7 for disconnect")
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "the relay recloses", 10)
            await r.until(
                lambda: (_gen_status(r) or 0) & ConnectStatus.CONNECTED != 0,
                "DERStatus genConnectStatus bit 0 set again",
                4,
            )
            assert_no_poll(r, polls)

    run(body)


def test_ALL_17_default_set_grad_w_by_notification(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        start = DefaultDERControl("0", DERControlBase(**_base(Mode.EXPORT_LIMIT_W, 0)), setGradW=27)
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", notifications=True) as r:
            r.state.set_default(r.program, start)
            polls = await notified_only(r)

            def grad() -> int | None:
                settings = r.state.der_settings(r.lfdi)
                return None if settings is None else settings.setGradW

            await r.until(lambda: grad() == 27, "DERSettings setGradW 27")
            r.state.set_default(
                r.program,
                DefaultDERControl(
                    "0", DERControlBase(**_base(Mode.EXPORT_LIMIT_W, 0)), setGradW=100
                ),
            )
            await r.until(lambda: grad() == 100, "DERSettings setGradW 100 (1 %/s)", 4)
            assert_no_poll(r, polls)

    run(body)


_FIELDS = {
    Mode.EXPORT_LIMIT_W: "opModExpLimW",
    Mode.GENERATION_LIMIT_W: "opModGenLimW",
    Mode.IMPORT_LIMIT_W: "opModImpLimW",
    Mode.LOAD_LIMIT_W: "opModLoadLimW",
}
LOAD_W = 1000.0  # household; the PV gives ~2.7 kW at the home's start instant


def _base(mode: Mode, watts: float) -> dict[str, ActivePower]:
    return {_FIELDS[mode]: ActivePower.from_watts(watts)}


def _measured(r: GatewayRig, mode: Mode) -> float:
    physics = r.site.home.physics
    value: float
    if mode is Mode.EXPORT_LIMIT_W:
        value = -physics.meter().net_w
    elif mode is Mode.IMPORT_LIMIT_W:
        value = physics.meter().net_w
    elif mode is Mode.GENERATION_LIMIT_W:
        value = physics.pv.power_w
    else:
        value = -physics.charger.power_w
    return value


@pytest.mark.parametrize(
    ("kind", "mode", "watts"),
    [
        ("control", Mode.EXPORT_LIMIT_W, 0.0),
        ("control", Mode.GENERATION_LIMIT_W, 0.0),
        ("default", Mode.EXPORT_LIMIT_W, 500.0),
        ("default", Mode.GENERATION_LIMIT_W, 800.0),
        ("control", Mode.IMPORT_LIMIT_W, 0.0),
        ("control", Mode.LOAD_LIMIT_W, 0.0),
        ("default", Mode.IMPORT_LIMIT_W, 2500.0),
        ("default", Mode.LOAD_LIMIT_W, 2000.0),
    ],
    ids=["GEN_05", "GEN_06", "GEN_07", "GEN_08", "LOA_05", "LOA_06", "LOA_07", "LOA_08"],
)
def test_GEN_05_to_08_and_LOA_05_to_08_limits_arrive_by_notification(
    kind: str, mode: Mode, watts: float, sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """GEN-05/06, LOA-05/06: a 0 W control by notification. GEN-07/08, LOA-07/08: a control
    of twice the rating is in force, the default changes, the control is cancelled; all three
    by notification, and the new default holds the home."""
    loads = mode in (Mode.IMPORT_LIMIT_W, Mode.LOAD_LIMIT_W)
    # The import/load cases charge the EV at 7 kW (the installer's policy) so the limit binds.
    site = replace(fast_site(), site_policy=ControlSet(target_w=-7000.0)) if loads else None
    tol = 80.0 if loads else 60.0

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=site, notifications=True) as r:
            r.site.home.physics.load.constant_w = 2000.0 if loads else LOAD_W
            polls = await notified_only(r)
            now = int(r.server_now())
            if kind == "control":
                mrid = r.state.add_control(
                    r.program,
                    start=now - 1,
                    duration=600,
                    base=DERControlBase(**_base(mode, watts)),
                )
                await r.until(lambda: r.codes(mrid) == [1, 2], "1, 2", 4)
                held = in_force(r, mode)
                assert (held.value, held.source, held.mrid) == (watts, Source.UTILITY_EVENT, mrid)
            else:
                mrid = r.state.add_control(
                    r.program,
                    start=now - 1,
                    duration=600,
                    base=DERControlBase(**_base(mode, 20000)),
                )
                await r.until(lambda: in_force(r, mode).value == 20000, "the control", 3)
                r.state.set_default(r.program, DERControlBase(**_base(mode, watts)))
                r.state.cancel(mrid)
                await r.until(lambda: r.codes(mrid) == [1, 2, 6], "1, 2, 6 after the cancel", 4)
                await r.until(lambda: in_force(r, mode).value == watts, "the new default", 3)
                assert in_force(r, mode).source is Source.UTILITY_DEFAULT
            await r.until(
                lambda: abs(_measured(r, mode) - watts) <= tol, f"the home at {watts:g} W", 8
            )
            assert_no_poll(r, polls)
            assert r.recorder.notes(delivered=True)

    run(body)
