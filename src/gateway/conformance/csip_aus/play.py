"""Playing one CSIP-AUS client procedure: the simulated utility serves the client under test,
the procedure's actions change the server, its events are watched for in what the server
recorded, and its checks judge what the client reported.

A case runs in two phases, as cactus does. Without ``immediate_start`` the init phase comes
first: the ``init_actions`` are played, the client is started, and the precondition checks
must hold (within :data:`INIT_S`); then the ``actions`` are played and the test starts, and only
requests from then on count as events. With ``immediate_start`` both action lists are played
before the client starts. A step whose event fires plays its actions (enable other steps,
remove steps, change the server, finish the test). Steps no other step enables are active
from the start. The test ends at ``finish-test``, when no step is active any more, or at the
case's timeout (its waits or its last control's end at the run's speed, at most
:data:`HORIZON_S`, plus :data:`SLACK_S`); two post periods after it ends, and not before
its last control has ended, the criteria are judged. The client under test is this gateway
in-process (a site file with ``[sep2]`` and a simulated home) or any command, given the server
and its credentials in the environment.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.conformance import v2h
from gateway.conformance.cases import Case, Criterion, Outcome, Result, judged, say
from gateway.conformance.csip_aus import actions, checks, expressions, support
from gateway.conformance.csip_aus.definitions import Procedure
from gateway.conformance.target import InProcess, Target
from gateway.conformance.target import environment as _environment
from gateway.demo.site_home import home_for
from gateway.north.sep2.pki import init_pki
from gateway.north.sep2.xml import CSIPAUS_NS, CSIPAUS_NS_V13
from gateway.runtime.run_config import load
from gateway.sim.utility import Recorder, UtilityServer, UtilityState, paths
from gateway.sim.utility.records import Fault, Program

PIN = 111115  # the PIN the client is configured with (ALL-01's 11111 with its check digit)
NMI = "4123456789"  # the ConnectionPoint id the in-process gateway PUTs
INIT_S = 40.0  # the init phase: at most this long for the preconditions to hold
SLACK_S = 20.0  # a case's timeout: its length at speed (at most HORIZON_S), plus this
HORIZON_S = 40.0
TICK_S = 0.1
DEFAULT_RATE_S = 60  # every pollRate and the postRate before set-comms-rate says otherwise
#: The environment a command target gets (and the suite prints) for each case.
ENV_KEYS = ("SERVER", "CERT", "KEY", "CHAIN", "CA", "PIN", "LFDI")

SEP2 = """
[sep2]
server = "{server}"
cert = "{cert}"
key = "{key}"
chain = "{chain}"
serca = "{serca}"
pin = {pin}
register = true
connection_point = "{nmi}"
pen = 32473
check_hostname = false
"""
#: For a procedure of the subscription classes (S-G, S-L): the gateway listens for the
#: server's notifications and subscribes to what is subscribable (docs/site.md).
NOTIFY = """
[sep2.notify]
listen = "127.0.0.1"
host = "127.0.0.1"
"""
SUBSCRIBING = frozenset({"S-G", "S-L"})


@dataclass
class Step:
    name: str
    event: dict[str, Any]
    actions: list[dict[str, Any]]
    matcher: support.Matcher | None  # request events only


@dataclass
class Stage:
    """One run of a procedure: the server, the steps' state, and what the checks need."""

    state: UtilityState
    recorder: Recorder
    lfdi: str
    speed: float
    steps: tuple[str, ...]
    programs: list[Program] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    program_tags: dict[str, Program] = field(default_factory=dict)
    controls: list[str] = field(default_factory=list)
    fsa_of: dict[str, int] = field(default_factory=dict)
    pow10: int | None = None
    expiring: list[tuple[float, Fault]] = field(default_factory=list)  # (monotonic, fault)
    proceeded: list[str] = field(default_factory=list)  # proceed steps played without anyone
    error: actions.ActionError | None = None  # an action that failed while a request waited
    timed_out: bool = False  # the case's timeout ended the test with steps still active
    post_rate: int | None = None
    fired: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    active: dict[str, tuple[float, int]] = field(default_factory=dict)  # -> (since, exchange)
    finished: bool = False
    fail_message: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0  # exchanges already looked at
    preconditions_held: bool = True
    upto: int | None = None  # see checks.Judge
    started_at: float | None = None  # see checks.Judge
    t0: float = 0.0

    def env(self, this: float | None = None) -> dict[str, float | None]:
        out: dict[str, float | None] = {"now": float(self.state.now()), "this": this}
        try:
            settings = self.state.der_settings(self.lfdi)
            capability = self.state.der_capability(self.lfdi)
        except KeyError:
            settings = capability = None
        for prefix, r in (("setMax", settings), ("rtgMax", capability)):
            for n in ("W", "VA", "Var", "VarNeg", "ChargeRateW", "DischargeRateW", "Wh"):
                out[prefix + n] = checks.number(getattr(r, prefix + n, None))
        out["maxExportW"] = out["setMaxDischargeRateW"] or out["setMaxW"]
        out["maxImportW"] = out["setMaxChargeRateW"] or out["setMaxW"]
        return out

    def enable(self, steps: list[str]) -> None:
        for s in steps:
            if s not in self.active:
                self.active[s] = (time.monotonic(), self.seen)
                self.log.append({"t": self._t(), "enabled": s})

    def remove(self, steps: list[str]) -> None:
        for s in steps:
            self.removed.add(s)
            if self.active.pop(s, None) is not None:
                self.log.append({"t": self._t(), "removed": s})

    def expire(self, fault: Fault, after_s: float) -> None:
        self.expiring.append((time.monotonic() + after_s, fault))

    def lift_expired(self) -> None:
        """Lift the forced response statuses whose duration has passed."""
        now = time.monotonic()
        for entry in [e for e in self.expiring if e[0] <= now]:
            self.expiring.remove(entry)
            if entry[1] in self.state.faults:
                self.state.faults.remove(entry[1])
                self.log.append({"t": self._t(), "lifted": f"forced {entry[1].status}"})

    def finish(self, fail_message: str | None) -> None:
        self.finished = True
        self.fail_message = fail_message
        self.log.append({"t": self._t(), "finished": fail_message or "finish-test"})

    def _t(self) -> float:
        return round(time.monotonic() - self.t0, 2)


