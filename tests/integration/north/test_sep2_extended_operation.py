"""CSIP-AUS ALL-25-EXT (extended operation, 72 h) in seconds: the real stack on a virtual clock.

What runs is what ``gateway run`` composes, over real sockets: the simulated utility
(``UtilityServer``, mutual TLS on loopback; its resource builders write the XML the gateway's
codec parses), the gateway's ``Http`` + ``EndDeviceClient`` (its own poll loop, the sans-I/O
walk and ``Session``), ``Sep2Gateway`` (response outbox in a real SQLite file, ``drain_once``)
and the engine with its schedule, driving the simulated home over Modbus TCP (``ModbusSite``).
Only time is virtual, and nothing of ``src/`` is replaced:

* the utility's clock is injected (``UtilityState(clock=...)``), 5 h ahead of the "OS" clock as
  in ``sep2_rig``, so anything scheduled on the local clock instead of server time fails;
* the client's clock is its module's ``time`` (``monotonic`` for polls and back-off, ``time``
  before the first Time resource; the one clock of the stack that is not injected), swapped
  for :class:`VirtualTime` for the run (``_virtual_client_time``); the engine and the south
  side run on the client's server time (``http.time.now``), as in ``gateway run``; the home's
  physics clock (``SimClock``) is stepped by the same amounts;
* the test steps virtual time to the next instant anything is due (a poll or post the
  client's session has scheduled, a control's start or end, the procedure's next batch), wakes
  the client's real loop (``poke``) and waits until its session has nothing due, then runs one
  control cycle (``Runner.cycle``) and one outbox pass (``Sep2Gateway.drain_once``): the three
  tasks of ``Sep2Gateway.run``, in that order, without their real-time timers. (One cycle
  runs before the client starts, as the control loop's first cycle would: the first post has
  a snapshot to report.) The test reads two private attributes: ``client._busy`` (is a task
  running) and ``session._offered`` (what the session remembers).

Not driven: ``Sep2Gateway.run``'s own timers (the 0.5 s drain period, the control loop's
period, the south keep-alive watchdog), which run on the event loop's real clock; the home sees
a control cycle only at the steps, not every second (the DER follow the limits, the test checks
the engine's decisions, not the physics between steps); notifications (the procedure polls).

The procedure (``cactus_test_definitions`` 1.18.2 ``ALL-25-EXT.yaml``): every rate 3600 s
(DeviceCapability, EndDeviceList, FSA, DERProgramList, DER, MirrorUsagePoint post); a program of
primacy 0 whose default is export 0 W, import 0 W, ``setGradW`` 27; at the first walk, four
back-to-back 6 h controls from now (export and import limits at 0.3, 1.2, 0.8, 0.1 of the
site's maximum); 24 h 5 min later four more (0.4, 1.5, 0.6, 0.2), starting when created, so
the client sees them at its next poll; 24 h 5 min later the last four (0.5, 1.0, 0.3, 0.8).
Criteria: every control answered 1, 2 and 3; at least 70 site active-power readings.

``make soak`` runs the same procedure for ``SEP2_SOAK_DAYS`` (default 30) virtual days with the
server tidying its list, to show that nothing grows with the length of the run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sep2_rig import PIN, fast_site

from gateway.core.engine import PRUNE_EVERY_S
from gateway.core.site import SiteConfig
from gateway.demo.modbus_site import ModbusSite
from gateway.north.sep2 import client as client_module
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import Sep2Gateway
from gateway.north.sep2.client import Backoff, Http, Identity
from gateway.north.sep2.identity import sfdi_from_lfdi
from gateway.north.sep2.metering import FlowDirection, Uom
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.telemetry import SiteRatings
from gateway.sim.clock import DEFAULT_START
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.utility import paths as upaths
from gateway.store.sqlite import SqliteStore

SERVER_OFFSET_S = 5 * 3600  # the utility's clock is 5 h ahead of the gateway's "OS" clock
RATE_S = 3600  # every pollRate and the postRate of the procedure
WINDOW_S = 6 * 3600  # each control's duration
BATCH_EVERY_S = 86700  # "24 hours, 5 minutes (to ensure we don't supersede anything)"
# Export and import limits, as fractions of the site's maximum, of the procedure's 3 batches.
BATCHES = ((0.3, 1.2, 0.8, 0.1), (0.4, 1.5, 0.6, 0.2), (0.5, 1.0, 0.3, 0.8))
SET_GRAD_W = 27  # the default's ramp rate (hundredths of % per second)
SETTLE_TIMEOUT_S = 10.0  # real seconds a step may take before the test says the client hung
WALL_START = int(DEFAULT_START)  # the gateway's "OS" wall clock at the start


class VirtualTime:
    """The client module's ``time``: ``monotonic`` and ``time`` on a clock the test steps.

    ``server`` is the utility's clock (the master); the gateway's wall clock is
    ``SERVER_OFFSET_S`` behind it, and its monotonic clock starts at 1000 s.
    """

    def __init__(self, server: int) -> None:
        self.server = float(server)
        self._mono_minus_server = 1000.0 - server

    def monotonic(self) -> float:
        return self.server + self._mono_minus_server

    def time(self) -> float:
        return self.server - SERVER_OFFSET_S

    def server_of(self, monotonic: float) -> float:
        return monotonic - self._mono_minus_server


@dataclass(frozen=True)
class Planned:
    mrid: str
    tag: str
    created: int  # server time the utility created it
    start: int
    export_w: float
    import_w: float

    @property
    def end(self) -> int:
        return self.start + WINDOW_S


@dataclass(frozen=True)
class Sizes:
    """What the gateway holds after one step, and what the server lists."""

    at: int  # server time
    records: int  # the engine's schedule
    persisted: int  # events in the store
    offered: int  # controls the client's session remembers
    pending: int  # outbox items not yet acknowledged
    outbox_rows: int  # outbox rows in SQLite, acknowledged or not
    listed: int  # controls the utility lists


@dataclass
class Run:
    """What one extended run saw: the utility's record and the gateway's sizes at each step."""

    t0: int
    until: int
    recorder: Recorder
    state: UtilityState
    lfdi: str
    controls: list[Planned] = field(default_factory=list)
    steps: int = 0
    in_force_errors: list[str] = field(default_factory=list)
    sizes: list[Sizes] = field(default_factory=list)  # after each step
    client_errors: list[str] = field(default_factory=list)
    violations: list[object] = field(default_factory=list)
    seconds: float = 0.0
    _seen: dict[str, int] = field(default_factory=dict)

    def program_list_reads(self, since: int) -> list[int]:
        """Server times of the gateway's GETs of the program's DERControlList after ``since``."""
        path = upaths.derc_list("1")
        return [int(x.at) for x in self.recorder.requests("GET", path=path, since=since)]

    def seen_at(self, c: Planned) -> int | None:
        """When the gateway first read a list holding ``c`` (a GET at or after its creation)."""
        if c.mrid not in self._seen:
            reads = self.program_list_reads(c.created)
            if not reads:
                return None
            self._seen[c.mrid] = reads[0]  # the first read after creation never changes
        return self._seen[c.mrid]


def _maxima(config: SiteConfig) -> tuple[int, int]:
    """The procedure's maxExportW / maxImportW: the site's DER rating and charging rate."""
    ratings = SiteRatings.of_site(config)
    return round(ratings.rtg_max_w), round(ratings.max_charge_w)


def _limits(export_w: float, import_w: float) -> DERControlBase:
    return DERControlBase(
        opModExpLimW=ActivePower.from_watts(export_w),
        opModImpLimW=ActivePower.from_watts(import_w),
    )


@asynccontextmanager
async def _virtual_client_time(vt: VirtualTime) -> AsyncIterator[None]:
    """Swap the client module's ``time`` for ``vt`` (what ``monkeypatch`` does, but scoped to
    the run, so that nothing outside it sees virtual time)."""
    real = client_module.time
    client_module.time = vt  # type: ignore[assignment]
    try:
        yield
    finally:
        client_module.time = real


async def extended_run(
    pki: PkiFiles,
    db: Path,
    *,
    days: int = 3,
    retention_s: float | None = None,
    tidy_after_s: int | None = None,
) -> Run:
    """ALL-25-EXT for ``days`` batches (the procedure: 3), then until the last control ended
    plus one post period. ``retention_s``: the engine's ``event_retention_s`` (None: the
    site's); ``tidy_after_s``: the utility deletes a control that long after its end (None:
    it lists every control for ever, as the procedure's server does over 72 h)."""
    wall_t0 = time.monotonic()
    t0 = WALL_START + SERVER_OFFSET_S
    vt = VirtualTime(t0)
    state = UtilityState(clock=lambda: vt.server)
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, RATE_S)  # type: ignore[arg-type]
    gw = pki.device("gateway")
    state.add_end_device(gw.lfdi, pin=PIN, post_rate=RATE_S)
    config = fast_site()
    if retention_s is not None:
        config = replace(config, event_retention_s=retention_s)
    max_export, max_import = _maxima(config)
    default = DefaultDERControl("0", _limits(0, 0), setGradW=SET_GRAD_W)
    program = state.add_program("ALL-25-EXT", primacy=0, default=default)
    recorder = Recorder()
    last_end = t0 + (days - 1) * BATCH_EVERY_S + 4 * WINDOW_S
    until = last_end + RATE_S
    run = Run(t0, until, recorder, state, gw.lfdi)

    def add_batch(day: int) -> None:
        now = int(vt.server)
        factors = BATCHES[day % len(BATCHES)]
        for i, f in enumerate(factors):
            start = now + i * WINDOW_S
            exp, imp = round(max_export * f), round(max_import * f)
            mrid = state.add_control(
                program, start=start, duration=WINDOW_S, base=_limits(exp, imp)
            )
            tag = f"DERC{4 * day + i + 1}"
            run.controls.append(Planned(mrid, tag, now, start, exp, imp))

    def expected(at: int) -> tuple[float, float]:
        """What must be in force at ``at``: the control whose window holds it, once the
        gateway has read a list holding it; the default (0 W, 0 W) otherwise."""
        for c in run.controls:
            seen = run.seen_at(c)
            if c.start <= at < c.end and seen is not None and seen <= at:
                return c.export_w, c.import_w
        return 0.0, 0.0

    # Instants something happens apart from the client's own schedule: the batches, every
    # control's start, middle and end, and a moment inside each 5 min gap between batches.
    batch_at = [t0 + d * BATCH_EVERY_S for d in range(days)]
    fixed: set[int] = set(batch_at)
    for b in batch_at:
        for i in range(4):
            s = b + i * WINDOW_S
            fixed |= {s, s + WINDOW_S // 2, s + WINDOW_S}
        fixed.add(b + 4 * WINDOW_S + 150)
    fixed.add(until)

    s = pki.server
    server = UtilityServer(
        state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=recorder
    )
    context = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca)
    async with _virtual_client_time(vt), server:
        http = Http(server.url("/dcap"), context, backoff=Backoff(0.2, 2.0))
        with SqliteStore(db) as store, sqlite3.connect(db) as peek:
            async with (
                http,
                ModbusSite(
                    store, config, start=DEFAULT_START, now=http.time.now, ack_reports=False
                ) as home,
            ):
                identity = Identity(gw.lfdi, sfdi_from_lfdi(gw.lfdi), pin=PIN)
                ratings = SiteRatings.of_site(config)
                gateway = Sep2Gateway(home.runner.port, store, http, identity, ratings=ratings)
                client, session, engine = gateway.client, gateway.client.session, home.engine
                assert await client.sync_time(), client.errors
                add_batch(0)  # "GET-DERC-DAY-1": created as the gateway first walks
                # The control loop's first cycle (it starts with the client in ``run``): the
                # first post has a snapshot of the site to report.
                await home.runner.cycle()
                stop = asyncio.Event()
                loop_task = asyncio.create_task(client.run(stop))
                loop = asyncio.get_running_loop()

                async def settle() -> None:
                    """Wake the client's loop and wait until its session has nothing due."""
                    client.poke()
                    deadline = loop.time() + SETTLE_TIMEOUT_S
                    while True:
                        await asyncio.sleep(0)
                        nxt = session.next_due()
                        busy = client._busy.locked()
                        if nxt is not None and nxt > vt.monotonic() and not busy:
                            return
                        if loop_task.done():
                            loop_task.result()
                        if loop.time() > deadline:
                            raise AssertionError(
                                f"the client did not settle at {vt.server}: {client.errors}"
                            )
                        await asyncio.sleep(0.001)

                try:
                    while True:
                        await settle()
                        await home.runner.cycle()
                        await gateway.drain_once()
                        at = int(vt.server)
                        run.steps += 1
                        got = engine.resolved.controls
                        want = expected(at)
                        if (got.export_limit_w, got.import_limit_w) != want:
                            run.in_force_errors.append(
                                f"{at - t0} s: in force export {got.export_limit_w}, import "
                                f"{got.import_limit_w}; want {want}"
                            )
                        (rows,) = peek.execute("SELECT count(*) FROM outbox").fetchone()
                        run.sizes.append(
                            Sizes(
                                at,
                                records=len(engine.schedule.records()),
                                persisted=len(store.events()),
                                offered=len(session._offered),
                                pending=len(store.pending()),
                                outbox_rows=rows,
                                listed=len(program.controls),
                            )
                        )
                        if at >= until:
                            break
                        # The next instant: the procedure's, or the client's next poll or post.
                        due = session.next_due()
                        candidates = [t for t in fixed if t > at]
                        if due is not None:
                            candidates.append(int(vt.server_of(due) + 0.5))
                        nxt = min(candidates)
                        if nxt in batch_at and nxt > t0:
                            vt.server = float(nxt)
                            add_batch(batch_at.index(nxt))
                        if tidy_after_s is not None:
                            for c in list(program.controls):
                                if c.start + c.duration + tidy_after_s <= nxt:
                                    state.delete_control(c.mrid)
                        home.clock.advance(nxt - vt.server)
                        vt.server = float(nxt)
                finally:
                    stop.set()
                    client.poke()
                    await asyncio.wait_for(loop_task, 10)
                run.client_errors = list(client.errors)
                run.violations = list(home.home.violations)
    run.seconds = time.monotonic() - wall_t0
    return run


