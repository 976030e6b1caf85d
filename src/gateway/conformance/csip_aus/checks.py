"""cactus-test-definitions' checks, judged from what the client reported to the simulated
utility (its EndDevice, the DER resources it PUT, its readings and Responses), never from the
client's own log. Each gives a Criterion with what was expected and what was seen."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from gateway.conformance.cases import Criterion
from gateway.conformance.csip_aus import expressions, support
from gateway.north.sep2 import identity
from gateway.north.sep2.metering import DER_ROLE, SITE_ROLE, Uom
from gateway.sim.utility import Recorder, UtilityState
from gateway.sim.utility.recorder import Exchange
from gateway.sim.utility.records import MirrorReading, Program


class Judge(Protocol):
    """What a check needs of the case being run."""

    state: UtilityState
    recorder: Recorder
    lfdi: str
    speed: float
    steps: tuple[str, ...]
    fired: set[str]
    removed: set[str]  # taken off by remove-steps (a guard step that never fired: P-04)
    tags: dict[str, str]  # a control's tag -> its mRID
    controls: list[str]  # the mRID of every control the procedure created, tagged or not
    # An event's checks judge the server's record as it was at that request: the exchanges
    # before this index (None: all of them).
    upto: int | None
    programs: list[Program]  # created by the procedure, in order (cactus' derp 1, 2, ...)
    started_at: float | None  # server time the test started (its requests count from then)

    def env(self, this: float | None = None) -> dict[str, float | None]: ...


def number(x: object) -> float | None:
    """A 2030.5 quantity as a plain number: value x 10^multiplier, a flag's or status's value."""
    if x is None:
        return None
    if isinstance(x, bool | int | float):
        return float(x)
    if hasattr(x, "displacement"):
        return float(x.displacement) * 10.0 ** getattr(x, "multiplier", 0)
    if hasattr(x, "value"):
        scale = 10.0 ** getattr(x, "multiplier", 0)
        inner = number(x.value)
        return None if inner is None else inner * scale
    return None


def run(judge: Judge, item: dict[str, Any]) -> Criterion:
    kind = str(item["type"])
    params = dict(item.get("parameters") or {})
    try:
        return CHECKS[kind](judge, kind, params)
    except expressions.ExpressionError as e:  # e.g. maxExportW before any DERSettings
        return Criterion(kind, ok=False, expected=_wanted(params), seen=str(e))


def _steps(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    ignored = set(p.get("ignored_steps") or [])
    # As cactus-runner: complete is no step left listening; a step whose event fired, or
    # that another step removed, is done.
    missing = [s for s in j.steps if s not in j.fired | j.removed | ignored]
    return Criterion(
        kind,
        not missing,
        "every step's event seen",
        f"not seen: {', '.join(missing)}" if missing else "all",
    )


def _end_device(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    edev = j.state.find_end_device(j.lfdi)
    if edev is None:
        return Criterion(
            kind, ok=False, expected=f"an EndDevice for {j.lfdi}", seen="none registered"
        )
    bad: list[str] = []
    if p.get("check_lfdi") and edev.sfdi != identity.sfdi_from_lfdi(j.lfdi):
        bad.append(f"SFDI {edev.sfdi} is not the certificate's {identity.sfdi_from_lfdi(j.lfdi)}")
    if p.get("has_connection_point_id"):
        cp = edev.connection_point
        if cp is None or not cp.connectionPointId:
            bad.append("no ConnectionPoint id PUT")
    if (anyset := p.get("deviceCategory_anyset")) is not None:
        category = int(edev.device_category or "0", 16)
        if not category & int(str(anyset), 16):
            bad.append(f"deviceCategory {edev.device_category!r} has none of the bits {anyset}")
    seen = "; ".join(bad) or f"/edev/{edev.number} LFDI {edev.lfdi} SFDI {edev.sfdi}"
    return Criterion(kind, not bad, f"the client's EndDevice {_wanted(p)}", seen)


def _end_device_count(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    n = len([e for e in j.state.visible_to(j.lfdi) if not e.virtual])
    lo, hi = p.get("minimum_count", 0), p.get("maximum_count")
    ok = n >= lo and (hi is None or n <= hi)
    return Criterion(kind, ok, f"between {lo} and {hi if hi is not None else 'any'}", str(n))


def _wanted(p: dict[str, Any]) -> str:
    return "with " + ", ".join(f"{k}={v}" for k, v in p.items()) if p else "present"


def _contents(
    resource: Callable[[UtilityState, str], object | None], what: str
) -> Callable[[Judge, str, dict[str, Any]], Criterion]:
    """A der-*-contents check: the client PUT the resource, and each parameter holds (a
    boolean: the element is set or not; ``X_set``: at least these bits of X are one; a number:
    X equals it; ``$(this ...)``: the expression holds with ``this`` the element's value;
    ``X_bitN``: bit N of X)."""

    def check(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
        try:
            r = resource(j.state, j.lfdi)
        except KeyError:
            r = None
        if r is None:
            return Criterion(kind, ok=False, expected=f"a {what} PUT by the client", seen="none")
        bad: list[str] = []
        for key, want in p.items():
            name, _, suffix = key.partition("_")
            raw = getattr(r, name, None)
            got = number(raw)
            if suffix == "set":
                bits = int(str(want), 16)
                ok = got is not None and int(got) & bits == bits
            elif suffix.startswith("bit"):
                ok = got is not None and bool(int(got) >> int(suffix[3:]) & 1) == bool(want)
            elif (text := expressions.body(want)) is not None:
                try:
                    ok = got is not None and bool(expressions.evaluate(text, j.env(got), j.speed))
                except expressions.ExpressionError as e:
                    ok, got = False, None
                    bad.append(str(e))
            elif isinstance(want, bool):
                ok = (raw is not None) == want
            else:
                ok = got is not None and got == float(want)
            if not ok:
                bad.append(f"{key}: wanted {want}, {name} is {raw!r}")
        seen = "; ".join(bad) or f"{what} as PUT holds"
        return Criterion(kind, not bad, f"{what} {_wanted(p)}", seen)

    return check


def _responses(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    status = p.get("status")
    exists = p.get("exists", True)
    tag = p.get("subject_tag")
    if tag is not None and tag not in j.tags:
        return Criterion(
            kind,
            ok=False,
            expected=f"a control tagged {tag}",
            seen="the procedure never created it",
        )
    subjects = [j.tags[tag]] if tag is not None else list(j.controls)
    found: dict[str, list[int | None]] = {s: [] for s in subjects}
    before = None if j.upto is None else {id(x) for x in j.recorder.exchanges[: j.upto]}
    for x, r in j.recorder.responses():
        if before is not None and id(x) not in before:
            continue
        if r.subject.upper() in found and r.endDeviceLFDI.upper() == j.lfdi:
            found[r.subject.upper()].append(r.status)
    if not subjects:
        return Criterion(kind, not exists, "a Response", "no control was created")

    def has(statuses: list[int | None]) -> bool:
        if p.get("latest"):
            statuses = statuses[-1:]
        return any(status is None or s == status for s in statuses)

    hits = {s: has(v) for s, v in found.items()}
    ok = (all(hits.values()) if p.get("all") or tag else any(hits.values())) == exists
    if not exists:
        ok = not any(hits.values())
    want = f"{'a' if exists else 'no'} Response status {status if status is not None else 'any'}"
    seen = "; ".join(f"{_tag_of(j, s)}: {v or 'none'}" for s, v in found.items())
    return Criterion(kind, ok, f"{want} for {tag or 'the controls'}", seen)


REPEATED = "responses-not-repeated (the suite's)"


def responses_not_repeated(j: Judge) -> Criterion | None:
    """No Response the server accepted is sent again with the same status for the same
    control: the suite's own criterion (no cactus check judges it; a utility counts each
    Response as a change of the event's state). None: the client sent no Response."""
    accepted: dict[tuple[str, int | None], int] = {}
    for x, r in j.recorder.responses():
        if 200 <= x.status < 300 and r.endDeviceLFDI.upper() == j.lfdi:
            key = (r.subject.upper(), r.status)
            accepted[key] = accepted.get(key, 0) + 1
    if not accepted:
        return None
    again = [f"{_tag_of(j, s)} status {st} x{n}" for (s, st), n in accepted.items() if n > 1]
    want = "each Response status at most once per control"
    return Criterion(REPEATED, not again, want, "; ".join(again) or f"{len(accepted)} distinct")


