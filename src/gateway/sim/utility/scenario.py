"""Scenario files for ``gateway simulate utility --scenario FILE.toml`` (pure: no I/O).

Times are seconds relative to the server time when the scenario is loaded. Modes are the
``DERControlBase`` element names; CSIP-AUS limits and ``opModTargetW`` / ``opModStorageTargetW``
are given in watts, ``opModFixedW`` / ``opModMaxLimW`` in hundredths of a percent, booleans as
booleans::

    [server]
    poll_rate = 60                 # every pollRate; or a table {dcap = 60, derp = 30}
    allow_registration = true
    registration_pin = 111115
    # The reference CSIP-AUS server's habits (all off by default):
    # random_registration_pin = true  # a random PIN for each EndDevice registered in band
    # restamp_on_cancel = true        # a cancel or supersede gives a new creationTime
    # mup_post_rate = 60              # postRate on every MirrorUsagePoint

    [[end_device]]
    lfdi = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"   # or cert = "gateway" (a PKI name)
    pin = 111115

    [[program]]
    name = "feeder"                # how controls and steps refer to it
    primacy = 1
    default = { opModExpLimW = 5000, opModImpLimW = 10000, setGradW = 27 }

    [[control]]
    name = "evening"
    program = "feeder"
    start = 60                     # +60 s
    duration = 3600
    modes = { opModExpLimW = 1500 }
    randomize_start = 0

    [[step]]
    at = 600
    action = "cancel"              # cancel, supersede, default, fail, clear_faults, cut,
    control = "evening"            # restore, relocate, poll_rate, lose_mup
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.core import errors
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.sim.utility.state import POLL_RESOURCES, UtilityState

_WATTS = frozenset(
    {"opModTargetW", "opModImpLimW", "opModExpLimW", "opModGenLimW", "opModLoadLimW",
     "opModStorageTargetW"}
)  # fmt: skip
_BASE = frozenset(f.name for f in fields(DERControlBase)) - {"unsupported"}
_DEFAULT_EXTRA = frozenset(
    {"setESDelay", "setESRampTms", "setESRandomDelay", "setGradW", "setSoftGradW"}
)


class ScenarioError(errors.ConfigError, ValueError):
    """A scenario file that does not say something the simulator can do."""


@dataclass(frozen=True, slots=True)
class Step:
    at: float  # seconds after the start
    action: str
    args: Mapping[str, Any]


def modes(table: Mapping[str, Any], where: str) -> DERControlBase:
    """A DERControlBase from a TOML table of modes (watts for the ActivePower ones)."""
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in _BASE:
            raise ScenarioError(
                f"{where}: unknown mode {name!r}; one of {', '.join(sorted(_BASE))}"
            )
        values[name] = ActivePower.from_watts(float(value)) if name in _WATTS else value
    return DERControlBase(**values)


def default(table: Mapping[str, Any], where: str) -> DefaultDERControl:
    def get(name: str) -> int | None:
        return None if name not in table else int(table[name])

    base = modes({k: v for k, v in table.items() if k not in _DEFAULT_EXTRA}, where)
    return DefaultDERControl(
        "0",
        base,
        setESDelay=get("setESDelay"),
        setESRampTms=get("setESRampTms"),
        setESRandomDelay=get("setESRandomDelay"),
        setGradW=get("setGradW"),
        setSoftGradW=get("setSoftGradW"),
    )


@dataclass
class Scenario:
    """A loaded scenario: :meth:`apply` sets it up, :meth:`run_step` plays each timed step."""

    data: Mapping[str, Any]
    steps: list[Step]
    t0: int = 0
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Scenario:
        known = {"server", "end_device", "program", "control", "step"}
        if unknown := set(data) - known:
            raise ScenarioError(f"unknown sections {sorted(unknown)}; known: {sorted(known)}")
        steps = []
        for i, s in enumerate(data.get("step", [])):
            if "at" not in s or "action" not in s:
                raise ScenarioError(f"step {i + 1}: needs 'at' and 'action'")
            args = {k: v for k, v in s.items() if k not in ("at", "action")}
            steps.append(Step(float(s["at"]), str(s["action"]), args))
        return cls(data, sorted(steps, key=lambda s: s.at))

    def apply(
        self, state: UtilityState, cert_lfdi: Callable[[str], str] | None = None
    ) -> dict[str, str]:
        """Set ``state`` up; returns the names of programs and controls -> their mRIDs."""
        self.t0 = state.now()
        self.names = {}
        server = self.data.get("server", {})
        rate = server.get("poll_rate")
        for resource in POLL_RESOURCES if isinstance(rate, int) else ():
            state.set_poll_rate(resource, rate)
        for resource, seconds in rate.items() if isinstance(rate, dict) else ():
            state.set_poll_rate(resource, seconds)
        state.allow_registration = bool(server.get("allow_registration", True))
        state.registration_pin = server.get("registration_pin", state.registration_pin)
        state.random_registration_pin = bool(server.get("random_registration_pin", False))
        state.restamp_on_cancel = bool(server.get("restamp_on_cancel", False))
        mup_rate = server.get("mup_post_rate")
        state.mup_post_rate = mup_rate if isinstance(mup_rate, int) else None
        for i, e in enumerate(self.data.get("end_device", [])):
            if "lfdi" in e:
                lfdi = e["lfdi"]
            elif "cert" in e and cert_lfdi is not None:
                lfdi = cert_lfdi(e["cert"])
            else:
                raise ScenarioError(f"end_device {i + 1}: needs 'lfdi' (or 'cert' with --certs)")
            state.add_end_device(
                lfdi,
                pin=e.get("pin", state.registration_pin),
                aggregator=e.get("aggregator"),
                ders=int(e.get("ders", 1)),
                post_rate=e.get("post_rate"),
            )
        for i, p in enumerate(self.data.get("program", [])):
            where = f"program {p.get('name', i + 1)}"
            dflt = default(p["default"], where) if "default" in p else None
            program = state.add_program(
                p.get("description", p.get("name", "")), primacy=int(p.get("primacy", 1)),
                default=dflt,
            )  # fmt: skip
            self.names[str(p.get("name", program.number))] = program.mrid
        for i, c in enumerate(self.data.get("control", [])):
            self.add_control(state, c, f"control {c.get('name', i + 1)}")
        return self.names

    def add_control(self, state: UtilityState, c: Mapping[str, Any], where: str) -> str:
        try:
            program = self.names[str(c["program"])]
        except KeyError:
            raise ScenarioError(f"{where}: 'program' must name a [[program]]") from None
        mrid = state.add_control(
            program,
            start=self.t0 + int(c.get("start", 0)),
            duration=int(c["duration"]),
            base=modes(c.get("modes", {}), where),
            randomize_start=c.get("randomize_start"),
            randomize_duration=c.get("randomize_duration"),
        )
        if "name" in c:
            self.names[str(c["name"])] = mrid
        return mrid

    def run_step(self, state: UtilityState, step: Step) -> str:
        """Play one step; returns a line saying what was done."""
        a, where = step.args, f"step at +{step.at:g} s ({step.action})"

        def named(key: str) -> str:
            if str(a.get(key)) not in self.names:
                raise ScenarioError(f"{where}: '{key}' must name a program or control")
            return self.names[str(a[key])]

        if step.action == "control":
            return f"new control {self.add_control(state, a, where)}"
        if step.action == "cancel":
            state.cancel(named("control"), randomized=bool(a.get("randomized", False)))
        elif step.action == "supersede":
            base = modes(a["modes"], where) if "modes" in a else None
            new = state.supersede(named("control"), base=base, duration=a.get("duration"))
            if "name" in a:
                self.names[str(a["name"])] = new
        elif step.action == "default":
            state.set_default(
                named("program"), default(a["modes"], where) if "modes" in a else None
            )
        elif step.action == "relocate":
            state.relocate_program(named("program"))
        elif step.action == "fail":
            state.fail(
                int(a.get("status", 500)), retry_after=a.get("retry_after"),
                count=a.get("count"), paths=a.get("paths", ()),
            )  # fmt: skip
        elif step.action == "clear_faults":
            state.clear_faults()
        elif step.action == "cut":
            state.cut()
        elif step.action == "restore":
            state.restore()
        elif step.action == "poll_rate":
            state.set_poll_rate(a["resource"], a.get("seconds"))
        elif step.action == "lose_mup":
            state.lose_mup(a.get("mup"))  # a /mup/{m} number; none given: every mirror
        else:
            raise ScenarioError(f"{where}: unknown action")
        return f"{step.action} {dict(a)}"
