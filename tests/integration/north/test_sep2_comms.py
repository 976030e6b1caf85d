"""Communication procedures: poll rates (ALL-19, ALL-20), comms loss (ALL-23), settings through
a reconnection and a power cycle (ALL-30), server time (CORE-005) and a restart mid-event.

Each test runs the whole gateway against the simulated utility (``sep2_rig.py``); the restart
tests run two gateways, one after the other, on one SQLite file against one server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path

from sep2_rig import (
    PIN,
    SERVER_OFFSET_S,
    GatewayRig,
    export_limit,
    gateway_rig,
    run,
    utility_server,
)

from gateway.core.controls import Mode
from gateway.core.messages import NorthLinkLost, NorthLinkRestored
from gateway.north.sep2 import codec, tls, walk
from gateway.north.sep2.client import Http
from gateway.north.sep2.der_resources import DERSettings, DERStatus
from gateway.north.sep2.metering import MirrorMeterReadingList, MirrorUsagePoint
from gateway.north.sep2.model import Response
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.session import WALK, Task, TaskKind

HOUR = 3600
WALK_RESOURCES = ("dcap", "edev", "reg", "fsa")


def _export_limit(r: GatewayRig) -> float | None:
    value = r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now()).value
    return None if value is None else float(value)


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in itertools.pairwise(times)]


def _program_polls(r: GatewayRig, since: float) -> list[float]:
    """Server times of every DERControlList GET, a walk's or the program's own poll: a walk
    reads the list too and restarts the program's period, so together they keep the rate,
    and never read it twice in one period (a gap near 0 s fails the bounds below)."""
    return [x.at for x in r.recorder.requests("GET", since=since) if x.path.endswith("/derc")]


# --- ALL-19 / ALL-20: the server's poll rates ------------------------------------------------


def test_ALL_19_a_changed_fsa_list_poll_rate_is_honoured(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            session = r.gateway.client.session
            for resource in ("dcap", "edev", "reg", "derp", "tm", "der"):
                r.state.set_poll_rate(resource, HOUR)
            r.state.set_poll_rate("fsa", 3)
            await r.until(lambda: session.rate(WALK) == 3, "a walk that learns fsa pollRate 3")
            since = r.state.clock()
            await asyncio.sleep(6.6)
            slow = [x.at for x in r.recorder.requests("GET", path="/edev/1/fsa", since=since)]
            assert len(slow) in (2, 3), _gaps(slow)
            assert all(2.7 <= g <= 3.4 for g in _gaps(slow)), _gaps(slow)
            r.state.set_poll_rate("fsa", 1)
            await r.until(lambda: session.rate(WALK) == 1, "a walk that learns pollRate 1", 5)
            since = r.state.clock()
            await asyncio.sleep(3.5)
            fast = [x.at for x in r.recorder.requests("GET", path="/edev/1/fsa", since=since)]
            assert len(fast) >= 3, _gaps(fast)
            assert all(0.7 <= g <= 1.4 for g in _gaps(fast)), _gaps(fast)

    run(body)


def test_ALL_20_a_changed_der_program_list_poll_rate_is_honoured(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            session = r.gateway.client.session
            program = Task(TaskKind.PROGRAM, r.program.mrid)
            for resource in WALK_RESOURCES:
                r.state.set_poll_rate(resource, 4)  # type: ignore[arg-type]
            r.state.set_poll_rate("derp", 2)
            await r.until(lambda: session.rate(program) == 2, "a walk that learns derp rate 2")
            since = r.state.clock()
            await asyncio.sleep(5.0)
            slow = _program_polls(r, since)
            assert len(slow) in (2, 3), _gaps(slow)
            assert all(1.7 <= g <= 2.4 for g in _gaps(slow)), _gaps(slow)
            r.state.set_poll_rate("derp", 1)
            await r.until(lambda: session.rate(program) == 1, "a walk that learns rate 1", 6)
            since = r.state.clock()
            await asyncio.sleep(3.2)
            fast = _program_polls(r, since)
            assert len(fast) >= 3, _gaps(fast)
            assert all(0.7 <= g <= 1.4 for g in _gaps(fast)), _gaps(fast)

    run(body)


# --- ALL-23: communication loss ---------------------------------------------------------------


def test_ALL_23_server_errors_the_control_runs_on_then_the_default(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=export_limit(3000)) as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=5, base=export_limit(1200)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2], "1 and 2")
            await r.until(lambda: _export_limit(r) == 1200, "the control in force")
            r.state.fail(500)  # everything, until cleared
            await r.until(
                lambda: any(isinstance(i, NorthLinkLost) for i in r.inputs), "NorthLinkLost"
            )
            assert _export_limit(r) == 1200  # the received schedule keeps running
            end = r.state.control(mrid).start + 5
            await r.until(lambda: r.state.clock() > end + 0.5, "the control's end", 10)
            await r.until(lambda: _export_limit(r) == 3000, "the default after it", 3)
            assert r.codes(mrid) == [1, 2]  # 3 waits in the outbox while the server fails
            failed = r.state.clock()
            r.state.clear_faults()
            await r.until(
                lambda: any(isinstance(i, NorthLinkRestored) for i in r.inputs),
                "NorthLinkRestored",
            )
            lost = next(i for i, x in enumerate(r.inputs) if isinstance(x, NorthLinkLost))
            back = next(i for i, x in enumerate(r.inputs) if isinstance(x, NorthLinkRestored))
            assert lost < back
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "3 delivered after recovery")
            answered = r.recorder.requests("POST", "/rsps/", status=201, since=failed)
            assert answered  # the 3 went out after the fault cleared
            assert _export_limit(r) == 3000

    run(body)


# --- ALL-30 and restarts: two gateways on one SQLite file --------------------------------------


def _der_settings(r: GatewayRig, since: float = 0.0) -> list[DERSettings]:
    out = []
    for x in r.recorder.requests("PUT", "/edev/1/der/1/derg", status=204, since=since):
        settings = codec.decode(x.body)
        assert isinstance(settings, DERSettings)
        out.append(settings)
    return out


def test_ALL_30_settings_persist_through_comms_loss_and_a_power_cycle(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    db = tmp_path / "gw.db"

    async def body() -> None:
        async with utility_server(sep2_pki, default=export_limit(3000)) as u:
            async with gateway_rig(sep2_pki, db, utility=u) as a:
                now = int(a.server_now())
                mrid = u.state.add_control(
                    u.program, start=now + 1, duration=3600, base=export_limit(1000)
                )
                await a.until(lambda: a.codes(mrid) == [1, 2], "1 and 2")
                await a.until(lambda: _export_limit(a) == 1000, "the control in force")
                u.state.cancel(mrid)
                await a.until(lambda: a.codes(mrid) == [1, 2, 6], "6 after the cancel")
                await a.until(lambda: _export_limit(a) == 3000, "the default (30 %)")
                await a.until(lambda: bool(_der_settings(a)), "DERSettings PUT")
                before = _der_settings(a)[-1]
                u.state.cut()
                await a.until(
                    lambda: any(isinstance(i, NorthLinkLost) for i in a.inputs), "comms lost"
                )
                assert _export_limit(a) == 3000
            # Power cycle while the server is unreachable.
            async with gateway_rig(sep2_pki, db, utility=u, seed=7) as b:
                await b.until(lambda: b.site.runner.cycles >= 3, "a few control cycles")
                assert _export_limit(b) == 3000  # from the store, not from the server
                await b.until(
                    lambda: any(isinstance(i, NorthLinkLost) for i in b.inputs), "comms lost"
                )
                restored = u.state.clock()
                u.state.restore()
                await b.until(
                    lambda: any(isinstance(i, NorthLinkRestored) for i in b.inputs),
                    "comms restored",
                    10,
                )
                await b.until(lambda: bool(_der_settings(b, restored)), "DERSettings again")
                after = _der_settings(b, restored)[-1]
                assert replace(after, updatedTime=0) == replace(before, updatedTime=0)
                assert _export_limit(b) == 3000
                await asyncio.sleep(1.0)
                assert b.codes(mrid) == [1, 2, 6]  # nothing answered twice

    run(body)


def test_restart_mid_event_keeps_the_randomised_start_and_sends_no_duplicate_response(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    db = tmp_path / "gw.db"
    # The two engines' RNGs would draw different offsets for the same bound: a restart that
    # drew again could not go unnoticed.
    import random

    assert random.Random(1).randint(0, 60) != random.Random(2).randint(0, 60)

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            now = int(u.state.now())
            # Effective start in [now - 58, now + 2]: running, or about to, whatever is drawn.
            mrid = u.state.add_control(
                u.program,
                start=now - 58,
                duration=600,
                base=export_limit(1400),
                randomize_start=60,
            )
            async with gateway_rig(sep2_pki, db, utility=u, seed=1) as a:
                await a.until(lambda: a.codes(mrid) == [1, 2], "1 and 2", 10)
                first = a.site.engine.schedule.get(mrid)  # type: ignore[arg-type]
                assert first is not None
                await asyncio.sleep(0.5)  # the outbox settles the last acknowledgement
            async with gateway_rig(sep2_pki, db, utility=u, seed=2) as b:
                await b.until(lambda: b.gateway.client.session.discovery is not None, "a walk")
                await b.until(lambda: _export_limit(b) == 1400, "the event still in force")
                again = b.site.engine.schedule.get(mrid)  # type: ignore[arg-type]
                assert again is not None
                assert again.start_offset == first.start_offset
                assert again.effective_start == first.effective_start
                u.state.cancel(mrid)
                await b.until(lambda: b.codes(mrid) == [1, 2, 6], "6 after the cancel")
                await asyncio.sleep(1.5)
                sent = [(resp.subject, resp.status) for _, resp in u.recorder.responses()]
                assert len(sent) == len(set(sent)), sent
                assert b.codes(mrid) == [1, 2, 6]

    run(body)


# --- CORE-005: server time ----------------------------------------------------------------------


def test_CORE_005_the_client_keeps_server_time_and_stamps_everything_with_it(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.gateway.client.session.discovery is not None, "a walk")
            offset = r.http.time.now() - time.time()
            assert abs(offset - SERVER_OFFSET_S) < 2.0, offset
            assert r.http.time.clock.synced
            assert r.http.time.clock.quality == r.state.time_quality
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 2, duration=2, base=export_limit(2200)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3 on server time")
            _, started = r.recorder.responses_for(mrid)[1]
            assert started is not None
            assert started >= now + 2  # started on server time, not early or 5 h late
            await r.until(lambda: len(r.state.readings(r.lfdi)) >= 2, "readings")
            # Every time the client wrote is within a minute of the server's clock.
            stamps: list[tuple[str, int]] = []
            for x in r.recorder.requests():
                if x.method not in ("PUT", "POST") or not x.body:
                    continue
                written = _times_written(codec.decode(x.body))
                for stamp in written:
                    assert abs(stamp - x.at) < 60, (x.path, stamp, x.at)
                stamps.extend((x.path, stamp) for stamp in written)
            kinds = {path.rsplit("/", 1)[-1] for path, _ in stamps}
            assert {"rsp", "ders", "derg"} <= kinds, kinds
            assert any(p.startswith("/mup") for p, _ in stamps)

    run(body)


def _times_written(doc: object) -> list[int]:
    """The TimeType values the client put in a body it sent."""
    match doc:
        case Response():
            return [doc.createdDateTime or 0]
        case DERStatus():
            return [doc.readingTime]
        case DERSettings():
            return [doc.updatedTime]
        case MirrorUsagePoint() | MirrorMeterReadingList():
            return [
                m.Reading.timePeriod.start
                for m in doc.MirrorMeterReading
                if m.Reading is not None and m.Reading.timePeriod is not None
            ]
        case _:
            return []


def test_ERR_001_a_redirected_device_capability_is_followed(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """The configured DeviceCapability URL answers 307 (and a moved one 301): the client
    follows to the resource and walks on, resolving the server's hrefs against it."""

    async def body() -> None:
        async with utility_server(sep2_pki, register_in_band=False, default=None) as u:
            u.state.redirect("/old/dcap", "/dcap")
            u.state.redirect("/older/dcap", "/old/dcap", status=301)
            gw = sep2_pki.device("gateway")
            context = tls.client_context(gw.cert, gw.key, gw.chain, sep2_pki.serca)
            async with Http(u.server.url("/older/dcap"), context) as http:
                found = await http.drive(walk.discover(http.dcap_url, lfdi=gw.lfdi, pin=PIN))
            assert found.end_device.lFDI == gw.lfdi
            assert [x.status for x in u.recorder.requests("GET", "/old")] == [301, 307]
            assert u.recorder.requests("GET", path="/dcap", status=200)

    run(body)