def _tag_of(j: Judge, mrid: str) -> str:
    return next((t for t, m in j.tags.items() if m == mrid), mrid)


#: (check type) -> (site or DER mirror, UOM)
_READINGS: dict[str, tuple[int, int]] = {
    "readings-site-active-power": (SITE_ROLE, Uom.W),
    "readings-der-active-power": (DER_ROLE, Uom.W),
    "readings-site-reactive-power": (SITE_ROLE, Uom.VAR),
    "readings-der-reactive-power": (DER_ROLE, Uom.VAR),
    "readings-voltage": (0, Uom.V),  # site or DER: either mirror's voltage
    "readings-der-stored-energy": (DER_ROLE, Uom.WH),
}


def _value(r: MirrorReading) -> float | None:
    rt = r.reading.ReadingType
    reading = r.reading.Reading
    if reading is None or reading.value is None:
        sets = r.reading.MirrorReadingSet
        if not sets or not sets[-1].Reading or sets[-1].Reading[-1].value is None:
            return None
        value = sets[-1].Reading[-1].value
    else:
        value = reading.value
    return float(value) * 10.0 ** ((rt.powerOfTenMultiplier or 0) if rt else 0)


def _readings(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    role, uom = _READINGS[kind]
    mups = {
        m.mrid: m.resource.roleFlags
        for m in j.state.mups
        if role == 0 or int(m.resource.roleFlags) & int(role) == int(role)
    }
    rows = [
        (r, v)
        for r in j.state.readings(j.lfdi)
        if r.mup in mups
        and r.reading.ReadingType is not None
        and r.reading.ReadingType.uom == uom
        and (v := _value(r)) is not None
    ]
    window = p.get("window_seconds")
    if window is not None:
        since = j.state.now() - window / j.speed
        rows = [(r, v) for r, v in rows if r.at >= since]
    if p.get("latest_reading_only"):
        latest: dict[str, tuple[MirrorReading, float]] = {}
        for r, v in rows:
            latest[r.reading.mRID] = (r, v)
        rows = list(latest.values())
    lo = _level(j, p.get("minimum_level"))
    hi = _level(j, p.get("maximum_level"))
    count = p.get("minimum_count", 1)
    out = [v for _, v in rows if (lo is not None and v < lo) or (hi is not None and v > hi)]
    ok = len(rows) >= count and not out
    bounded = lo is not None or hi is not None
    want = f">= {count} readings" + (f" in [{lo}, {hi}]" if bounded else "")
    values = [round(v) for _, v in rows]
    seen = f"{len(rows)} readings" + (f", out of range: {out[:5]}" if out else f": {values[-5:]}")
    return Criterion(kind, ok, want, seen)


def _level(j: Judge, value: object) -> float | None:
    if value is None:
        return None
    if (text := expressions.body(value)) is not None:
        return float(expressions.evaluate(text, j.env(), j.speed))
    return float(str(value))


def program_key(j: Judge) -> Callable[[int], str | None]:
    """cactus' program number -> the simulator's program key (None: not created)."""
    return lambda n: j.programs[n - 1].key if 1 <= n <= len(j.programs) else None


#: all-polls-at-correct-time, as cactus-runner judges it: a gap over 1.5 intervals is a missed
#: poll, at most 1 a window of 5 intervals (complete windows only); at most floor(1.5 x 3 + 2)
#: = 6 requests a window of 3 intervals. Windows count from the test's start.
MISS_GAP = 1.5
MISS_WINDOW = 5
MAX_MISSES = 1
BURST_WINDOW = 3
MAX_BURST = math.floor(1.5 * BURST_WINDOW + 2)


def _first_page(x: Exchange) -> bool:
    return parse_qs(x.query).get("s", ["0"])[0] == "0"


def poll_faults(times: list[float], interval: float, start: float) -> list[str]:
    """What is wrong with one path's request times (sorted), polled every ``interval`` s."""
    faults: list[str] = []
    last = times[-1]
    gaps = [(b, b - a) for a, b in itertools.pairwise(times) if b - a > interval * MISS_GAP]
    w = start
    while w < last:
        end = w + interval * MISS_WINDOW
        missed = [g for at, g in gaps if w <= at < end]
        if end <= last and len(missed) > MAX_MISSES:
            faults.append(
                f"{len(missed)} missed polls (gaps {', '.join(f'{g:.1f} s' for g in missed[:4])} "
                f"> {interval * MISS_GAP:g} s) in {w - start:.0f}..{end - start:.0f} s"
            )
        w = end
    w = start
    while w < last:
        end = w + interval * BURST_WINDOW
        n = sum(1 for t in times if w <= t < end)
        if n > MAX_BURST:
            faults.append(f"{n} requests > {MAX_BURST} in {w - start:.0f}..{end - start:.0f} s")
        w = end
    return faults


def _polls(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    """Each concrete path of ``endpoints`` was requested (``request_type_str``, first pages
    only) at ``poll_interval_seconds`` (at the run's speed, as the server told the client)
    throughout the test: neither missed polls nor bursts (cactus-runner's windows above)."""
    # The rate the client was given: the procedure's, scaled as set-comms-rate scales it.
    interval = float(max(1, round(float(p["poll_interval_seconds"]) / j.speed)))
    method = str(p["request_type_str"]).upper()
    endpoints = [str(e) for e in p["endpoints"]]
    matchers = [support.endpoint(e) for e in endpoints]
    start = j.started_at if j.started_at is not None else 0.0
    key = program_key(j)
    by_path: dict[str, list[float]] = {}
    for x in j.recorder.exchanges:
        if (
            x.method == method
            and x.at >= start
            and _first_page(x)
            and any(m(key, x.path) for m in matchers)
        ):
            by_path.setdefault(x.path, []).append(x.at)
    want = f"{method} {' '.join(endpoints)} every {interval:g} s (no missed polls, no bursts)"
    if not by_path:
        return Criterion(kind, ok=False, expected=want, seen="no such request")
    bad = [
        f"{path}: {f}"
        for path in sorted(by_path)
        for f in poll_faults(sorted(by_path[path]), interval, start)
    ]
    counts = ", ".join(f"{path} {len(t)}" for path, t in sorted(by_path.items()))
    return Criterion(kind, not bad, want, "; ".join(bad[:6]) or f"requests: {counts}")


def _subscription(j: Judge, kind: str, p: dict[str, Any]) -> Criterion:
    """The client holds a Subscription (on the server, POSTed by its EndDevice) to
    ``subscribed_resource`` (cactus' path, on the simulator's layout)."""
    wanted = str(p["subscribed_resource"])
    match = support.endpoint(wanted)
    try:
        held = [s.resource.subscribedResource for s in j.state.subscriptions(j.lfdi)]
    except KeyError:
        held = []
    ok = any(match(program_key(j), r) for r in held)
    seen = f"subscribed to: {', '.join(held)}" if held else "no Subscription"
    return Criterion(kind, ok, f"a Subscription to {wanted}", seen)


def _notifications(j: Judge, kind: str, _: dict[str, Any]) -> Criterion:
    """Every Notification the server sent (each attempt) was answered 2xx; none sent fails
    (as cactus-runner: an idle subscription is not evidence of delivery)."""
    sent = j.recorder.notifications()
    bad = [x for x in sent if not 200 <= x.status < 300]
    want = "every Notification answered 2xx (at least one sent)"
    if not sent:
        return Criterion(kind, ok=False, expected=want, seen="no Notification was sent")
    seen = "; ".join(f"{x.path}: {x.status or x.error}" for x in bad[:4])
    return Criterion(kind, not bad, want, seen or f"{len(sent)} delivered")


CHECKS: dict[str, Callable[[Judge, str, dict[str, Any]], Criterion]] = {
    "all-steps-complete": _steps,
    "end-device-contents": _end_device,
    "end-device-count": _end_device_count,
    "der-settings-contents": _contents(UtilityState.der_settings, "DERSettings"),
    "der-capability-contents": _contents(UtilityState.der_capability, "DERCapability"),
    "der-status-contents": _contents(UtilityState.der_status, "DERStatus"),
    "response-contents": _responses,
    "all-polls-at-correct-time": _polls,
    "subscription-contents": _subscription,
    "all-notifications-transmitted": _notifications,
    **dict.fromkeys(_READINGS, _readings),
}
