"""cactus-test-definitions' actions, played on the simulated utility's state.

Every duration (poll and post rates, a control's start offset, duration and randomisation) is
the procedure's, divided by the run's speed: the client under test honours the server's rates,
so a procedure written for 60 s polls runs with 2 s polls at speed 30, and its waits shrink
alike (docs: conformance/README.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from gateway.conformance.csip_aus import expressions, support
from gateway.core import errors
from gateway.north.sep2 import identity
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.sim.utility import UtilityState, modes
from gateway.sim.utility.records import Fault, Program


class ActionError(errors.StateError):
    """An action that cannot be played now (what it needs is not there); the case fails."""


class Stage(Protocol):
    """What an action needs of the case being run."""

    state: UtilityState
    lfdi: str
    speed: float
    programs: list[Program]  # created by the procedure, in order (cactus' derp 1, 2, ...)
    tags: dict[str, str]  # a control's tag -> its mRID
    controls: list[str]  # every control's mRID, in order
    program_tags: dict[str, Program]  # a program's tag -> it
    fsa_of: dict[str, int]  # a program's mRID -> the FSA it was created in
    pow10: int | None  # pow_10_multipliers: the multiplier of the W values served from now
    post_rate: int | None

    def env(self, this: float | None = None) -> dict[str, float | None]: ...

    def enable(self, steps: list[str]) -> None: ...

    def remove(self, steps: list[str]) -> None: ...

    def finish(self, fail_message: str | None) -> None: ...

    def expire(self, fault: Fault, after_s: float) -> None: ...


RATES: dict[str, str] = {
    "dcap_poll_seconds": "dcap",
    "edev_list_poll_seconds": "edev",
    "fsa_list_poll_seconds": "fsa",
    "der_list_poll_seconds": "der",
    "derp_list_poll_seconds": "derp",
}


def scaled(seconds: float, speed: float) -> int:
    """A duration of the procedure's at the run's speed: whole seconds, at least 1."""
    return max(1, round(seconds / speed))


def value(stage: Stage, v: object) -> Any:
    if (text := expressions.body(v)) is not None:
        try:
            return expressions.evaluate(text, stage.env(), stage.speed)
        except expressions.ExpressionError as e:
            raise ActionError(str(e)) from None
    return v


def play(stage: Stage, item: dict[str, Any]) -> None:
    kind = str(item["type"])
    p = {k: value(stage, v) for k, v in (item.get("parameters") or {}).items()}
    globals()["_" + kind.replace("-", "_")](stage, p)


def _enable_steps(s: Stage, p: dict[str, Any]) -> None:
    s.enable(list(p["steps"]))


def _remove_steps(s: Stage, p: dict[str, Any]) -> None:
    s.remove(list(p["steps"]))


def _finish_test(s: Stage, p: dict[str, Any]) -> None:
    s.finish(p.get("fail_message"))


def _set_comms_rate(s: Stage, p: dict[str, Any]) -> None:
    for key, seconds in p.items():
        if key in RATES:
            s.state.set_poll_rate(RATES[key], scaled(seconds, s.speed))  # type: ignore[arg-type]
            if key == "dcap_poll_seconds":  # Time and Registration: as often as the dcap
                s.state.set_poll_rate("tm", scaled(seconds, s.speed))
                s.state.set_poll_rate("reg", scaled(seconds, s.speed))
        elif key == "mup_post_seconds":
            s.post_rate = scaled(seconds, s.speed)
            s.state.mup_post_rate = s.post_rate
            for e in s.state.end_devices:
                s.state.set_post_rate(s.post_rate, e.lfdi)


def _register_end_device(s: Stage, p: dict[str, Any]) -> None:
    pin = p.get("registration_pin")
    s.state.add_end_device(
        s.lfdi,
        pin=None if pin is None else identity.pin_with_check(int(pin)),
        post_rate=s.post_rate,
    )


#: The reference server's habit, as cactus' client procedures meet it (envoy; the admin
#: interface's ``empty_defaults``): every program has a DefaultDERControl from the start, with
#: no modes (it constrains nothing), so a client can subscribe to it before the procedure sets
#: one (GEN-07/08, LOA-07/08 want that subscription first); a cancelled default is emptied.
EMPTY_DEFAULT = DERControlBase()


def _create_der_program(s: Stage, p: dict[str, Any]) -> Program:
    fsa = int(p.get("fsa_id", 1))
    name = f"cactus derp {len(s.programs) + 1}"
    if fsa == 1:  # in every EndDevice's first FSA, now and when registered
        program = s.state.add_program(name, primacy=int(p["primacy"]), default=EMPTY_DEFAULT)
    else:
        edev = s.state.find_end_device(s.lfdi)
        if edev is None:
            raise ActionError(f"create-der-program fsa_id {fsa}: no EndDevice registered yet")
        program = s.state.add_program(
            name, primacy=int(p["primacy"]), end_devices=[], default=EMPTY_DEFAULT
        )
        held = next((f for f in edev.fsas if f.number == fsa), None)
        if held is None:
            s.state.add_fsa(s.lfdi, [program], f"fsa {fsa}")
        else:
            held.programs.append(program.number)
            s.state.notify(f"/edev/{edev.number}/fsa/{fsa}/derp", kind="program")
    s.programs.append(program)
    s.fsa_of[program.mrid] = fsa
    if "tag" in p:
        s.program_tags[str(p["tag"])] = program
    return program


def _program(s: Stage, number: int = 1) -> Program:
    if not 1 <= number <= len(s.programs):
        raise ActionError(f"no DERProgram {number}: the procedure created {len(s.programs)}")
    return s.programs[number - 1]


def _base(p: dict[str, Any], pow10: int | None = None, speed: float = 1.0) -> DERControlBase:
    """A procedure's control modes (``sim.utility.modes``, the admin interface's too), in the
    YAML's units: ``opModFixedW`` a percent of setMaxW, ``ramp_time_seconds`` seconds at the
    run's speed, and the watts at the server's ``pow10`` encoding when the case sets one."""
    q: dict[str, object] = {k: v for k, v in p.items() if k in modes.MODES}
    if "opModFixedW" in p:  # SignedPerCent of setMaxW, in hundredths (-0.01 % is -1: DRD-01)
        q["opModFixedW"] = round(float(p["opModFixedW"]) * 100)
    if "ramp_time_seconds" in p:  # rampTms: hundredths of a second, at the run's speed
        q["rampTms"] = round(float(p["ramp_time_seconds"]) / speed * 100)
    try:
        base = modes.control_base(q)
    except ValueError as e:
        raise ActionError(str(e)) from None
    if pow10 is None:
        return base
    encoded: dict[str, Any] = {k: _at_pow10(k, float(p[k]), pow10) for k in modes.WATTS if k in p}
    return replace(base, **encoded)


def _at_pow10(key: str, watts: float, pow10: int) -> ActivePower:
    # The server's encoding (cactus: envoy's site_control_pow10_encoding): W = value x 10^pow10,
    # so a client that ignores the multiplier is off by that factor (ALL-24).
    value = round(watts / 10.0**pow10)
    if not -32768 <= value <= 32767:
        raise ActionError(f"{key} {watts:g} W does not fit an Int16 value at 10^{pow10}")
    return ActivePower(value, pow10)


def _set_default_der_control(s: Stage, p: dict[str, Any]) -> None:
    # Without derp_id: the program created last (the procedures create one, then set its
    # default).
    program = _program(s, int(p.get("derp_id", len(s.programs))))
    if p.get("cancelled"):
        s.state.set_default(program, EMPTY_DEFAULT)
        return
    grad = p.get("setGradW")
    s.state.set_default(
        program,
        DefaultDERControl("0", _base(p), setGradW=None if grad is None else int(grad)),
    )


def _control_program(s: Stage, p: dict[str, Any]) -> Program:
    """The program a control goes in: ``der_program_tag``'s, else the first created of that
    ``primacy`` (None: any) in that ``fsa_id`` (None: any), made as cactus does when there is
    none yet (it creates the control's program on demand: ALL-11 creates controls before its
    DERProgram)."""
    if (tag := p.get("der_program_tag")) is not None:
        if str(tag) not in s.program_tags:
            raise ActionError(f"create-der-control: no DERProgram tagged {tag}")
        return s.program_tags[str(tag)]
    primacy = None if p.get("primacy") is None else int(p["primacy"])
    fsa = None if p.get("fsa_id") is None else int(p["fsa_id"])
    for program in s.programs:
        if (primacy is None or program.primacy == primacy) and (
            fsa is None or s.fsa_of.get(program.mrid) == fsa
        ):
            return program
    return _create_der_program(s, {"primacy": primacy or 0, "fsa_id": fsa or 1})


def _create_der_control(s: Stage, p: dict[str, Any]) -> None:
    program = _control_program(s, p)
    if p.get("pow_10_multipliers") is not None:
        s.pow10 = int(p["pow_10_multipliers"])
    randomize = p.get("randomizeStart_seconds")
    mrid = s.state.add_control(
        program,
        start=int(p["start"]),
        duration=scaled(float(p["duration_seconds"]), s.speed),
        base=_base(p, s.pow10, s.speed),
        randomize_start=None if randomize is None else round(float(randomize) / s.speed),
    )
    s.controls.append(mrid)
    if "tag" in p:
        s.tags[str(p["tag"])] = mrid


def _cancel_active_der_controls(s: Stage, _: dict[str, Any]) -> None:
    now = s.state.now()
    for program in s.programs:
        for c in program.controls:
            if c.forced_status is None and c.start + c.duration > now:
                s.state.cancel(c.mrid)


def _communications_status(s: Stage, p: dict[str, Any]) -> None:
    if p["enabled"]:
        s.state.restore()
    else:
        s.state.cut()


def _remove_function_set_assignment(s: Stage, p: dict[str, Any]) -> None:
    try:
        s.state.remove_fsa(s.lfdi, int(p["fsa_id"]))
    except KeyError as e:
        raise ActionError(f"remove-function-set-assignment: {e}") from None


def _force_response_status(s: Stage, p: dict[str, Any]) -> None:
    # The simulator answers ``status`` (with Retry-After, at the run's speed) to every request
    # for the endpoint, until ``duration_seconds`` (at speed) have passed, else for good.
    programs = s.programs
    path = support.served(
        str(p["endpoint"]),
        lambda n: programs[n - 1].key if 1 <= n <= len(programs) else None,
    )
    retry = p.get("retry_after_seconds")
    try:
        fault = s.state.fail(
            int(p["status"]),
            retry_after=None if retry is None else scaled(float(retry), s.speed),
            paths=[path],
        )
    except ValueError as e:
        raise ActionError(f"force-response-status: {e}") from None
    if p.get("duration_seconds") is not None:
        s.expire(fault, float(p["duration_seconds"]) / s.speed)