def _site_reading_times(run: Run) -> list[int]:
    out = []
    for got in run.state.readings(run.lfdi):
        rt = got.reading.ReadingType
        if rt is None or rt.uom != Uom.W or rt.flowDirection != FlowDirection.FORWARD:
            continue
        period = got.reading.Reading.timePeriod if got.reading.Reading else None
        assert period is not None
        out.append(period.start)
    return out


def _check_procedure(run: Run) -> None:
    """The criteria of ALL-25-EXT and what "extended operation" implies, on one run."""
    assert run.violations == [], run.violations
    assert run.in_force_errors == [], run.in_force_errors[:10]
    # Every control: exactly 1, 2, 3, once each, in that order, at their server times.
    mrids = {c.mrid for c in run.controls}
    for c in run.controls:
        codes = run.recorder.responses_for(c.mrid)
        assert [code for code, _ in codes] == [1, 2, 3], (c.tag, codes)
        (_, received), (_, started), (_, completed) = codes
        assert received is not None
        assert started is not None
        assert completed is not None
        seen = run.seen_at(c)
        assert seen is not None, f"{c.tag}: never read by the gateway"
        assert received == seen, (c.tag, received, seen)  # at the poll that found it
        assert received <= started <= completed, (c.tag, codes)
        # Started at its start, or at once when first seen after its start (DERC5, DERC9).
        assert started == max(c.start, seen), (c.tag, started, c.start, seen)
        assert completed == c.end, (c.tag, completed, c.end)
    # Nothing else was answered (no 6, 7, 252-254: the controls never overlap).
    others = [(r.subject, r.status) for _, r in run.recorder.responses() if r.subject not in mrids]
    assert others == []
    assert len(run.recorder.responses()) == 3 * len(run.controls)
    # The site's readings: one per postRate, in time order, over the whole run. CSIP-AUS
    # readings are averages over whole hours aligned on the clock: the first is the hour the
    # run started in (the post at t0 has no whole hour sampled yet), the last the last whole
    # hour before the last post, which came within an hour of the end.
    times = _site_reading_times(run)
    assert times == sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == RATE_S for g in gaps), sorted(set(gaps))
    assert times[0] == run.t0 // RATE_S * RATE_S
    assert run.until - 3 * RATE_S < times[-1] <= run.until - RATE_S
    assert len(times) >= (run.until - run.t0) // RATE_S - 1, len(times)
    # Polls at their rates: the DERControlList once per hour (the walk reads it too).
    reads = run.program_list_reads(run.t0)
    assert len(reads) <= 2 * ((run.until - run.t0) // RATE_S + 1), len(reads)
    assert run.client_errors == [], run.client_errors


def _check_memory(run: Run, *, retention_s: float, tidy_after_s: int | None) -> None:
    """At every step, the gateway remembers exactly the controls it must (none twice), and
    forgets the others within one prune period (``PRUNE_EVERY_S``) and one step:

    * the engine's schedule (and its persisted copy) holds every control it has read whose
      end is less than ``retention_s`` ago, and none that ended over ``retention_s`` plus an
      hour plus a step ago;
    * the session holds every control it has read that the server still lists, and none the
      server stopped listing over a poll period ago;
    * every response owed has been delivered by the end of the step (the outbox is empty).
    """
    slack = PRUNE_EVERY_S + RATE_S
    for s in run.sizes:
        seen = [c for c in run.controls if (run.seen_at(c) or s.at + 1) <= s.at]
        kept = sum(1 for c in seen if c.end + retention_s > s.at)
        may_keep = sum(1 for c in seen if c.end + retention_s + slack >= s.at)
        when = f"at {s.at - run.t0} s"
        assert kept <= s.records <= may_keep, (when, kept, s.records, may_keep)
        assert s.persisted == s.records, (when, s.persisted, s.records)
        if tidy_after_s is None:
            assert s.offered == len(seen) <= s.listed, (when, s.offered, len(seen), s.listed)
        else:
            listed = sum(1 for c in seen if c.end + tidy_after_s > s.at)
            may_list = sum(1 for c in seen if c.end + tidy_after_s + RATE_S >= s.at)
            assert listed <= s.offered <= may_list, (when, listed, s.offered, may_list)
        assert s.pending == 0, (when, s.pending)


def test_ALL_25_EXT_72_h_of_daily_controls_answer_1_2_3_with_hourly_site_readings(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    run = asyncio.run(extended_run(sep2_pki, tmp_path / "gw.db"))
    assert [c.tag for c in run.controls] == [f"DERC{i}" for i in range(1, 13)]
    assert run.until - run.t0 >= 72 * 3600
    _check_procedure(run)
    assert len(_site_reading_times(run)) >= 70  # the criterion: "at least 70 site readings"
    _check_memory(run, retention_s=fast_site().event_retention_s, tidy_after_s=None)
    last = run.sizes[-1]
    assert last.records == last.offered == len(run.controls)  # 72 h: nothing is forgotten yet
    assert last.outbox_rows == 3 * len(run.controls)  # one row per response sent
    print(f"ALL-25-EXT: {run.steps} steps, {run.seconds:.2f} s")


def _bound(retention_s: float) -> int:
    """How many controls the engine may hold at once, whatever the run's length: those
    that ended within the retention (plus the prune slack), the one running and the rest of
    its batch."""
    return int((retention_s + PRUNE_EVERY_S + RATE_S) // WINDOW_S) + 5


SHORT_RETENTION_S = 6 * 3600  # the engine forgets after 6 h instead of 7 days
SHORT_TIDY_S = 3 * 3600  # and the utility stops listing a control 3 h after its end


@pytest.fixture(scope="module")
def short_memory_run(sep2_pki: PkiFiles, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two days of the procedure with a 6 h retention: long enough, relative to what must be
    remembered, to see whether anything grows with the length of the run."""
    db = tmp_path_factory.mktemp("all-25-ext") / "gw.db"
    return asyncio.run(
        extended_run(sep2_pki, db, days=2, retention_s=SHORT_RETENTION_S, tidy_after_s=SHORT_TIDY_S)
    )


def test_ALL_25_EXT_what_the_gateway_remembers_stays_flat_over_the_run(
    short_memory_run: Run,
) -> None:
    run = short_memory_run
    _check_procedure(run)
    _check_memory(run, retention_s=SHORT_RETENTION_S, tidy_after_s=SHORT_TIDY_S)
    records = [s.records for s in run.sizes]
    assert max(records) <= _bound(SHORT_RETENTION_S) < len(run.controls), records
    # Forgetting happened (not just a short run): the early controls are gone at the end.
    assert run.sizes[-1].records < len(run.controls) // 2, run.sizes[-1]
    assert max(s.offered for s in run.sizes) <= _bound(SHORT_TIDY_S)


def test_ALL_25_EXT_the_outbox_forgets_what_the_engine_forgot(short_memory_run: Run) -> None:
    run = short_memory_run
    last = run.sizes[-1]
    assert last.pending == 0
    # Every row left answers an event the engine still remembers (3 responses each at most).
    assert last.outbox_rows <= 3 * last.records, (last.outbox_rows, last.records)


SOAK_DAYS = os.environ.get("SEP2_SOAK_DAYS")


@pytest.mark.skipif(not SOAK_DAYS, reason="set SEP2_SOAK_DAYS (make soak) for the long run")
def test_ALL_25_EXT_soak_many_days_of_daily_controls_keep_everything_bounded(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """``make soak``: the procedure for SEP2_SOAK_DAYS virtual days (a new batch of 4 controls
    every 24 h 5 min), the utility tidying its list a day after each control's end, and the
    site's own 7-day retention."""
    days = int(SOAK_DAYS or "30")
    retention = fast_site().event_retention_s
    run = asyncio.run(extended_run(sep2_pki, tmp_path / "gw.db", days=days, tidy_after_s=86400))
    assert len(run.controls) == 4 * days
    _check_procedure(run)
    _check_memory(run, retention_s=retention, tidy_after_s=86400)
    assert max(s.records for s in run.sizes) <= _bound(retention)
    assert max(s.offered for s in run.sizes) <= _bound(86400)
    last = run.sizes[-1]
    print(
        f"ALL-25-EXT soak: {days} days, {run.steps} steps, {run.seconds:.1f} s; at the end "
        f"{last.records} events remembered, {last.outbox_rows} outbox rows"
    )
