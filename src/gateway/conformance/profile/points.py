"""PRF-01 to PRF-04 and PRF-06: the device answers, every claimed point reads in range, every
writable one takes a safe value and gives it back, the profile's limits hold before the wire,
and (with ``--allow-relay``) the relay moves and comes back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.conformance.cases import Case, Criterion, Outcome, Result, judged
from gateway.conformance.profile import judge
from gateway.conformance.profile.device import DeviceTarget
from gateway.core import errors
from gateway.south.codec import Value, multiplier
from gateway.south.device import Device
from gateway.south.drivers.base import Confirmation, DriverBase
from gateway.south.errors import DeviceError, DeviceRejected
from gateway.south.profile import DeviceKind, Point

REASON = "conformance profile suite"
Body = Callable[[Case, DeviceTarget, Device, list[dict[str, Any]]], Awaitable[Result]]


def case_runner(body: Body) -> Callable[[Case, Any, Path], Awaitable[Result]]:
    """A case with a fresh evidence tape and a bound device; a device that cannot be bound
    (unreachable, or a SunSpec chain without a required model) fails the case, named."""

    async def run(case: Case, target: Any, _folder: Path) -> Result:
        assert isinstance(target, DeviceTarget), "--suite profile runs against a device"
        evidence = target.begin()
        t0 = time.monotonic()
        try:
            device = await target.device()
            return await body(case, target, device, evidence)
        except DeviceError as exc:
            # A step the case could not take (an init write refused, the device gone): the
            # case fails with the point and the answer.
            c = failed(exc.point, "the device answers its profile", exc.why)
            return judged(case, [c], time.monotonic() - t0, evidence)
        except errors.DeviceError as exc:  # a SunSpec chain that cannot be walked
            c = failed("device", "the device answers its profile", str(exc))
            return judged(case, [c], time.monotonic() - t0, evidence)
        finally:
            await target.end()

    return run


def failed(name: str, expected: str, seen: str) -> Criterion:
    return Criterion(name, ok=False, expected=expected, seen=seen)


def passed(name: str, expected: str, seen: str) -> Criterion:
    return Criterion(name, ok=True, expected=expected, seen=seen)


def not_run(case: Case, why: str, evidence: list[dict[str, Any]]) -> Result:
    return Result(case.case_id, case.title, Outcome.NOT_RUN, reason=why, evidence=evidence)


def claimed(device: Device) -> list[Point]:
    """Every point the profile claims on this device, by table and address (for a SunSpec
    profile: the points its roles, init writes and watchdog bound, with their scale factors)."""
    return sorted(device.points.values(), key=lambda p: (p.table.value, p.address))


async def read_point(device: Device, p: Point) -> tuple[Value | None, str | None]:
    """The point's value, or why it could not be read (a Modbus exception names its code)."""
    try:
        return (await device.read(p.name))[p.name], None
    except DeviceRejected as exc:
        return None, f"Modbus exception {exc.code} ({exc.why})"
    except DeviceError as exc:
        return None, exc.why


async def step_of(device: Device, p: Point) -> float:
    """One raw step in engineering units (reads the scale factor register if there is one)."""
    sf = None
    if p.scale_factor is not None:
        value = (await device.read(p.scale_factor))[p.scale_factor]
        sf = value if isinstance(value, int) else None
    return multiplier(p, sf)


# -- PRF-01 -------------------------------------------------------------------------------------


