"""AGG-001 (aggregator subscription): several EndDevices behind one certificate, one listener.

``aggregator_rig`` composes ``gateway run``'s aggregator mode over real mutual TLS: the ``agg``
certificate, one ``Http``, one notification listener and router, and per EndDevice a store, a
simulated home and a ``Sep2Gateway``. Every EndDevice has the rig's shared program (primacy 1,
default export 5000 W) and a program of its own (primacy 2). As in ``test_sep2_subscription``,
the poll rates are raised to an hour once subscribed, so only a notification can bring a change
in within seconds.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sep2_rig import POLLED, AggregatorRig, Member, aggregator_rig, export_limit, run, until

from gateway.core.controls import Mode, Source
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.pubsub import Subscription
from gateway.north.sep2.session import WALK, Task, TaskKind
from gateway.sim.utility import paths
from gateway.sim.utility.records import Program

HOUR = 3600
DEFAULT_W = 5000.0  # the shared program's default export limit


def subscriptions(r: AggregatorRig, m: Member) -> list[Subscription]:
    """The Subscriptions ``m``'s EndDevice had accepted (POSTed to its SubscriptionList)."""
    return [s for _, s in r.recorder.decoded(Subscription, "POST", m.sub_list, status=201)]


def followed(m: Member) -> set[str]:
    """``m``'s FSA list and DERProgramList, the DERControlList of every program it sees and
    the DefaultDERControl of the shared one ("1"; its own has none)."""
    return {
        paths.fsa_list(m.number),
        paths.derp_list(m.number, 1),
        paths.derc_list(m.program.key),
        paths.derc_list("1"),
        paths.dderc("1"),
    }


async def subscribed(r: AggregatorRig) -> None:
    await until(
        lambda: all(len(subscriptions(r, m)) == 5 for m in r.members),
        "5 subscriptions per EndDevice: its FSA list and DERProgramList, each program's "
        "DERControlList and the shared program's DefaultDERControl",
    )


async def notified_only(r: AggregatorRig) -> int:
    """Subscribed, and every EndDevice has learned the hourly rates; the program GETs so far."""
    await subscribed(r)
    for resource in POLLED:
        r.state.set_poll_rate(resource, HOUR)  # type: ignore[arg-type]

    def learned(m: Member) -> bool:
        s = m.gateway.client.session
        tasks = [WALK] + [Task(TaskKind.PROGRAM, v.program.mRID) for v in s.programs]
        return len(tasks) == 3 and all(s.rate(t) == HOUR for t in tasks)

    await until(lambda: all(learned(m) for m in r.members), "walks that learn the hourly rates")
    return len(r.recorder.requests("GET", "/derp/"))


def export_in_force(m: Member) -> tuple[float | None, Source | None, str | None]:
    held = m.in_force(Mode.EXPORT_LIMIT_W)
    value = None if held.value is None else float(held.value)
    return value, held.source, held.mrid


async def holds(m: Member, expected: tuple[float, Source, str | None], what: str) -> None:
    """``m``'s export limit in force becomes ``expected`` (value, source, mRID) within 2 s.
    Waited for rather than read once: each walk re-estimates the server's clock from a
    whole-second ``Time`` and may set it back by a fraction of a second, and an event that
    started at its receipt then reads as not yet started until the clock passes it again."""
    await until(lambda: export_in_force(m) == expected, f"{what}: {expected}", 2)


def notified_to(r: AggregatorRig, resource: str) -> set[str]:
    """The SubscriptionLists whose subscriptions got a delivered Notification of ``resource``."""
    return {
        urlsplit(n.subscriptionURI).path.rsplit("/", 1)[0]
        for _, n in r.recorder.notes(delivered=True)
        if n.subscribedResource == resource
    }


async def one_control_each(r: AggregatorRig) -> tuple[str, str]:
    """An export limit on A's own program (1500 W) and on B's (1200 W), running now; their
    mRIDs once each EndDevice has answered its own 1 and 2."""
    a, b = r.members
    now = r.state.now()
    on_a = r.state.add_control(a.program, start=now - 1, duration=600, base=export_limit(1500))
    on_b = r.state.add_control(b.program, start=now - 1, duration=600, base=export_limit(1200))
    await until(lambda: r.codes(on_a, a) == [1, 2] and r.codes(on_b, b) == [1, 2], "1, 2 each")
    return on_a, on_b


