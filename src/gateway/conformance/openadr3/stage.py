"""One OpenADR 3 case on the stage: the scripted VTN, the simulated home, the VEN under test.

:func:`play` serves the simulated OpenADR 3 VTN (``gateway.sim.vtn3``, HTTPS with a fresh test
CA) and the V2H suite's home on Modbus, writes the case's site file (the home plus an
``[openadr3]`` link to the VTN), starts the target with it (and, for a command, the VTN's URL,
CA and credentials in ``OPENADR3_*`` environment variables), samples the home every
:data:`SAMPLE_S` and runs the case's script. What the script judges comes from the wire only:
the requests the VTN recorded (method, path, query, body, status, time), the notifications it
delivered, and what the simulated devices did.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.conformance import v2h
from gateway.conformance.cases import Case, Criterion, Outcome, Result, judged
from gateway.conformance.target import InProcess, Target, environment
from gateway.core import errors
from gateway.demo.site_home import free_ports, home_for
from gateway.runtime.run_config import load
from gateway.sim.modbus import SimulatedHome
from gateway.sim.vtn2.pki import Oadr2Pki, init_pki
from gateway.sim.vtn3 import Vtn3Server, VtnState
from gateway.sim.vtn3.state import Exchange

SAMPLE_S = 0.1
CONTACT_S = 30.0  # at most this long for the VEN's first poll of its program's events
CLIENT_ID = "ven-under-test"
SECRET = "conformance-secret"  # noqa: S105 (a test VTN's credential, printed for the target)
VEN_NAME = "ven-under-test"
PROGRAM = "feeder-7"
POLL_S = 1.0  # the poll interval the VEN is given (site file, $OPENADR3_POLL_S)
REPORT_S = 1.0  # the report period it is given
#: From a change at the VTN to its effect at the meter: a poll, then a control cycle or two.
PICKUP_S = POLL_S + 3.0
TOKEN_PATHS = ("/auth/server", "/oauth/token", "/auth/token")
#: The environment a command target gets (and the suite prints) for each case.
ENV_KEYS = (
    "VTN", "CA", "CLIENT_ID", "CLIENT_SECRET", "VEN_NAME", "PROGRAM", "POLL_S", "REPORT_PERIOD_S",
)  # fmt: skip

LINK = """
[openadr3]
vtn = "{vtn}"
client_id = "{client_id}"
client_secret = "{secret}"
ven_name = "{ven}"
ca_file = "{ca}"
poll_s = {poll_s}
report_period_s = {report_s}

[openadr3.webhook]
host = "127.0.0.1"
port = 0
cert_file = "{cert}"
key_file = "{key}"

