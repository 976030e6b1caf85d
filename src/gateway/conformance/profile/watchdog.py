"""PRF-05: the device's own watchdog. The suite writes it (as the gateway's keep-alive does),
stops, and times how long the device takes to fall back to its safe state.

What "its safe state" is depends on the kind, and it must differ from the state before, or the
case would prove nothing:

* a **charger** is started charging at ``--allow-charge`` W (off by default: the case is then
  NOT RUN), and must stop (state stopped or no EV, |power| <= 50 W);
* a **relay** must hold its position and raise the flag its ``relay_faults`` role ignores
  (the reference map's WATCHDOG_EXPIRED): a relay that moves by itself fails at once;
* a **DER** generating more than 5 % of its rating must drop to at most that (the CSIP-AUS
  fallback is a limit; the reference simulator's is 0 W).

It must do so no later than the profile's ``timeout_s`` (plus polling slack) after the last
refresh, and no sooner than the profile's ``refresh_s`` (else the gateway's own keep-alive would
not hold it). Afterwards the charger is stopped at 0 W, a timeout written is restored, and a
relay or DER is refreshed once more (which ends its fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.conformance.cases import Case, Criterion, Result, judged
from gateway.conformance.profile import judge
from gateway.conformance.profile.device import DeviceTarget
from gateway.conformance.profile.points import (
    REASON,
    case_runner,
    failed,
    give_back,
    not_run,
    read_point,
    take_control,
)
from gateway.south.codec import Value
from gateway.south.device import Device
from gateway.south.drivers.base import DriverBase
from gateway.south.errors import DeviceError
from gateway.south.profile import DeviceKind, Watchdog, WatchdogValue, sign

POLL_S = 0.25
STOPPED_W = 50.0  # a stopped charger's |power| at most
DER_FALLBACK = 0.05  # of the rating
#: Slack on the claimed timeout: polling, the request's own time, a busy machine.
GRACE_S = 2.0
Observe = Callable[[], Awaitable[tuple[bool, str]]]


def _num(v: Value | None) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


async def _fall_back(
    driver: DriverBase, wd: Watchdog, observe: Observe, reverts: str
) -> list[Criterion]:
    """Refresh once, stop, and time the fallback: the two timing criteria."""
    grace = max(GRACE_S, 0.1 * wd.timeout_s)
    t0 = time.monotonic()
    await driver.refresh_watchdog()
    if wd.value is WatchdogValue.COUNTER:
        await driver.refresh_watchdog()  # two values: at least one differs from the device's
    deadline = t0 + wd.timeout_s + grace
    safe, seen = await observe()
    while not safe and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        safe, seen = await observe()
    after = time.monotonic() - t0
    within = Criterion(
        f"{wd.point}: falls back",
        safe,
        f"{reverts} within {wd.timeout_s:g} s (+{grace:g} s slack) of the last refresh",
        f"after {after:.1f} s: {seen}" if safe else f"still {seen} after {after:.1f} s",
    )
    if not safe:
        return [within]
    early = Criterion(
        f"{wd.point}: not before the refresh period",
        after >= wd.refresh_s,
        f"no fallback sooner than refresh_s = {wd.refresh_s:g} s",
        f"after {after:.1f} s",
    )
    return [within, early]


async def _charger(
    case: Case, target: DeviceTarget, device: Device, wd: Watchdog, ev: list[dict[str, Any]]
) -> Result:
    t0 = time.monotonic()
    profile, watts = device.profile, target.options.allow_charge_w
    b = profile.role("power_setpoint")
    if watts <= 0:
        why = "a stopped charger shows no fallback: give --allow-charge W to charge at W"
        return not_run(case, why, ev)
    if b is None:
        return not_run(case, "needs a signed power_setpoint to charge at a set power", ev)
    driver = DriverBase(device, now=time.monotonic)
    category, _ = await driver.category("state")
    if category in ("no_ev", "fault", None):
        return not_run(case, f"the charger's state reads {category}: nothing to charge", ev)
    wd_point = device.point(wd.point)
    saved: Value | None = None
    if wd.value is WatchdogValue.TIMEOUT and wd_point.access.readable:
        saved, _ = await read_point(device, wd_point)

    async def observe() -> tuple[bool, str]:
        state, _ = await driver.category("state")
        power = _num(await device.read_one(profile.roles["power"].point))
        return state in ("stopped", "no_ev") and abs(power) <= STOPPED_W, f"{state}, {power:g} W"

    try:
        await driver.refresh_watchdog()
        await device.write(b.point, -watts * sign(b.positive), reason=REASON)
        await driver.command("start", reason=REASON, correlation_id=case.case_id)
        deadline = time.monotonic() + target.options.settle_s
        while (state := (await driver.category("state"))[0]) != "charging":
            if time.monotonic() > deadline:
                why = f"the charger did not charge at {watts:g} W within the settle time"
                return not_run(case, f"{why} (state {state})", ev)
            await asyncio.sleep(POLL_S)
        crit = await _fall_back(driver, wd, observe, "stopped, |power| <= 50 W")
    except DeviceError as exc:
        crit = [failed(f"{wd.point}: falls back", "the steps to arm it", str(exc))]
    finally:
        await _safe(device, driver, case, saved)
    return judged(case, crit, time.monotonic() - t0, ev)


async def _safe(device: Device, driver: DriverBase, case: Case, saved: Value | None) -> None:
    """Stop at 0 W and put back the timeout the device had, whatever happened above; a step
    that fails is in the evidence, and the next one still runs."""
    wd = device.profile.watchdog
    sp = device.profile.role("power_setpoint")
    with contextlib.suppress(DeviceError):
        await driver.command("stop", reason=REASON, correlation_id=case.case_id)
    if sp is not None:
        with contextlib.suppress(DeviceError):
            await device.write(sp.point, 0, reason=REASON)
    if wd is not None and saved is not None:
        with contextlib.suppress(DeviceError):
            await device.write(wd.point, saved, reason=REASON)


async def _relay(case: Case, device: Device, wd: Watchdog, ev: list[dict[str, Any]]) -> Result:
    t0 = time.monotonic()
    faults = device.profile.role("relay_faults")
    if faults is None or not faults.ignore:
        why = "relay_faults names no watchdog flag (ignore), so the expiry cannot be seen"
        return not_run(case, why, ev)
    driver = DriverBase(device, now=time.monotonic)
    held, _ = await driver.category("relay_state")
    flag = sum(1 << bit for bit in faults.ignore)

    async def observe() -> tuple[bool, str]:
        position, values = await driver.read_state("relay_state", faults.point)
        raw = int(_num(values[faults.point]))
        if position != held:
            raise DeviceError(device.label, "relay_state", f"moved {held} -> {position}")
        return bool(raw & flag), f"relay {position}, {faults.point} = {raw:#06x}"

    try:
        crit = await _fall_back(driver, wd, observe, f"relay held {held}, flag {flag:#06x} set")
    except DeviceError as exc:
        crit = [failed("relay_state: holds", f"relay held {held}", exc.why)]
    finally:
        await driver.refresh_watchdog()  # clears the flag: a gateway that is back
    return judged(case, crit, time.monotonic() - t0, ev)


async def _der(case: Case, device: Device, wd: Watchdog, ev: list[dict[str, Any]]) -> Result:
    t0 = time.monotonic()
    profile = device.profile
    readings = {}
    for role in judge.RATING_ROLES:
        b = profile.role(role)
        if b is not None:
            readings[b.point], _ = await read_point(device, device.point(b.point))
    rated = judge.rating(profile, readings)
    power_point = profile.roles["power"].point
    driver = DriverBase(device, now=time.monotonic)
    await driver.refresh_watchdog()  # a fallback left by an earlier run ends here
    await asyncio.sleep(POLL_S)
    power = _num(await device.read_one(power_point))
    if rated is None or power <= DER_FALLBACK * rated:
        why = f"the DER generates {power:g} W of rating {rated}: nothing to fall back from"
        return not_run(case, why, ev)
    floor = DER_FALLBACK * rated

    async def observe() -> tuple[bool, str]:
        w = _num(await device.read_one(power_point))
        return w <= floor, f"{power_point} = {w:g} W"

    try:
        crit = await _fall_back(driver, wd, observe, f"generation <= {floor:g} W")
    except DeviceError as exc:
        crit = [failed(f"{wd.point}: falls back", "readings", str(exc))]
    finally:
        await driver.refresh_watchdog()  # ends the revert
    return judged(case, crit, time.monotonic() - t0, ev)


async def _watchdog(
    case: Case, target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    """Under remote control, as the gateway runs it (the init writes: the relay's timeout
    register is one), and given back afterwards."""
    saved = await take_control(device)
    try:
        return await _by_kind(case, target, device, evidence)
    finally:
        await give_back(device, saved)


async def _by_kind(
    case: Case, target: DeviceTarget, device: Device, evidence: list[dict[str, Any]]
) -> Result:
    wd = device.profile.watchdog
    if wd is None:
        why = "the profile claims no watchdog"
        if target.profile.watchdog is not None:
            missing = target.profile.watchdog.point
            why = f"the device lacks the model of the profile's watchdog {missing}"
        return not_run(case, why, evidence)
    kind = device.profile.kind
    if kind is DeviceKind.CHARGER:
        return await _charger(case, target, device, wd, evidence)
    if kind is DeviceKind.METER_RELAY:
        return await _relay(case, device, wd, evidence)
    if kind is DeviceKind.DER:
        return await _der(case, device, wd, evidence)
    return not_run(case, f"no safe state the suite knows for a {kind}", evidence)


watchdog = case_runner(_watchdog)