def test_AGG_001_each_end_device_subscribes_to_its_own_resources(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path, members=3) as r:
            await subscribed(r)
            agg = sep2_pki.device("agg").lfdi
            for m in r.members:
                subs = subscriptions(r, m)
                # One Subscription per resource of each program this EndDevice sees, to its
                # own SubscriptionList, with the listener's URI.
                assert sorted(s.subscribedResource for s in subs) == sorted(followed(m)), m
                assert {s.notificationURI for s in subs} == {r.listener.url}
                assert len(r.state.end_device(m.lfdi).subscriptions) == 5
            own = [paths.derc_list(m.program.key) for m in r.members]
            assert len(set(own)) == 3
            # Every request came through the one aggregator certificate.
            assert {x.lfdi for x in r.recorder.requests("POST", "/edev/")} == {agg}
            # Later walks keep the subscriptions they have: none is POSTed twice.
            walks = [m.gateway.client.session for m in r.members]
            gets = len(r.recorder.requests("GET", "/edev/"))
            await until(lambda: len(r.recorder.requests("GET", "/edev/")) > gets + 6, "re-walks")
            assert all(s.discovery is not None for s in walks)
            assert [len(subscriptions(r, m)) for m in r.members] == [5, 5, 5]

    run(body)


def test_AGG_001_a_control_notified_to_one_end_device_reaches_only_it(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path, members=3) as r:
            for m in r.members:
                m.site.home.physics.load.constant_w = 1000.0  # PV ~2.7 kW: ~1.7 kW exported
            polls = await notified_only(r)
            a, b, c = r.members
            mrid = r.state.add_control(
                b.program, start=r.state.now() - 1, duration=600, base=export_limit(500)
            )
            await until(lambda: export_in_force(b)[0] == 500, "B's export limit, notified", 5)
            await holds(b, (500.0, Source.UTILITY_EVENT, mrid), "B")
            await until(lambda: r.codes(mrid, b) == [1, 2], "B answers 1, 2", 5)
            # Responses: to B's program's replyTo, as B's EndDevice, over the one certificate.
            for x, resp in r.recorder.responses(mrid):
                assert x.path == paths.response_list(b.program.number)
                assert resp.endDeviceLFDI == b.lfdi
                assert x.lfdi == sep2_pki.device("agg").lfdi
            # The notification went to B's subscription only, and was routed to B.
            assert notified_to(r, paths.derc_list(b.program.key)) == {b.sub_list}
            assert r.router.unrouted == 0
            # B's home is held at the new limit; A and C export as before, under the default.
            await until(lambda: -b.site.home.physics.meter().net_w <= 560, "B's export <= 500")
            for other in (a, c):
                assert other.site.engine.schedule.get(mrid) is None  # type: ignore[arg-type]
                assert export_in_force(other) == (DEFAULT_W, Source.UTILITY_DEFAULT, None)
                assert -other.site.home.physics.meter().net_w > 1200
                assert r.codes(mrid, other) == []
            # Faster than any poll: not one program GET since the hourly rates were learned.
            assert len(r.recorder.requests("GET", "/derp/")) == polls

    run(body)


def test_AGG_001_cancel_and_supersede_on_one_end_device_leave_the_other_alone(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path) as r:
            polls = await notified_only(r)
            a, b = r.members
            on_a, on_b = await one_control_each(r)
            r.state.cancel(on_b)
            await until(lambda: r.codes(on_b, b) == [1, 2, 6], "B answers 6", 5)
            await until(lambda: export_in_force(b)[1] is Source.UTILITY_DEFAULT, "B's default", 3)
            await holds(a, (1500.0, Source.UTILITY_EVENT, on_a), "A's control, still")
            assert r.codes(on_a, a) == [1, 2]
            newer = r.state.supersede(on_a, base=export_limit(900))
            await until(lambda: r.codes(on_a, a) == [1, 2, 7], "A answers 7", 5)
            await until(lambda: r.codes(newer, a) == [1, 2], "A answers 1, 2 for the new one", 5)
            await holds(a, (900.0, Source.UTILITY_EVENT, newer), "A's newer control")
            assert export_in_force(b) == (DEFAULT_W, Source.UTILITY_DEFAULT, None)
            assert b.site.engine.schedule.get(newer) is None  # type: ignore[arg-type]
            assert r.codes(newer, b) == []
            assert r.codes(on_b, b) == [1, 2, 6]
            assert r.codes(on_b, a) == []
            assert r.codes(on_a, b) == []
            assert len(r.recorder.requests("GET", "/derp/")) == polls

    run(body)


def test_AGG_001_a_control_on_a_shared_program_is_notified_to_every_end_device(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path) as r:
            polls = await notified_only(r)
            mrid = r.state.add_control(
                r.utility.program, start=r.state.now() - 1, duration=600, base=export_limit(1500)
            )
            shared = paths.derc_list(r.utility.program.key)
            await until(
                lambda: notified_to(r, shared) == {m.sub_list for m in r.members}, "both notified"
            )
            await until(
                lambda: all(r.codes(mrid, m) == [1, 2] for m in r.members),
                "each EndDevice answers 1, 2",
                4,
            )
            assert len(r.recorder.requests("GET", "/derp/")) == polls

    run(body)


