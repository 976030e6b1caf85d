"""CORE-003 polling, BASIC-001 identity, BASIC-027 alarms, BASIC-028 DERStatus, BASIC-029 meter
readings and ERR-001: what the client sent the server, judged from the server's records.

Clauses (IEEE 2030.5-2018): §5.2/§5.4 polling (``pollRate``: "how often the client SHOULD
poll"), §6.3.3/§6.3.4 SFDI and LFDI (derived from the client's certificate), §6.11.3
registration PIN, §10.10 DER (DERStatus), §10.6 metering mirrors (MirrorUsagePoint), §8.7
LogEvent, §5.7 HTTP (a client follows a 3xx redirect and survives a 5xx).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.conformance.cases import Case, Criterion, Result
from gateway.conformance.csip.session import RATE_S, Session, new_state, result, session
from gateway.conformance.target import Target
from gateway.north.sep2 import codec, identity
from gateway.north.sep2.der_resources import MODE_MAX_LIM_W
from gateway.north.sep2.model import DERControlBase
from gateway.north.sep2.resources import EndDevice
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility.recorder import Exchange
from gateway.sim.utility.state import PollResource

READY_S = 25.0
POLLED: tuple[PollResource, ...] = ("dcap", "tm", "edev", "reg", "fsa", "derp", "der")
UOM = {38: "W", 63: "var", 29: "V", 33: "Hz"}


def _ready(s: Session) -> bool:
    return any(x.method == "GET" and x.path.endswith("/derp") for x in s.requests())


def _gets(s: Session, path: str, since: float = 0.0) -> list[float]:
    return [x.at for x in s.requests() if x.method == "GET" and x.path == path and x.at >= since]


async def core_003(case: Case, target: Target, folder: Path) -> Result:
    """The client polls DeviceCapability at its pollRate, and follows changed pollRates."""
    out: list[str] = []
    slow = 6
    async with session(folder, target, READY_S + 32, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        t1 = time.time()
        await s.wait(10)
        # Every pollRate at once: a client may walk from DeviceCapability as often as the
        # most frequent of the resources under it asks (polling a parent more often than its
        # own pollRate is harmless, §5.4); what it must not do is poll faster than all of them.
        for resource in POLLED:
            s.state.set_poll_rate(resource, slow)
        s.note(f"every pollRate {RATE_S} s -> {slow} s")
        t2 = time.time()
        await s.wait(slow + 2.5)  # the client re-reads the dcap (and its new rate) at most
        t3 = time.time()
        await s.wait(3 * slow)
        t4 = time.time()
    fast = [t for t in _gets(s, "/dcap", t1) if t < t2]
    late = [t for t in _gets(s, "/dcap", t3) if t < t4]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    return result(
        case,
        s,
        [
            Criterion("the client was ready", ready, "walked to /derp", str(ready)),
            Criterion(
                f"at pollRate {RATE_S} s: GET /dcap about every {RATE_S} s over 10 s",
                len(fast) >= 10 / RATE_S - 2,
                f">= {10 / RATE_S - 2:.0f}",
                str(len(fast)),
            ),
            Criterion(
                f"after pollRates {slow} s: no GET /dcap sooner than {0.75 * slow:.1f} s apart",
                bool(gaps) and min(gaps) >= 0.75 * slow,
                f"gaps >= {0.75 * slow:.1f} s",
                ", ".join(f"{g:.1f}" for g in gaps) or f"{len(late)} GETs",
            ),
            Criterion(
                f"after pollRate {slow} s: still polling",
                len(late) >= 2,
                f">= 2 GETs in {3 * slow} s",
                str(len(late)),
            ),
        ],
        out,
    )


def _posted_end_device(s: Session) -> EndDevice | None:
    for x in s.requests():
        if x.method == "POST" and x.path == "/edev":
            try:
                r = codec.decode(x.body)
            except Sep2ParseError:
                continue
            if isinstance(r, EndDevice):
                return r
    return None


async def basic_001(case: Case, target: Target, folder: Path) -> Result:
    """The client registers with the LFDI and SFDI of its certificate, and reads its
    Registration (the PIN) before it acts on the server's programs."""
    out: list[str] = []
    async with session(folder, target, READY_S + 5, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
    posted = _posted_end_device(s)
    sfdi = identity.sfdi_from_lfdi(s.lfdi)
    edev = s.state.find_end_device(s.lfdi)
    reg = f"/edev/{edev.number}/reg" if edev is not None else "(no EndDevice)"
    paths = [x.path for x in s.requests() if x.method == "GET"]
    first_derp = next((i for i, p in enumerate(paths) if p.endswith("/derp")), len(paths))
    return result(
        case,
        s,
        [
            Criterion("the client was ready", ready, "walked to /derp", str(ready)),
            Criterion(
                "the EndDevice it POSTed carries its certificate's LFDI",
                posted is not None and (posted.lFDI or "").upper() == s.lfdi,
                s.lfdi,
                "no EndDevice POSTed" if posted is None else str(posted.lFDI),
            ),
            Criterion(
                "... and the SFDI derived from it (§6.3.3, with its check digit)",
                posted is not None and posted.sFDI == sfdi,
                str(sfdi),
                "no EndDevice POSTed" if posted is None else str(posted.sFDI),
            ),
            Criterion(
                "it read its Registration (PIN) before its programs",
                reg in paths[:first_derp],
                f"GET {reg} before the first GET .../derp",
                ", ".join(paths[: min(first_derp, 12)]) or "no GET",
            ),
        ],
        out,
    )


async def basic_028(case: Case, target: Target, folder: Path) -> Result:
    """DERStatus: connected, available and operating while the PV exports at noon; its
    readingTime in the server's timebase."""
    out: list[str] = []
    async with session(folder, target, READY_S + 10, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        await s.wait(4 * RATE_S, lambda: s.state.der_status(s.lfdi) is not None)
        await s.wait(RATE_S + 1)
    status = s.state.der_status(s.lfdi) if ready else None
    now = s.state.now()
    bits = int(status.genConnectStatus.value) if status and status.genConnectStatus else None
    mode = status.operationalModeStatus.value if status and status.operationalModeStatus else None
    return result(
        case,
        s,
        [
            Criterion("the client PUT a DERStatus", status is not None, "a DERStatus", str(status)),
            Criterion(
                "genConnectStatus: connected, available, operating (bits 0-2)",
                bits is not None and bits & 0b111 == 0b111,
                "bits 0-2 set",
                "none" if bits is None else f"0x{bits:02X}",
            ),
            Criterion("operationalModeStatus 2 (operational)", mode == 2, "2", str(mode)),
            Criterion(
                "readingTime in the server's timebase (within 30 s of it)",
                status is not None and abs(status.readingTime - now) <= 30,
                f"{now} +- 30",
                "none" if status is None else str(status.readingTime),
            ),
        ],
        out,
    )


async def basic_029(case: Case, target: Target, folder: Path) -> Result:
    """Meter readings: the site's W, var, V and Hz mirrored, the power as the meter saw it."""
    out: list[str] = []
    async with session(folder, target, READY_S + 12, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        await s.wait(4 * RATE_S)
        meter = s.physics.meter()
        volts = s.physics.grid.voltage_v
    seen: dict[str, list[float]] = {}
    for r in s.state.readings():
        rt = r.reading.ReadingType
        value = r.reading.Reading.value if r.reading.Reading is not None else None
        if rt is None or rt.uom not in UOM or value is None:
            continue
        seen.setdefault(UOM[rt.uom], []).append(value * 10 ** (rt.powerOfTenMultiplier or 0))
    criteria = [Criterion("the client was ready", ready, "walked to /derp", str(ready))]
    criteria += [
        Criterion(f"a {u} reading was mirrored", u in seen, ">= 1", str(len(seen.get(u, []))))
        for u in UOM.values()
    ]
    near_v = [v for v in seen.get("V", []) if abs(v - volts) <= 0.05 * volts]
    criteria.append(
        Criterion(
            "a voltage reading matches the grid's",
            bool(near_v),
            f"{volts:.0f} V +- 5 %",
            ", ".join(f"{v:.1f}" for v in seen.get("V", [])[-4:]) or "none",
        )
    )
    near_w = [w for w in seen.get("W", []) if abs(abs(w) - abs(meter.net_w)) <= 300]
    criteria.append(
        Criterion(
            "an active-power reading matches the meter's net power",
            bool(near_w),
            f"|{meter.net_w:.0f}| W +- 300",
            ", ".join(f"{w:.0f}" for w in seen.get("W", [])[-6:]) or "none",
        )
    )
    return result(case, s, criteria, out)


async def basic_027(case: Case, target: Target, folder: Path) -> Result:
    """Alarms: an over-voltage on the grid is a LogEvent, and its return to normal another."""
    out: list[str] = []
    async with session(folder, target, READY_S + 25, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        before = len(s.state.log_events(s.lfdi)) if s.state.find_end_device(s.lfdi) else 0
        nominal = s.physics.grid.voltage_v
        # 1.25 pu: beyond every DER over-voltage trip setting (IEEE 1547 OV2 is 1.2 pu).
        s.physics.grid.restore(voltage_v=nominal * 1.25)
        s.note(f"grid voltage {nominal:.0f} -> {nominal * 1.25:.0f} V")
        raised = await s.wait(10, lambda: len(s.state.log_events(s.lfdi)) > before)
        s.physics.grid.restore(voltage_v=nominal)
        s.note(f"grid voltage back to {nominal:.0f} V")
        cleared = await s.wait(10, lambda: len(s.state.log_events(s.lfdi)) > before + 1)
    events = s.state.log_events(s.lfdi) if s.state.find_end_device(s.lfdi) else []
    codes = [e.logEventCode for e in events[before:]]
    return result(
        case,
        s,
        [
            Criterion("the client was ready", ready, "walked to /derp", str(ready)),
            Criterion("a LogEvent when the voltage went high", raised, ">= 1", str(codes)),
            Criterion("another when it returned to normal", cleared, ">= 2", str(codes)),
            Criterion(
                "the pair are an alarm and its return to normal (codes 2n, 2n+1)",
                len(codes) >= 2 and codes[0] % 2 == 0 and codes[0] + 1 in codes[1:],
                "2n then 2n+1",
                str(codes),
            ),
        ],
        out,
    )


async def err_001(case: Case, target: Target, folder: Path) -> Result:
    """The client is configured with a DeviceCapability URI the server redirects (307, §5.7:
    HTTP/1.1 redirects are followed); later the server answers 500 three times: the client
    retries past the errors and goes on walking."""
    out: list[str] = []
    state = new_state()
    state.redirect(OLD_DCAP, "/dcap", status=307)
    async with session(
        folder, target, READY_S + 60, state=state, output=out, dcap_path=OLD_DCAP
    ) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        t1 = time.time()
        s.state.fail(500, count=3, paths=["/dcap"])
        s.note("the next 3 GETs of /dcap answer 500")
        recovered = await s.wait(
            RECOVER_S,
            lambda: (
                any(x.status == 200 for x in _after(s, t1, "/dcap"))
                and any(x.status == 500 for x in _after(s, t1, "/dcap"))
            ),
        )
    moved = [x.status for x in s.requests() if x.path == OLD_DCAP]
    followed = [x for x in s.requests() if x.path == "/dcap" and x.status == 200]
    errors = [x for x in _after(s, t1, "/dcap") if x.status == 500]
    return result(
        case,
        s,
        [
            Criterion(f"the client asked for {OLD_DCAP}", bool(moved), "307", str(moved[:4])),
            Criterion(
                "it followed the 307 to /dcap", bool(followed), "GET /dcap 200", str(len(followed))
            ),
            Criterion("the client was ready", ready, "walked to /derp", str(ready)),
            Criterion("the server answered 500s", len(errors) >= 1, ">= 1", str(len(errors))),
            Criterion(
                f"the client recovered past them (a 200 within {RECOVER_S:.0f} s)",
                recovered,
                "yes",
                str(recovered),
            ),
        ],
        out,
    )


OLD_DCAP = "/old/dcap"
RECOVER_S = 50.0  # a client backs off after 5xx (the gateway: about 2, 4, 10, 16 s)


def _after(s: Session, since: float, path: str) -> list[Exchange]:
    return [x for x in s.requests() if x.path == path and x.at >= since]


RATED_W = 5000 + 7400  # the home's PV and the charger's discharge rating


async def core_014(case: Case, target: Target, folder: Path) -> Result:
    """DERCapability and DERSettings PUT, consistent: setMaxW within rtgMaxW, the modes the
    client enables among those it supports, and opModMaxLimW among them (it is what the
    suite's control cases use)."""
    out: list[str] = []
    async with session(folder, target, READY_S + 10, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        await s.wait(
            4 * RATE_S,
            lambda: (
                s.state.der_settings(s.lfdi) is not None
                and s.state.der_capability(s.lfdi) is not None
            ),
        )
    cap = s.state.der_capability(s.lfdi) if ready else None
    settings = s.state.der_settings(s.lfdi) if ready else None
    rtg = cap.rtgMaxW.watts if cap is not None else None
    set_w = settings.setMaxW.watts if settings is not None else None
    supported = cap.modesSupported if cap is not None else 0
    enabled = getattr(settings, "modesEnabled", None)
    return result(
        case,
        s,
        [
            Criterion("the client PUT its DERCapability", cap is not None, "present", str(cap)),
            Criterion("... and its DERSettings", settings is not None, "present", str(settings)),
            Criterion(
                "0 < setMaxW <= rtgMaxW",
                rtg is not None and set_w is not None and 0 < set_w <= rtg,
                f"<= {rtg} W",
                str(set_w),
            ),
            Criterion(
                "rtgMaxW no more than the DERs behind it are rated",
                rtg is not None and rtg <= RATED_W,
                f"<= {RATED_W} W",
                str(rtg),
            ),
            Criterion(
                "modesSupported includes opModMaxLimW (bit 20)",
                bool(supported & MODE_MAX_LIM_W),
                "bit 20 set",
                f"0x{supported:08X}",
            ),
            Criterion(
                "modesEnabled, if given, only modes it supports",
                enabled is None or (int(enabled) & ~supported) == 0,
                f"a subset of 0x{supported:08X}",
                "absent" if enabled is None else f"0x{int(enabled):08X}",
            ),
        ],
        out,
    )


LEVELS_7 = (
    "System", "Sub-Transmission", "Substation", "Feeder", "Segment", "Transformer",
    "Service Point",
)  # fmt: skip


def topology(levels: int) -> Callable[[Case, Target, Path], Awaitable[Result]]:
    """CORE-010 (7 levels) / CORE-011 (15): one FunctionSetAssignments per group level, each
    with its own DERProgram (CSIP's group hierarchy, System down to Service Point); a control
    in the deepest level's program only. The client must walk every FSA's DERProgramList and
    every program's DERControlList (§10.1: the client is responsible for the union of all its
    FSAs), and act on the deepest one's control."""
    names = LEVELS_7 if levels == 7 else tuple(f"level {n}" for n in range(1, levels + 1))

    async def run(case: Case, target: Target, folder: Path) -> Result:
        out: list[str] = []
        async with session(folder, target, READY_S + 40, output=out) as s:
            ready = await s.wait(READY_S, lambda: _ready(s))
            programs = [s.state.add_program(names[0], primacy=1, end_devices=[s.lfdi])]
            for level, name in enumerate(names[1:], 2):
                p = s.state.add_program(name, primacy=level, end_devices=[])
                s.state.add_fsa(s.lfdi, [p], name)
                programs.append(p)
            s.note(f"{levels} FSAs, one DERProgram each")
            edev = s.state.end_device(s.lfdi)
            wanted = {f"/edev/{edev.number}/fsa/{f.number}/derp" for f in edev.fsas}
            wanted |= {f"/derp/{p.key}/derc" for p in programs}

            def walked() -> set[str]:
                return wanted - {x.path for x in s.requests() if x.method == "GET"}

            await s.wait(8 * RATE_S + 10, lambda: not walked())
            start = s.state.now() + 2
            deepest = programs[-1]
            mrid = s.state.add_control(
                deepest, start=start, duration=8, base=DERControlBase(opModMaxLimW=3000)
            )
            await s.wait(start - s.state.now() + 3.0)
            held = [s.physics.pv.power_w]
            for _ in range(8):
                await s.wait(0.5)
                held.append(s.physics.pv.power_w)
            await s.wait(6)
        missing = walked()
        cap = 0.3 * s.physics.pv.peak_w
        codes = [st for st, _ in s.recorder.responses_for(mrid)]
        return result(
            case,
            s,
            [
                Criterion("the client was ready", ready, "walked to /derp", str(ready)),
                Criterion(
                    f"it walked all {levels} FSAs' DERProgramLists and every DERControlList",
                    not missing,
                    f"{len(wanted)} lists",
                    "all" if not missing else f"never: {', '.join(sorted(missing)[:6])}",
                ),
                Criterion(
                    f"it acted on the control of the deepest level ({names[-1]}): PV at 30 %",
                    all(abs(w - cap) <= 150 for w in held),
                    f"{cap:.0f} W",
                    ", ".join(f"{w:.0f}" for w in held),
                ),
                Criterion("... and answered it", 2 in codes, "includes 2", str(codes)),
            ],
            out,
        )

    return run