async def _answers(
    case: Case, target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    profile = device.profile
    crit = [passed("profile", "a valid profile", f"{profile.name} ({profile.kind})")]
    if target.profile.sunspec is not None:
        crit.append(
            passed(
                "SunSpec model chain",
                f"models {', '.join(map(str, target.profile.sunspec.required_models))}",
                f"bound {len(device.points)} points",
            )
        )
    readable = [p for p in claimed(device) if p.access.readable]
    if readable:
        first = readable[0]
        _, err = await read_point(device, first)
        answered = err is None or "exception" in err  # an exception reply is an answer
        crit.append(
            Criterion(
                f"unit {device.unit_id} answers",
                answered,
                f"an answer to a read of {judge.label(first)}",
                err or "registers",
            )
        )
    return judged(case, crit, time.monotonic() - t0, evidence)


# -- PRF-02 -------------------------------------------------------------------------------------


async def _readable(
    case: Case, _target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    profile = device.profile
    points = [p for p in claimed(device) if p.access.readable]
    readings: dict[str, Value | None] = {}
    errors: dict[str, str] = {}
    for p in points:
        value, err = await read_point(device, p)
        readings[p.name] = value
        if err is not None:
            errors[p.name] = err
    rated = judge.rating(profile, readings)
    crit = []
    for p in points:
        if p.name in errors:
            crit.append(failed(judge.label(p), "a reading", errors[p.name]))
            continue
        problem = judge.reading_problem(profile, p, readings[p.name], rated)
        expected, seen = problem or ("in range", judge.show(readings[p.name], p))
        crit.append(Criterion(judge.label(p), problem is None, expected, seen))
    if not crit:
        return not_run(case, "the profile claims no readable point", evidence)
    return judged(case, crit, time.monotonic() - t0, evidence)


# -- PRF-03 -------------------------------------------------------------------------------------


def _write_order(device: Device) -> list[Point]:
    """The init writes first, in the profile's order (a device takes commands only under
    remote control), then the stop commands in the profile's own order for leaving
    grid-forming (a device may refuse a stop in backup mode), then every other writable point
    by address."""
    profile = device.profile
    writable = [p for p in claimed(device) if p.access.writable and p.table.writable]
    first: list[Point] = []
    steps = [w.point for w in profile.init]
    for role in (*profile.sequences.leave_forming, *judge.SAFE_COMMANDS):
        b = profile.role(role)
        if b is not None and role in judge.SAFE_COMMANDS:
            steps.append(b.point)
    for name in steps:
        p = device.point(name)
        if p not in first:
            first.append(p)
    return first + [p for p in writable if p not in first]


async def take_control(device: Device) -> list[tuple[Point, Value]]:
    """The profile's init writes, as the gateway makes them on connect; returns what the
    points held, for :func:`give_back`."""
    saved = []
    for w in device.profile.init:
        p = device.point(w.point)
        if p.access.readable:
            value, err = await read_point(device, p)
            if err is None and value is not None:
                saved.append((p, value))
        await device.write(w.point, w.value, reason=REASON)
    return saved


async def give_back(device: Device, saved: list[tuple[Point, Value]]) -> None:
    """Put back what :func:`take_control` found, last first; a failure is in the evidence."""
    for p, value in reversed(saved):
        with contextlib.suppress(DeviceError):
            await device.write(p.name, value, reason=REASON)


async def _write_back(device: Device, p: Point, value: Value) -> tuple[bool, str, str]:
    """Write ``value``, read it back: (ok, expected, seen)."""
    shown = judge.show(value, p)
    try:
        await device.write(p.name, value, reason=REASON, verify=False)
    except DeviceRejected as exc:
        return False, f"{shown} accepted", f"Modbus exception {exc.code} ({exc.why})"
    except DeviceError as exc:
        return False, f"{shown} accepted", exc.why
    if not p.access.readable:
        return True, f"{shown} accepted", "accepted (write-only: no read-back)"
    back, err = await read_point(device, p)
    if err is not None:
        return False, f"{shown} read back", err
    if isinstance(value, int | float) and isinstance(back, int | float):
        step = await step_of(device, p)
        tol = judge.tolerance(p, step, float(value))
        within = f" (within {tol:.6g})" if step != 1 else ""
        if abs(float(back) - float(value)) <= tol:
            return True, f"{shown} read back{within}", judge.show(back, p)
        return (
            False,
            f"{shown} read back",
            f"{judge.show(back, p)}: the device clamped or ignored it",
        )
    ok = back == value
    return ok, f"{shown} read back", judge.show(back, p)


async def _writable(
    case: Case, _target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    crit: list[Criterion] = []
    skipped: list[str] = []
    restores: list[tuple[Point, Value]] = []
    for p in _write_order(device):
        current, err = (await read_point(device, p)) if p.access.readable else (None, None)
        if err is not None:
            crit.append(failed(judge.label(p), "a reading before the write", err))
            continue
        plan = judge.plan(device.profile, p, current)
        if plan.value is None:
            skipped.append(f"{p.name}: {plan.why}")
            continue
        ok, expected, seen = await _write_back(device, p, plan.value)
        crit.append(Criterion(judge.label(p), ok, f"{expected} ({plan.why})", seen))
        if ok and plan.restore and current is not None and current != plan.value:
            restores.append((p, current))
    # Restored last first: the init writes (remote control) go back after everything else.
    for p, current in reversed(restores):
        ok, expected, seen = await _write_back(device, p, current)
        crit.append(Criterion(f"{judge.label(p)} restored", ok, expected, seen))
    evidence.append({"kind": "not written", "points": skipped})
    if not crit:
        why = "no writable point the suite can write safely"
        return not_run(case, f"{why}: {'; '.join(skipped) or 'none claimed'}", evidence)
    result = judged(case, crit, time.monotonic() - t0, evidence)
    if skipped and result.outcome is Outcome.PASS:
        result.reason = f"not written: {'; '.join(skipped)}"
    return result


# -- PRF-04 -------------------------------------------------------------------------------------


async def _limits(
    case: Case, target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    crit: list[Criterion] = []
    link = target.link
    for p in claimed(device):
        if not (p.access.writable and p.table.writable):
            continue
        step = p.scale if p.scale_factor is None else 1.0
        beyond = []
        if p.maximum is not None:
            beyond.append(("above", p.maximum + step))
        if p.minimum is not None:
            beyond.append(("below", p.minimum - step))
        for side, value in beyond:
            sent = len(link.rows)
            link.shut = True  # a write that gets past the profile layer is refused, not sent
            try:
                await device.write(p.name, value, reason=REASON, verify=False)
                refused, why = False, "the profile layer let it through"
            except DeviceError as exc:
                refused, why = True, exc.why
            finally:
                link.shut = False
            on_wire = [r for r in link.rows[sent:] if r.get("op") == "write"]
            ok = refused and not on_wire
            seen = (
                why if not on_wire else f"{why}; {len(on_wire)} write request(s) reached the link"
            )
            crit.append(
                Criterion(
                    f"{judge.label(p)} {side} {p.range_text()}",
                    ok,
                    f"{judge.show(value, p)} refused before the wire",
                    seen,
                )
            )
    if not crit:
        return not_run(case, "no writable point claims a minimum or maximum", evidence)
    return judged(case, crit, time.monotonic() - t0, evidence)


# -- PRF-06 -------------------------------------------------------------------------------------


async def _relay(
    case: Case, target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    if device.profile.kind is not DeviceKind.METER_RELAY:
        return not_run(case, f"a {device.profile.kind} profile has no relay", evidence)
    if not target.options.allow_relay:
        return not_run(case, "the relay is left alone: give --allow-relay on a bench", evidence)
    driver = DriverBase(device, now=time.monotonic, confirm=Confirmation(target.options.settle_s))
    saved = await take_control(device)
    try:
        return await _move_and_back(case, target, device, driver, evidence, t0)
    finally:
        await give_back(device, saved)


async def _move_and_back(
    case: Case,
    target: DeviceTarget,
    device: Device,
    driver: DriverBase,
    evidence: list[dict[str, Any]],
    t0: float,
) -> Result:
    category, _ = await driver.category("relay_state")
    moves = ["closed", "open"] if category == "open" else ["open", "closed"]
    crit = []
    for position in moves:
        role = "relay_open" if position == "open" else "relay_close"
        b = device.profile.roles[role]
        expected = f"{role} then relay_state {position} within {target.options.settle_s:g} s"
        try:
            await driver.command(role, reason=REASON, correlation_id=case.case_id)
            await driver.await_category(
                "relay_state", {position}, reason=REASON, correlation_id=case.case_id
            )
            seen = f"relay_state {position}"
            ok = True
        except DeviceError as exc:
            ok, seen = False, exc.why
        crit.append(Criterion(judge.label(device.point(b.point)), ok, expected, seen))
        if not ok:
            break
    return judged(case, crit, time.monotonic() - t0, evidence)


answers = case_runner(_answers)
readable = case_runner(_readable)
writable = case_runner(_writable)
limits = case_runner(_limits)
relay = case_runner(_relay)