def _steps(doc: dict[str, Any]) -> list[Step]:
    out = []
    for name, s in (doc.get("Steps") or {}).items():
        event = s["event"]
        ep = (event.get("parameters") or {}).get("endpoint")
        matcher = support.endpoint(str(ep)) if ep is not None else None
        out.append(Step(str(name), event, list(s.get("actions") or []), matcher))
    return out


def _enabled_by_others(doc: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for s in (doc.get("Steps") or {}).values():
        for a in s.get("actions") or []:
            if a.get("type") == "enable-steps":
                names.update((a.get("parameters") or {}).get("steps") or [])
    return names


def waits_s(doc: dict[str, Any]) -> float:
    """The procedure's waits, summed (its length, in the procedure's seconds)."""
    return float(
        sum(
            (s["event"].get("parameters") or {}).get("duration_seconds", 0)
            for s in (doc.get("Steps") or {}).values()
            if s["event"].get("type") == "wait"
        )
    )


def horizon_s(doc: dict[str, Any]) -> float:
    """How long the procedure lasts, in its own seconds: its waits, or its last control's end
    if that is later (ALL-18 has no waits, but controls minutes ahead)."""
    ends = [waits_s(doc)]
    for s in (doc.get("Steps") or {}).values():
        for a in s.get("actions") or []:
            if a.get("type") == "create-der-control":
                p = a.get("parameters") or {}
                offset = expressions.offset_s(str(p.get("start", "")))
                ends.append(offset + float(p.get("duration_seconds", 0)))
    return max(ends)


def write_site(folder: Path, server: str, pki: Any, *, notify: bool = False) -> Path:
    """The in-process client's site file: the V2H suite's home (relay, V2H charger, PV) with
    a ``[sep2]`` link to the simulated utility (and, with ``notify``, a notification
    listener: the gateway subscribes)."""
    gw = pki.device("gateway")
    text = (
        v2h.site_text(folder)
        + SEP2.format(
            server=server,
            cert=gw.cert.as_posix(),
            key=gw.key.as_posix(),
            chain=gw.chain.as_posix(),
            serca=pki.serca.as_posix(),
            pin=PIN,
            nmi=NMI,
        )
        + (NOTIFY if notify else "")
    )
    path = folder / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Player:
    """Plays ``procedure`` at ``speed`` against a target."""

    def __init__(self, procedure: Procedure, speed: float) -> None:
        self.procedure = procedure
        self.doc = procedure.doc
        self.speed = speed
        self.steps = _steps(self.doc)
        self.pre = self.doc.get("Preconditions") or {}
        self.timeout_s = min(horizon_s(self.doc) / speed, HORIZON_S) + SLACK_S

    async def run(self, case: Case, target: Target, folder: Path) -> Result:
        folder.mkdir(parents=True, exist_ok=True)
        pki = init_pki(folder / "pki", devices=("gateway",))
        state = UtilityState(clock=time.time, registration_pin=PIN)
        for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
            state.set_poll_rate(resource, actions.scaled(DEFAULT_RATE_S, self.speed))
        if "v1.2" not in (self.doc.get("TargetVersions") or ["v1.2"]):
            _speak_v13(state)
        recorder = Recorder()
        lfdi = pki.device("gateway").lfdi
        stage = Stage(state, recorder, lfdi, self.speed, tuple(s.name for s in self.steps))
        stage.post_rate = actions.scaled(DEFAULT_RATE_S, self.speed)
        stage.t0 = time.monotonic()
        s = pki.server
        server = UtilityServer(
            state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=recorder
        )
        criteria: list[Criterion] = []
        output: list[str] = []
        async with server:
            notify = bool(SUBSCRIBING & set(map(str, self.doc.get("Classes") or [])))
            site = write_site(folder, server.url("/dcap"), pki, notify=notify)
            home = home_for(load(site), start=v2h.NOON, speed=1.0)
            env = self._environment(server.url("/dcap"), pki, lfdi)
            if not isinstance(target, InProcess):
                print(" ".join(f"{k}={v}" for k, v in env.items()), file=sys.stdout, flush=True)
            async with home:
                try:
                    criteria = await self._play(stage, target, site, env, home)
                finally:
                    output = await target.stop()
        evidence = (
            stage.log
            + [x.to_json() for x in recorder.exchanges]
            + [{"target": line} for line in output]
        )
        result = judged(case, criteria, time.monotonic() - stage.t0, evidence)
        if result.outcome is Outcome.PASS and stage.proceeded:
            # Every check held, but a go-ahead guarded what a person was to see or do
            # (observe the DER ramp, power-cycle the client): that is not judged here.
            result.outcome = Outcome.PARTIAL
            told = "; ".join(
                f"step {n}: {' '.join(map(str, self._instructions(n))) or '(no instructions)'}"
                for n in stage.proceeded
            )
            result.reason = f"went ahead without the operator the procedure asks for: {told}"
        if result.outcome is Outcome.FAIL and (waiting := self._operator(stage, criteria)):
            # A step the procedure leaves to a person (disconnect the DER, change a load)
            # that never happened: the suite plays no operator, so it cannot judge the case.
            result.outcome = Outcome.PARTIAL
            result.reason = f"needs an operator, which the suite does not play: {waiting}"
        return result

    def _instructions(self, step: str) -> list[object]:
        return list(((self.doc.get("Steps") or {}).get(step) or {}).get("instructions") or [])

    def _operator(self, stage: Stage, criteria: list[Criterion]) -> str:
        """The operator instruction the case was left waiting on, or '': preconditions that
        failed only on readings (the DER's output is the operator's to set), or a step with
        instructions still waiting for it. A client that never talked to the server is FAIL."""
        failed = [c.name for c in criteria if not c.ok]
        told = self.pre.get("instructions")
        if not stage.preconditions_held and told and all("readings-" in n for n in failed):
            return f"preconditions: {' '.join(map(str, told))}"
        if not any(x.method != "NOTIFY" for x in stage.recorder.exchanges):
            return ""
        for name, s in (self.doc.get("Steps") or {}).items():
            # A wait completes by itself: its instructions say what to watch, not what to do.
            waits = (s.get("event") or {}).get("type") == "wait"
            if name in stage.active and not waits and (told := s.get("instructions")):
                return f"step {name}: {' '.join(map(str, told))}"
        return ""

    def _environment(self, server: str, pki: Any, lfdi: str) -> dict[str, str]:
        gw = pki.device("gateway")
        values = (server, gw.cert, gw.key, gw.chain, pki.serca, PIN, lfdi)
        return {f"CSIP_AUS_{k}": str(v) for k, v in zip(ENV_KEYS, values, strict=True)}

    async def _play(
        self, stage: Stage, target: Target, site: Path, env: dict[str, str], home: Any
    ) -> list[Criterion]:
        fit_home(self.doc, site, home)
        immediate = bool(self.pre.get("immediate_start"))
        criteria: list[Criterion] = []
        try:
            for a in self.pre.get("init_actions") or []:
                actions.play(stage, a)
            if immediate:
                for a in self.pre.get("actions") or []:
                    actions.play(stage, a)
            if immediate:  # every request of the client's counts, from its first
                stage.started_at = stage.state.clock()
            with _environment(env):
                await target.start(site, INIT_S + self.timeout_s + 10.0)
            if not immediate:
                pre = await self._preconditions(stage, home)
                if not all(c.ok for c in pre):
                    stage.preconditions_held = False
                    return pre
                criteria += pre
                stage.seen = len(stage.recorder.exchanges)
                stage.started_at = stage.state.clock()
                for a in self.pre.get("actions") or []:
                    actions.play(stage, a)
            stage.log.append({"t": stage._t(), "test": "started"})
            now = started = time.monotonic()
            for s in self.steps:
                if s.name not in _enabled_by_others(self.doc):
                    stage.active[s.name] = (now, stage.seen)
            await self._steps(stage, home)
            # The checks are judged a little after the test ends (as an operator finishes a
            # cactus run): two post periods, for the client's last reports to arrive, and not
            # before the procedure's last control has ended (GEN-11 asks for every control's
            # "completed" Response; its steps are all done before the last one starts).
            grace = 2 * (stage.post_rate or 1)
            end = started + min(horizon_s(self.doc) / self.speed, HORIZON_S)
            settle = max(time.monotonic(), end) + grace
            while time.monotonic() < settle:
                home.sync()
                await asyncio.sleep(TICK_S)
        except actions.ActionError as e:
            return [
                *criteria,
                Criterion("the procedure's actions", ok=False, expected="played", seen=str(e)),
            ]
        if stage.fail_message is not None:
            criteria.append(
                Criterion("finish-test", ok=False, expected="no fail", seen=stage.fail_message)
            )
        for c in (self.doc.get("Criteria") or {}).get("checks") or []:
            try:
                criteria.append(checks.run(stage, c))
            except Exception as e:  # noqa: BLE001 (a check that cannot judge fails, saying why)
                criteria.append(
                    Criterion(str(c.get("type")), ok=False, expected="judged", seen=repr(e))
                )
        if (once := checks.responses_not_repeated(stage)) is not None:
            criteria.append(once)
        if stage.timed_out:  # say so where it shows: the steps left were cut short
            criteria = [
                replace(c, seen=f"{c.seen} (the case's {self.timeout_s:.0f} s timeout ended it)")
                if c.name == "all-steps-complete" and not c.ok
                else c
                for c in criteria
            ]
        return criteria

    async def _preconditions(self, stage: Stage, home: Any) -> list[Criterion]:
        deadline = time.monotonic() + INIT_S
        wanted = list(self.pre.get("checks") or [])
        while True:
            home.sync()
            self._post_rates(stage)
            got = [checks.run(stage, c) for c in wanted]
            if all(c.ok for c in got) or time.monotonic() > deadline:
                return [Criterion(f"precondition {c.name}", c.ok, c.expected, c.seen) for c in got]
            await asyncio.sleep(0.25)

    def _post_rates(self, stage: Stage) -> None:
        # An EndDevice registered in band gets the procedure's post rate, as one out of band.
        for e in stage.state.end_devices:
            if e.post_rate is None and stage.post_rate is not None:
                stage.state.set_post_rate(stage.post_rate, e.lfdi)

    async def _steps(self, stage: Stage, home: Any) -> None:
        deadline = time.monotonic() + self.timeout_s
        by_name = {s.name: s for s in self.steps}

        def arrived(method: str, path: str) -> None:
            # cactus plays a step's actions before serving its request, unless the step says
            # serve_request_first: the client's answer to this very request sees the change
            # (ALL-24 creates a control as the DERProgramList is read).
            if stage.finished or stage.error is not None:
                return
            upto = len(stage.recorder.exchanges)
            before = set(stage.active)
            for name in list(stage.active):
                step = by_name[name]
                if (
                    name in stage.active
                    and not _served_first(step)
                    and self._matches(stage, step, method, path, upto)
                ):
                    try:
                        self._fire(stage, step, f"{method} {path} (before serving it)")
                    except actions.ActionError as e:
                        stage.error = e
                        return
            # Steps this enabled wait for the requests after this one (not for those already
            # recorded that the loop has yet to look at).
            for name in set(stage.active) - before:
                stage.active[name] = (stage.active[name][0], upto + 1)

        stage.state.on_request = arrived
        try:
            await self._loop(stage, home, by_name, deadline)
        finally:
            stage.state.on_request = None

    def _matches(self, stage: Stage, step: Step, method: str, path: str, upto: int) -> bool:
        return (
            step.matcher is not None
            and method == str(step.event["type"]).split("-", 1)[0]
            and step.matcher(checks.program_key(stage), path)
            and self._event_checks(stage, step, upto)
        )

    async def _loop(
        self, stage: Stage, home: Any, by_name: dict[str, Step], deadline: float
    ) -> None:

        while not stage.finished and stage.active and time.monotonic() < deadline:
            home.sync()
            self._post_rates(stage)
            exchanges = stage.recorder.exchanges
            if stage.error is not None:
                raise stage.error
            while stage.seen < len(exchanges) and not stage.finished:
                i, x = stage.seen, exchanges[stage.seen]
                stage.seen += 1
                for name, (_, since) in list(stage.active.items()):
                    step = by_name[name]
                    if (
                        since <= i
                        and name in stage.active
                        and _served_first(step)
                        and self._matches(stage, step, x.method, x.path, i + 1)
                    ):
                        self._fire(stage, step, f"{x.method} {x.path}")
            now = time.monotonic()
            stage.lift_expired()
            for name, (enabled, _) in list(stage.active.items()):
                step = by_name[name]
                if step.event["type"] == "wait" and name in stage.active:
                    wait = float(step.event["parameters"]["duration_seconds"]) / self.speed
                    if now - enabled >= wait:
                        self._fire(stage, step, f"waited {wait:.1f} s")
            self._proceed(stage, by_name, now)
            await asyncio.sleep(TICK_S)
        if stage.active and not stage.finished:
            stage.log.append({"t": stage._t(), "timeout": sorted(stage.active)})
            stage.timed_out = True

    def _proceed(self, stage: Stage, by_name: dict[str, Step], now: float) -> None:
        """``proceed`` is an operator's go-ahead, and the suite plays no operator: it goes
        ahead as an operator who watched would, once nothing but go-aheads is left to wait
        for (the steps enabled with it have fired: P-03 cancels its control only after the
        client said it started), or at the step's ``timeout_seconds`` (at speed). What the
        operator was to see or do is not judged: the case is at best PARTIAL (run())."""
        proceeds = [n for n in stage.active if by_name[n].event["type"] == "proceed"]
        if not proceeds:
            return
        alone = len(proceeds) == len(stage.active)
        for name in proceeds:
            enabled, _ = stage.active.get(name, (now, 0))
            timeout = (by_name[name].event.get("parameters") or {}).get("timeout_seconds")
            late = timeout is not None and now - enabled >= float(timeout) / self.speed
            if name in stage.active and (alone or late):
                stage.proceeded.append(name)
                self._fire(stage, by_name[name], "proceeded without an operator")

    def _event_checks(self, stage: Stage, step: Step, upto: int) -> bool:
        stage.upto = upto
        try:
            return all(checks.run(stage, c).ok for c in step.event.get("checks") or [])
        finally:
            stage.upto = None

    def _fire(self, stage: Stage, step: Step, why: str) -> None:
        stage.fired.add(step.name)
        stage.log.append({"t": stage._t(), "step": step.name, "on": why})
        say(f"step {step.name} ({why})")
        for a in step.actions:
            actions.play(stage, a)
            if stage.finished:
                break


def _served_first(step: Step) -> bool:
    """A request event whose actions are played after the request is served (cactus'
    ``serve_request_first``; without it, before)."""
    return bool((step.event.get("parameters") or {}).get("serve_request_first"))


def _speak_v13(state: UtilityState) -> None:
    """A procedure only for CSIP-AUS 1.3 (the storage ones): the server advertises 1.3 at the
    well-known route and writes 1.3's namespace (the simulator writes 1.2's, so its bodies are
    rewritten on the way out); a client then writes 1.3's elements (vppModes*, setMinWh)."""
    state.well_known = {CSIPAUS_NS_V13: [paths.DCAP]}
    old, new = f'"{CSIPAUS_NS}"'.encode(), f'"{CSIPAUS_NS_V13}"'.encode()
    state.tamper(["*"], lambda body: body.replace(old, new))


#: The V2H home's PV inverter in its site file (``v2h.SITE``), up to the next table.
_PV_DEVICE = re.compile(r'\n\[\[device\]\]\nname = "pv"\n.*?(?=\n\[)', re.DOTALL)
_STORAGE_RATES = ("setMaxChargeRateW", "setMaxDischargeRateW")


def storage_alone(doc: dict[str, Any]) -> bool:
    """Whether the procedure's preconditions describe one storage DER: its DERSettings' charge
    and discharge rates equal to the DER's VA (STO-03, STO-06). The V2H home's aggregate DER is
    the charger and the PV, whose VA adds to the charger's, so those rates are below it."""
    for c in (doc.get("Preconditions") or {}).get("checks") or []:
        p = c.get("parameters") or {}
        if c.get("type") == "der-settings-contents" and any(
            "== setMaxVA" in str(p.get(k, "")) for k in _STORAGE_RATES
        ):
            return True
    return False


def fit_home(doc: dict[str, Any], site: Path, home: Any) -> None:
    """Make the home the one the procedure's preconditions describe, before the client starts:
    for one storage DER (:func:`storage_alone`), the V2H charger without the PV (out of the
    site file the client reads, and dark in the simulated home), so that the gateway reports
    that DER honestly and the preconditions can hold."""
    if storage_alone(doc):
        site.write_text(_PV_DEVICE.sub("", site.read_text(encoding="utf-8")), encoding="utf-8")
        home.physics.pv.peak_w = home.physics.pv.limit_w = 0.0


def not_run(case: Case, reason: str) -> Result:
    return Result(case.case_id, case.title, Outcome.NOT_RUN, reason=reason)