[[openadr3.program]]
name = "{program}"
"""


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # wall clock (the VTN's records use it too)
    grid_up: bool
    relay: str  # open, closed, moving, fault
    charger: str  # charging, discharging, forming, stopped, ...
    charger_w: float  # + discharging
    net_w: float  # at the meter, import positive
    pv_w: float
    pv_available_w: float
    violations: int

    @property
    def export_w(self) -> float:
        return -self.net_w

    def row(self, t0: float) -> dict[str, Any]:
        return {
            "t": round(self.at - t0, 2),
            "grid": "up" if self.grid_up else "down",
            "relay": self.relay,
            "charger": self.charger,
            "charger_w": round(self.charger_w),
            "net_w": round(self.net_w),
            "pv_w": round(self.pv_w),
            "pv_available_w": round(self.pv_available_w),
            "violations": self.violations,
        }


def _sample(home: SimulatedHome) -> Sample:
    home.sync()
    p = home.physics
    return Sample(
        at=time.time(),
        grid_up=p.grid.up,
        relay=p.relay_category(),
        charger=p.charger_category(),
        charger_w=p.charger.power_w if p.charger is not None else 0.0,
        net_w=p.meter().net_w,
        pv_w=p.pv.power_w,
        pv_available_w=p.pv.available(p.now),
        violations=len(p.violations),
    )


@dataclass(frozen=True, slots=True)
class Setup:
    """How a case sets the stage up."""

    start: float = v2h.NOON  # the simulated home's clock
    load_w: float | None = 500.0  # a constant house load (None: the daily curve)
    secret: str = SECRET  # the one the VEN is given (the VTN knows SECRET)
    programs: tuple[str, ...] = ()  # more programs at the VTN, before ours
    seconds: float = 60.0  # the target's run, at most


@dataclass
class Stage:
    """A running case: the VTN's state (its records), the home, the samples."""

    state: VtnState
    home: SimulatedHome
    pki: Oadr2Pki
    program_id: str
    port: int
    server: Vtn3Server | None
    t0: float = field(default_factory=time.time)
    samples: list[Sample] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    ready_at: float | None = None  # the VEN's first answered poll of its program's events

    def note(self, what: str) -> float:
        """Log what the suite did; returns when (wall clock)."""
        now = time.time()
        self.log.append({"t": round(now - self.t0, 2), "suite": what})
        return now

    async def until(self, check: Callable[[], bool], timeout: float) -> float | None:
        """The wall time ``check`` first held, or None within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return time.time()
            await asyncio.sleep(SAMPLE_S / 2)
        return time.time() if check() else None

    def api(self) -> list[Exchange]:
        return [r for r in self.state.requests if r.path not in TOKEN_PATHS]

    def token_requests(self) -> list[Exchange]:
        return [r for r in self.state.requests if r.method == "POST" and r.path in TOKEN_PATHS]

    def polls(self, program_id: str | None = None) -> list[Exchange]:
        """Answered searches of events (first pages) of ``program_id`` (or of all programs:
        a VEN that asks for every event and sorts them out itself)."""
        pid = program_id or self.program_id
        return [
            r
            for r in self.state.requests
            if r.method == "GET"
            and r.path == "/events"
            and r.status == 200
            and r.query.get("programID") in (None, pid)
            and r.query.get("skip", "0") == "0"
        ]

    def between(self, since: float, until: float | None = None) -> list[Sample]:
        end = until if until is not None else float("inf")
        return [s for s in self.samples if since <= s.at <= end]

    def first(self, since: float, ok: Callable[[Sample], bool]) -> Sample | None:
        return next((s for s in self.samples if s.at >= since and ok(s)), None)

    def t(self, at: float | None) -> str:
        return "never" if at is None else f"{at - self.t0:.1f} s"

    def add_event(
        self,
        intervals: list[dict[str, list[Any]]],
        *,
        duration_s: float = 120.0,
        program_id: str | None = None,
        **kw: Any,
    ) -> str:
        return self.state.add_event(
            program_id or self.program_id,
            intervals=intervals,
            start=time.time() - 1.0,
            duration_s=duration_s,
            **kw,
        )

    async def vtn_down(self) -> None:
        if self.server is not None:
            await self.server.__aexit__(None, None, None)
            self.server = None

    async def vtn_up(self) -> None:
        """The VTN again, with its store, on its port."""
        server = _server(self.state, self.pki, self.port)
        await server.__aenter__()
        self.server = server

    def evidence(self, output: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [*self.log, *(s.row(self.t0) for s in self.samples)]
        rows += [
            {
                "t": round(r.at - self.t0, 2),
                "request": f"{r.method} {r.path}",
                "query": r.query,
                "status": r.status,
                "body": r.body.decode("utf-8", "replace")[:2000],
            }
            for r in self.state.requests
        ]
        rows += [
            {
                "t": round(d.at - self.t0, 2),
                "notification": f"{d.object_type} {d.operation} {d.event_id}",
                "to": d.url,
                "status": d.status,
            }
            for d in self.state.deliveries
        ]
        rows.sort(key=lambda r: float(r.get("t", 0.0)))
        return rows + [{"target": line} for line in output]


def _server(state: VtnState, pki: Oadr2Pki, port: int) -> Vtn3Server:
    return Vtn3Server(state, port=port, cert=pki.vtn.cert, key=pki.vtn.key, notify_ca=pki.ca)


def write_site(folder: Path, vtn: str, pki: Oadr2Pki, secret: str) -> Path:
    """The in-process VEN's site file: the V2H suite's home (relay, V2H charger 7.4 kW, PV 5 kW)
    with an ``[openadr3]`` link to the VTN, its webhook served over TLS."""
    path = v2h.write_site(folder, v2h.Script(duration_s=0.0))  # ports, store, 10 kW export
    link = LINK.format(
        vtn=vtn,
        client_id=CLIENT_ID,
        secret=secret,
        ven=VEN_NAME,
        ca=pki.ca.as_posix(),
        poll_s=POLL_S,
        report_s=REPORT_S,
        cert=pki.vtn.cert.as_posix(),
        key=pki.vtn.key.as_posix(),
        program=PROGRAM,
    )
    path.write_text(path.read_text(encoding="utf-8") + link, encoding="utf-8")
    return path


def target_environment(vtn: str, pki: Oadr2Pki, secret: str) -> dict[str, str]:
    values = (vtn, pki.ca, CLIENT_ID, secret, VEN_NAME, PROGRAM, POLL_S, REPORT_S)
    return {f"OPENADR3_{k}": str(v) for k, v in zip(ENV_KEYS, values, strict=True)}


Script = Callable[[Stage], Awaitable[list[Criterion]]]


class NotRunError(errors.GatewayError):
    """Raised by a script that finds, from the wire, that its flow does not apply to the
    target (a VEN that makes no subscription): the case is NOT RUN with the reason."""


async def play(case: Case, target: Target, folder: Path, setup: Setup, script: Script) -> Result:
    """Set the stage up, start ``target``, run ``script`` on it and judge what it returns."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = init_pki(folder / "pki")
    state = VtnState(clients={CLIENT_ID: SECRET})
    for name in setup.programs:
        state.add_program(name)
    pid = state.add_program(PROGRAM)
    (port,) = free_ports(1)
    server = _server(state, pki, port)
    await server.__aenter__()
    site = write_site(folder, server.url, pki, setup.secret)
    home = home_for(load(site), start=setup.start, speed=1.0)
    home.physics.load.constant_w = setup.load_w
    stage = Stage(state, home, pki, pid, port, server)
    criteria: list[Criterion] = []
    output: list[str] = []
    not_run = ""
    try:
        env = target_environment(server.url, pki, setup.secret)
        if not isinstance(target, InProcess):
            print(" ".join(f"{k}={v}" for k, v in env.items()), file=sys.stdout, flush=True)
        async with home:
            sampler = asyncio.create_task(_sampling(stage))
            try:
                with environment(env):
                    await target.start(site, setup.seconds)
                stage.t0 = stage.note("target started")
                try:
                    criteria = await script(stage)
                except NotRunError as e:
                    not_run = str(e)
            finally:
                output = await target.stop()
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        if home.violations:
            seen = "; ".join(home.violations[:3])
            criteria.insert(
                0,
                Criterion(
                    "no interlock violated on the wire", ok=False, expected="none", seen=seen
                ),
            )
    finally:
        await stage.vtn_down()
    if not_run and not criteria:
        evidence = stage.evidence(output)
        return Result(case.case_id, case.title, Outcome.NOT_RUN, [], not_run, 0.0, evidence)
    return judged(case, criteria, time.time() - stage.t0, stage.evidence(output))


async def _sampling(stage: Stage) -> None:
    while True:
        stage.samples.append(_sample(stage.home))
        await asyncio.sleep(SAMPLE_S)


async def ready(stage: Stage) -> Criterion:
    """Until the VEN's first answered poll of its program's events (CONTACT_S at most)."""
    stage.ready_at = await stage.until(lambda: bool(stage.polls()), CONTACT_S)
    return Criterion(
        "the VEN polls its program's events (GET /events)",
        stage.ready_at is not None,
        f"within {CONTACT_S:.0f} s of its start",
        stage.t(stage.ready_at),
    )
