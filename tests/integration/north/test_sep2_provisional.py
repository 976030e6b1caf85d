"""Provisional procedures (CSIP-AUS P-01 ... P-06): aggregation, FSA changes, long controls,
relocated programs and HTTP 429 back-off.

Each test runs the whole gateway against the simulated utility (``sep2_rig.py``); P-01 composes
an aggregator from the same parts as ``gateway run`` (``runtime/cli_run.py``): one ``Http`` with
the aggregator's certificate, one ``ModbusSite`` + ``Sep2Gateway`` per EndDevice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

from sep2_rig import (
    PIN,
    RATE_S,
    GatewayRig,
    export_limit,
    fast_site,
    gateway_rig,
    run,
    utility_server,
)

from gateway.core.controls import Mode
from gateway.demo.modbus_site import ModbusSite
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import Sep2Gateway
from gateway.north.sep2.client import Backoff, Http, Identity
from gateway.north.sep2.identity import sfdi_from_lfdi
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.telemetry import SiteRatings
from gateway.sim.clock import DEFAULT_START
from gateway.store.sqlite import SqliteStore

DERC = "/derp/*/derc"


def _export_limit(r: GatewayRig) -> float | None:
    value = r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now()).value
    return None if value is None else float(value)


def _derc_gets(r: GatewayRig, since: float = 0.0) -> list[float]:
    """Server times of every GET of a DERControlList since ``since``."""
    return [
        x.at for x in r.recorder.requests("GET", "/derp/", since=since) if x.path.endswith("/derc")
    ]


# --- P-01: several EndDevices behind one certificate (aggregator) ------------------------------


def test_P_01_aggregator_end_devices_share_a_control_and_each_answers(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    agg = sep2_pki.device("agg")
    members = [sep2_pki.device("gateway").lfdi, sep2_pki.device("other").lfdi]

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            u.state.remove_end_device(members[0])  # the rig's own device: re-add under agg
            u.state.add_aggregator(agg.lfdi)
            for lfdi in members:
                u.state.add_end_device(lfdi, pin=PIN, aggregator=agg.lfdi, post_rate=RATE_S)
            context = tls.client_context(agg.cert, agg.key, agg.chain, sep2_pki.serca)
            config = fast_site()
            ratings = SiteRatings.of_site(config)
            stop = asyncio.Event()
            async with contextlib.AsyncExitStack() as stack:
                http = await stack.enter_async_context(
                    Http(u.server.url("/dcap"), context, backoff=Backoff(0.2, 2.0))
                )
                gateways = []
                for i, lfdi in enumerate(members):
                    store = stack.enter_context(SqliteStore(tmp_path / f"ed{i}.db"))
                    site = await stack.enter_async_context(
                        ModbusSite(
                            store, config, start=DEFAULT_START, now=http.time.now, ack_reports=False
                        )
                    )
                    identity = Identity(lfdi, sfdi_from_lfdi(lfdi), pin=PIN)
                    gateways.append(
                        Sep2Gateway(site.runner.port, store, http, identity, ratings=ratings)
                    )
                tasks = [asyncio.create_task(g.run(stop, period_s=0.2)) for g in gateways]
                try:
                    now = u.state.now()
                    mrid = u.state.add_control(
                        u.program, start=now + 2, duration=3, base=export_limit(2000)
                    )

                    def codes(lfdi: str) -> list[int | None]:
                        return [
                            resp.status
                            for _, resp in u.recorder.responses(mrid)
                            if resp.endDeviceLFDI == lfdi
                        ]

                    deadline = time.monotonic() + 15
                    while any(codes(lfdi) != [1, 2, 3] for lfdi in members):
                        assert time.monotonic() < deadline, {m: codes(m) for m in members}
                        await asyncio.sleep(0.05)
                    # One scan of the EndDeviceList served both first walks (later walks
                    # go straight to each verified EndDevice href).
                    list_reads = [x for x in u.recorder.requests("GET") if x.path == "/edev"]
                    assert len(list_reads) == 1, [x.path for x in list_reads]
                    # Every request came through the one aggregator certificate.
                    assert {x.lfdi for x in u.recorder.requests()} == {agg.lfdi}
                    assert len(u.state.visible_to(agg.lfdi)) == 2
                    # Each EndDevice walked its own EndDevice and reported its own DER.
                    for lfdi in members:
                        assert u.state.der_status(lfdi) is not None
                    assert {g.client.session.discovery.end_device.lFDI for g in gateways} == set(  # type: ignore[union-attr]
                        members
                    )
                finally:
                    stop.set()
                    await asyncio.wait_for(asyncio.gather(*tasks), 10)

    run(body)


# --- P-02: an FSA removed mid-run --------------------------------------------------------------


def test_P_02_fsa_removed_mid_event_the_control_stops(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            second = r.state.add_program("feeder 8", primacy=2, end_devices=[])
            fsa = r.state.add_fsa(r.lfdi, [second], "second")
            now = int(r.server_now())
            running = r.state.add_control(
                second, start=now + 1, duration=600, base=export_limit(1500)
            )
            kept = r.state.add_control(
                r.program, start=now + 4, duration=2, base=export_limit(4000)
            )
            await r.until(lambda: r.codes(running) == [1, 2], "1 and 2 for the FSA's control")
            await r.until(lambda: _export_limit(r) == 1500, "the FSA's control in force")
            r.state.remove_fsa(r.lfdi, fsa.number)
            await r.until(lambda: _export_limit(r) != 1500, "the control stops", timeout=5)
            # A control added to the unassigned program afterwards is never seen.
            later = r.state.add_control(
                second, start=int(r.server_now()) + 1, duration=600, base=export_limit(500)
            )
            await r.until(lambda: r.codes(kept) == [1, 2, 3], "1, 2, 3 on the remaining FSA")
            await r.until(lambda: _export_limit(r) == 5000, "back to the remaining default")
            assert r.codes(later) == []
            assert r.site.engine.schedule.get(later) is None  # type: ignore[arg-type]
            # The withdrawn control never completed: it is answered cancelled (docs/sep2.md: a
            # control nobody publishes any more is cancelled, 6 when responseRequired asks).
            assert r.codes(running) == [1, 2, 6], r.codes(running)
            assert not r.recorder.requests("GET", "/derp/2", since=r.state.clock() - 1)

    run(body)


# --- P-03: long-running control, cancelled -----------------------------------------------------


def test_P_03_long_running_control_cancelled_answers_1_2_6_then_default(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=24 * 3600, base=export_limit(1000)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2], "1 and 2")
            await r.until(lambda: _export_limit(r) == 1000, "the control in force")
            r.state.set_default(r.program, export_limit(3000))  # "30 %"
            await asyncio.sleep(1.5)  # the new default is read while the control still runs
            assert _export_limit(r) == 1000
            r.state.cancel(mrid)
            await r.until(lambda: r.codes(mrid) == [1, 2, 6], "6 after the cancel")
            await r.until(lambda: _export_limit(r) == 3000, "the new default afterwards")
            await asyncio.sleep(1.5)
            assert r.codes(mrid) == [1, 2, 6]  # nothing more: no 3 for a cancelled control

    run(body)


# --- P-04: a relocated program -----------------------------------------------------------------


def test_P_04_relocated_program_is_rediscovered_not_polled_at_old_hrefs(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=6, base=export_limit(1800)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2], "1 and 2 before the move")
            moved_at = r.state.clock()
            key = r.state.relocate_program(r.program)
            await r.until(
                lambda: bool(r.recorder.requests("GET", f"/derp/{key}/derc", status=200)),
                "the new DERControlList read",
            )
            assert _export_limit(r) == 1800  # the move withdrew nothing
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3 across the move")
            await asyncio.sleep(2.0)
            old = [
                x
                for x in r.recorder.requests("GET", "/derp/1/", since=moved_at)
                if x.path.startswith("/derp/1/")
            ]
            assert all(x.status == 404 for x in old), old
            # At most one poll (its DefaultDERControl and DERControlList) hit the old hrefs.
            assert len([x for x in old if x.path.endswith("/derc")]) <= 1, old
            assert len(old) <= 2, old
            if old:
                assert old[-1].at - old[0].at < 1.0
            assert r.codes(mrid) == [1, 2, 3]  # the same program: no cancel, no repeat

    run(body)


# --- P-05 / P-06: HTTP 429 -----------------------------------------------------------------------


def test_P_05_backs_off_on_429_without_retry_after(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    window = 8.0

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", backoff=Backoff(0.2, 2.0)) as r:
            await r.until(lambda: r.gateway.client.session.discovery is not None, "a walk")
            await asyncio.sleep(1.0)
            start = r.state.clock()
            r.state.fail(429, paths=[DERC])
            await asyncio.sleep(window)
            r.state.clear_faults()
            hits = [at - start for at in _derc_gets(r, since=start) if at - start <= window]
            # No hammering: with 1 s polls (walk + program) and no back-off there would be
            # about 2 a second; the 0.2 s doubling to 2 s back-off allows about 7 in 8 s.
            seen = [
                f"{x.at - start:.2f} {x.method} {x.path} {x.status}"
                for x in r.recorder.requests(since=start)
                if x.at - start <= 3
            ]
            assert 2 <= len(hits) <= 9, "\n".join(seen)
            gaps = [b - a for a, b in itertools.pairwise(hits)]
            assert gaps[-1] >= 1.5, [round(g, 2) for g in gaps]  # thinned out to the cap
            assert gaps[-1] > gaps[0], [round(g, 2) for g in gaps]
            # The fault cleared: polling resumes at the server's rate.
            resumed = r.state.clock()
            await r.until(
                lambda: len(r.recorder.requests("GET", "/derp/", since=resumed, status=200)) >= 2,
                "polls answered 200 again",
            )

    run(body)


def test_P_06_no_request_before_retry_after_elapses(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    retry_after = 4

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.gateway.client.session.discovery is not None, "a walk")
            r.state.fail(429, retry_after=retry_after, count=1, paths=[DERC])
            await r.until(lambda: bool(r.recorder.requests("GET", "/derp/", status=429)), "the 429")
            refused = r.recorder.requests("GET", "/derp/", status=429)[0]
            await r.until(
                lambda: bool(_derc_gets(r, since=refused.at + 0.001)), "the next poll", timeout=10
            )
            after = [x for x in r.recorder.exchanges if x.at > refused.at]
            # Nothing at all reached the server before Retry-After elapsed (the gate is per
            # server: a 429 is about the client, not the resource) ...
            assert after[0].at - refused.at >= retry_after - 0.1, after[0]
            # ... and the DERControlList was asked again once it had: exactly one more request
            # in the Retry-After window plus a poll period.
            retried = _derc_gets(r, since=refused.at + 0.001)
            assert retried[0] - refused.at < retry_after + RATE_S + 1.0

    run(body)