def test_AGG_001_polling_covers_an_end_device_whose_notifications_stopped(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """The server loses B's subscriptions (a restart, say): A is still notified; B's controls
    arrive by its polls (every second here)."""

    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path) as r:
            await subscribed(r)
            a, b = r.members
            r.state.end_device(b.lfdi).subscriptions.clear()
            since = r.state.now()
            on_a, on_b = await one_control_each(r)
            await holds(a, (1500.0, Source.UTILITY_EVENT, on_a), "A")
            await holds(b, (1200.0, Source.UTILITY_EVENT, on_b), "B, by polling")
            assert notified_to(r, paths.derc_list(a.program.key)) == {a.sub_list}
            assert notified_to(r, paths.derc_list(b.program.key)) == set()
            b_polls = r.recorder.requests("GET", path=paths.derc_list(b.program.key), since=since)
            assert b_polls

    run(body)


# --- ALL-14 against the reference server's habit: the aggregator's own EndDevice subscribes ---
# bsgip/envoy lists the aggregator certificate's own EndDevice first, /edev/0, with the only
# SubscriptionListLink; the sites' EndDevices have none (cactus ALL-14 waits for every
# subscription at /edev/0/sub: the FSA list, the DERProgramList, the DERControlList and the
# DefaultDERControl).

AGG_SUB_LIST = "/edev/0/sub"


def agg_subscriptions(r: AggregatorRig) -> list[Subscription]:
    return [s for _, s in r.recorder.decoded(Subscription, "POST", AGG_SUB_LIST, status=201)]


def wanted_through_aggregator(r: AggregatorRig) -> list[str]:
    """What ALL-14 wants each site subscribed to: its FSA list and DERProgramList, and the
    DERControlList and DefaultDERControl of each program it sees (its own has no default:
    nothing there to subscribe to), one subscription per site."""
    shared = r.utility.program.key
    out: list[str] = []
    for m in r.members:
        out += [paths.fsa_list(m.number), paths.derp_list(m.number, 1)]
        out += [paths.derc_list(m.program.key), paths.derc_list(shared), paths.dderc(shared)]
    return sorted(out)


def test_ALL_14_aggregator_subscribes_through_its_own_end_device(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with aggregator_rig(sep2_pki, tmp_path, own_end_device=True) as r:
            a, b = r.members
            assert r.state.aggregator_end_device(sep2_pki.device("agg").lfdi) is not None
            await until(
                lambda: (
                    sorted(s.subscribedResource for s in agg_subscriptions(r))
                    == wanted_through_aggregator(r)
                ),
                "every site's subscriptions at the aggregator's /edev/0/sub",
            )
            assert {s.notificationURI for s in agg_subscriptions(r)} == {r.listener.url}
            # Nothing was POSTed where the server links no SubscriptionList.
            assert all(not r.recorder.requests("POST", m.sub_list) for m in r.members)
            # Notifications only from here: every poll an hour, learned by every site.
            for resource in POLLED:
                r.state.set_poll_rate(resource, HOUR)  # type: ignore[arg-type]

            def learned(m: Member) -> bool:
                s = m.gateway.client.session
                tasks = [WALK] + [Task(TaskKind.PROGRAM, v.program.mRID) for v in s.programs]
                return len(tasks) == 3 and all(s.rate(t) == HOUR for t in tasks)

            await until(lambda: all(learned(m) for m in r.members), "the hourly rates learned")
            # A control on B's own program: its DERControlList notification brings it.
            mrid = r.state.add_control(
                b.program, start=r.state.now() - 1, duration=600, base=export_limit(700)
            )
            await holds(b, (700.0, Source.UTILITY_EVENT, mrid), "B's control, notified")
            assert export_in_force(a) == (DEFAULT_W, Source.UTILITY_DEFAULT, None)
            # A new FSA for A (FSA list notification) and a new program in B's first FSA
            # (DERProgramList notification): each site walks again at once and follows it.
            for_a = r.state.add_program("A's second FSA", primacy=3, end_devices=[])
            r.state.add_fsa(a.lfdi, [for_a], "second")
            for_b = r.state.add_program("B's third", primacy=4, end_devices=[b.lfdi])

            def follows(m: Member, p: Program) -> bool:
                return m.gateway.client.session.view(p.mrid) is not None

            await until(lambda: follows(a, for_a) and follows(b, for_b), "new programs", 5)
            assert not follows(a, for_b)
            assert not follows(b, for_a)
            # ... and subscribes to what the walk found.
            await until(
                lambda: (
                    {paths.derc_list(for_a.key), paths.derc_list(for_b.key)}
                    <= {s.subscribedResource for s in agg_subscriptions(r)}
                ),
                "subscriptions to the new programs' DERControlLists",
                5,
            )
            assert r.router.unrouted == 0

    run(body)
