"""The QualityLogic OpenADR 2.0b VEN cases (pull mode) this suite plays, each judged from the
wire: what the scripted VTN received and what the simulated home's devices did.

Each case follows its harness test body (``testcases/pull/*/ven/<ID>_TH_VTN_1``): the same
VTN messages in the same order; where the harness asks its operator whether the device did
the right thing ("is the VEN polling at the interval requested?", "did the load shed?"), the
suite looks at the wire and the devices instead.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.conformance.cases import Case, Criterion, Result, judged
from gateway.conformance.openadr2.session import (
    POLL_S,
    REGISTER_S,
    Session,
    now,
    seconds,
    session,
)
from gateway.conformance.target import Target
from gateway.sim.vtn2.server import kw

EXPORT_LIMIT_KW = 1.0
EXPORT_TOLERANCE_W = 100.0
#: From the VTN's answer to the VEN's oadrCreatedEvent (or the poll that should have carried
#: it) until a limit must show at the meter: a control-loop period, a Modbus write, the PV's
#: ramp. The V2H suite's export case gives 6 s from a cold start; this is a warm VEN.
APPLY_S = 4.0
ANSWER_S = 2 * POLL_S + 3.0  # an oadrCreatedEvent within two polls, and some slack
DELAY_S = 3.0  # the site file's enter-service delay (v2h.DELAY_S)
OK = 200
INVALID_ID = 452
NOT_SUPPORTED = 460

Body = Callable[[Session], Awaitable[list[Criterion]]]


async def played(
    case: Case,
    target: Target,
    folder: Path,
    body: Body,
    *,
    seconds_: float,
    poll_s: float = POLL_S,
    ven_id: str | None = None,
) -> Result:
    t0 = time.monotonic()
    output: list[str] = []
    async with session(target, folder, output, seconds=seconds_, poll_s=poll_s, ven_id=ven_id) as s:
        if s.ready:
            criteria = await body(s)
        else:
            criteria = [
                Criterion(
                    "the VEN registers with the VTN and polls",
                    ok=False,
                    expected=f"within {REGISTER_S:.0f} s",
                    seen="requests: "
                    + (", ".join(sorted({w.request for w in s.vtn.wire})) or "none"),
                )
            ]
    return judged(case, criteria, time.monotonic() - t0, s.evidence(output))


# --- criteria ---------------------------------------------------------------------------------


def answered(s: Session, event_id: str, mod: int, opt: str, code: int = OK) -> Criterion:
    seen = s.responses(event_id)
    ok = any(r[:3] == (mod, opt, code) and r[3] == OK for r in seen)
    return Criterion(
        f"oadrCreatedEvent for {event_id} modification {mod}",
        ok,
        f"{opt}, eventResponse {code}, message 200",
        ", ".join(f"mod {m} {o} {c} (message {mc})" for m, o, c, mc in seen) or "none",
    )


def home_untouched(s: Session, since: float, what: str) -> Criterion:
    bad = [x for x in s.between(since) if x.relay != "closed" or x.charger == "forming"]
    seen = (
        f"relay {bad[0].relay}, charger {bad[0].charger} at {bad[0].t - since:.1f} s"
        if bad
        else "closed"
    )
    return Criterion(what, not bad, "the relay closed, the EV not forming", seen)


def no_violation(s: Session) -> Criterion:
    v = s.home.violations
    return Criterion("no interlock violated on the wire", not v, "none", "; ".join(v[:3]) or "none")


def exporting(s: Session) -> Criterion:
    worst = min((x.net_w for x in s.samples), default=0.0)
    floor = -(EXPORT_LIMIT_KW * 1000 * 1.5)
    return Criterion(
        "before the event the home exports more than the limit (else the case proves nothing)",
        worst < floor,
        f"net < {floor:.0f} W",
        f"{worst:.0f} W",
    )


def export_within(s: Session, since: float, end: float) -> Criterion:
    window = s.between(since, end)
    worst = min((x.net_w for x in window), default=0.0)
    floor = -(EXPORT_LIMIT_KW * 1000 + EXPORT_TOLERANCE_W)
    return Criterion(
        f"the event's {EXPORT_LIMIT_KW:g} kW export limit holds at the meter from {APPLY_S:.0f} s "
        "after its oadrCreatedEvent was due",
        bool(window) and worst >= floor,
        f"net >= {floor:.0f} W",
        f"{worst:.0f} W over {len(window)} samples",
    )


async def answer(s: Session, event_id: str, mod: int) -> float:
    """Until the VTN has an eventResponse for this modification (or :data:`ANSWER_S`); when
    it came, or when it was due."""
    due = time.monotonic() + ANSWER_S
    await s.until(lambda: any(r[0] == mod for r in s.responses(event_id)), ANSWER_S)
    return min(time.monotonic(), due)


# --- registration (N1) ------------------------------------------------------------------------


async def n1_0010(s: Session) -> list[Criterion]:
    await s.watch(1.0)
    wire = s.vtn.wire
    query = next((i for i, w in enumerate(wire) if w.request == "oadrQueryRegistration"), None)
    create = next(
        (i for i, w in enumerate(wire) if w.request == "oadrCreatePartyRegistration"), None
    )
    return [
        Criterion(
            "oadrQueryRegistration first, answered oadrCreatedPartyRegistration",
            query is not None and wire[query].response == "oadrCreatedPartyRegistration",
            "sent and answered",
            "never sent" if query is None else f"answered {wire[query].response or 'nothing'}",
        ),
        Criterion(
            "the query comes before oadrCreatePartyRegistration",
            query is not None and create is not None and query < create,
            "query, then create",
            f"query #{query}, create #{create}",
        ),
    ]


N1_0015_POLL_S = 2.0  # whole seconds: openleadr writes the poll frequency as PT<n>S
N1_0015_WINDOW_S = 8.0


async def n1_0015(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrPoll")), 10.0)
    first = s.requests("oadrPoll")
    start = first[0].at if first else time.monotonic()
    await s.watch(max(0.0, start + N1_0015_WINDOW_S - time.monotonic()))
    polls = [w for w in s.requests("oadrPoll", start) if w.at <= start + N1_0015_WINDOW_S]
    # A poll right after one that carried a message is the VEN taking the next one at once
    # (allowed); the interval is judged after empty answers.
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls) if a.response in ("oadrResponse", "")]
    expected = N1_0015_WINDOW_S / N1_0015_POLL_S
    mean = sum(gaps) / len(gaps) if gaps else 0.0
    shortest = min(gaps, default=0.0)
    return [
        Criterion(
            f"the VEN polls in a {N1_0015_WINDOW_S:g} s window",
            len(polls) >= 3,
            f"about {expected:.0f} oadrPoll",
            f"{len(polls)}",
        ),
        Criterion(
            f"no poll sooner than half the requested {N1_0015_POLL_S:g} s after an empty answer",
            bool(gaps) and shortest >= N1_0015_POLL_S / 2,
            f">= {N1_0015_POLL_S / 2:.2f} s",
            f"{shortest:.2f} s",
        ),
        Criterion(
            "the mean poll interval is the requested one",
            bool(gaps) and 0.75 * N1_0015_POLL_S <= mean <= 1.5 * N1_0015_POLL_S,
            f"{0.75 * N1_0015_POLL_S:.2f}-{1.5 * N1_0015_POLL_S:.2f} s",
            f"{mean:.2f} s over {len(gaps)} intervals",
        ),
    ]


async def n1_0020(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrRegisterReport")), 5.0)
    create = s.requests("oadrCreatePartyRegistration")
    register = s.requests("oadrRegisterReport")
    return [
        Criterion(
            "oadrCreatePartyRegistration answered oadrCreatedPartyRegistration",
            any(w.response == "oadrCreatedPartyRegistration" for w in create),
            "registered",
            ", ".join(w.response for w in create) or "never sent",
        ),
        Criterion(
            "then oadrRegisterReport with its report descriptions, answered oadrRegisteredReport",
            bool(create and register)
            and register[0].at >= create[0].at
            and register[0].response == "oadrRegisteredReport"
            and bool(s.vtn.report_offers),
            "at least one report description",
            f"{len(register)} oadrRegisterReport, {len(s.vtn.report_offers)} descriptions",
        ),
    ]


PRE_ALLOCATED = "VEN_PRE_ALLOCATED_1"


async def n1_0025(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrPoll")), 5.0)
    ids = [r.ven_id for r in s.vtn.registrations]
    polls = s.requests("oadrPoll")
    return [
        Criterion(
            "oadrCreatePartyRegistration carries the pre-allocated venID",
            ids == [PRE_ALLOCATED] * len(ids),
            PRE_ALLOCATED,
            ", ".join(ids),
        ),
        Criterion(
            "the VEN polls under it (never asked to register again)",
            bool(polls) and all(w.response != "oadrRequestReregistration" for w in polls),
            "polls answered",
            ", ".join(sorted({w.response for w in polls})) or "no poll",
        ),
    ]


async def n1_0040(s: Session) -> list[Criterion]:
    s.vtn.cancel_registration(s.ven_id)
    s.note("oadrCancelPartyRegistration queued")
    await s.until(lambda: bool(s.vtn.cancellations), 3 * POLL_S + 3.0)
    return [
        Criterion(
            "the VEN answers oadrCanceledPartyRegistration 200",
            (s.ven_id, OK) in s.vtn.cancellations,
            "200",
            ", ".join(str(c) for _, c in s.vtn.cancellations) or "no answer",
        )
    ]


async def n1_0050(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrPoll")), 5.0)
    s.vtn.request_reregistration(s.ven_id)
    asked = s.note("oadrRequestReregistration queued")
    await s.until(lambda: bool(s.requests("oadrRegisterReport", asked)), 3 * POLL_S + 5.0)
    again = s.requests("oadrCreatePartyRegistration", asked)
    return [
        Criterion(
            "the VEN registers again under its venID",
            any(w.response == "oadrCreatedPartyRegistration" for w in again)
            and len({r.ven_id for r in s.vtn.registrations}) == 1,
            "oadrCreatePartyRegistration, the same venID",
            f"{len(again)} registrations after the request, venIDs "
            f"{sorted({r.ven_id for r in s.vtn.registrations})}",
        ),
        Criterion(
            "and registers its reports again",
            bool(s.requests("oadrRegisterReport", asked)),
            "oadrRegisterReport",
            f"{len(s.requests('oadrRegisterReport', asked))}",
        ),
    ]


async def n1_0070(s: Session) -> list[Criterion]:
    s.vtn.cancel_registration(s.ven_id, registration_id="INVALID_REGISTRATION_ID")
    s.note("oadrCancelPartyRegistration with an invalid registrationID queued")
    await s.until(lambda: bool(s.vtn.cancellations), 3 * POLL_S + 3.0)
    first = list(s.vtn.cancellations)
    after = time.monotonic()
    await s.until(lambda: bool(s.requests("oadrUpdateReport", after + 1.0)), 3 * POLL_S)
    still = [w for w in s.requests("oadrPoll", after) if w.response != "oadrRequestReregistration"]
    reports = s.requests("oadrUpdateReport", after + 1.0)
    s.vtn.cancel_registration(s.ven_id)
    s.note("oadrCancelPartyRegistration with the VEN's registrationID queued")
    await s.until(lambda: len(s.vtn.cancellations) > len(first), 3 * POLL_S + 3.0)
    return [
        Criterion(
            "an invalid registrationID is answered 452",
            [c for _, c in first[:1]] == [INVALID_ID],
            "452",
            ", ".join(str(c) for _, c in first) or "no answer",
        ),
        Criterion("and the VEN stays registered, polling", bool(still), "polls", f"{len(still)}"),
        Criterion(
            "and reporting (the VTN's report requests stand)",
            bool(reports),
            "oadrUpdateReport after the 452",
            f"{len(reports)}",
        ),
        Criterion(
            "its own registrationID is answered 200",
            [c for _, c in s.vtn.cancellations[len(first) :]][:1] == [OK],
            "200",
            ", ".join(str(c) for _, c in s.vtn.cancellations[len(first) :]) or "no answer",
        ),
    ]


# --- events (E1) ------------------------------------------------------------------------------


async def e1_1010(s: Session) -> list[Criterion]:
    s.vtn.touch(s.ven_id)  # the list is empty: an oadrDistributeEvent with no events
    sent = s.note("an empty oadrDistributeEvent queued")
    got = await s.until(
        lambda: any(w.response == "oadrDistributeEvent" for w in s.requests("oadrPoll", sent)),
        3 * POLL_S + 2.0,
    )
    await s.watch(2 * POLL_S + 1.0)
    return [
        Criterion("the VEN polls it", got, "an oadrPoll answered oadrDistributeEvent", str(got)),
        Criterion(
            "no oadrCreatedEvent (no event to answer)",
            not s.vtn.created,
            "none",
            f"{len(s.vtn.created)} eventResponses",
        ),
        Criterion(
            "the VEN keeps polling",
            len(s.requests("oadrPoll", sent)) >= 2,
            ">= 2 oadrPoll",
            f"{len(s.requests('oadrPoll', sent))}",
        ),
        home_untouched(s, sent, "nothing changes on the devices"),
    ]


ISLAND_S = 60.0


async def e1_1020(s: Session) -> list[Criterion]:
    event = s.vtn.add_event(
        s.ven_id, "LOAD_CONTROL", "x-loadControlCapacity", [(now(), seconds(ISLAND_S), 0.0)],
        event_id="island-1",
    )  # fmt: skip
    sent = s.note("island event (LOAD_CONTROL x-loadControlCapacity 0) queued")
    await answer(s, event, 0)
    islanded = await s.until(
        lambda: (
            bool(s.samples) and s.samples[-1].relay == "open" and s.samples[-1].charger == "forming"
        ),
        APPLY_S + 6.0,
    )
    took = s.samples[-1].t - sent if islanded else None
    await s.watch(1.0)
    s.vtn.cancel_event(event)
    cancelled = s.note("the event cancelled (modification 1)")
    await answer(s, event, 1)
    back = await s.until(
        lambda: s.samples[-1].relay == "closed" and s.samples[-1].charger != "forming",
        DELAY_S + 8.0,
    )
    forming_closed = [x for x in s.samples if x.charger == "forming" and x.relay != "open"]
    return [
        answered(s, event, 0, "optIn"),
        Criterion(
            "the home islands: relay open, the EV forming",
            islanded,
            f"within {APPLY_S + 6.0:.0f} s",
            f"after {took:.1f} s" if took is not None else "never",
        ),
        Criterion(
            "the charger forms only with the relay open",
            not forming_closed,
            "never otherwise",
            f"forming with the relay {forming_closed[0].relay}" if forming_closed else "never",
        ),
        answered(s, event, 1, "optIn"),
        Criterion(
            "the cancellation reconnects the home",
            back,
            f"relay closed within {DELAY_S + 8.0:.0f} s",
            f"after {s.samples[-1].t - cancelled:.1f} s" if back else "still islanded",
        ),
        no_violation(s),
    ]


async def _limit_case(s: Session, modify: bool) -> list[Criterion]:
    await s.watch(2.0)
    pre = exporting(s)
    first = -3.0 if modify else -EXPORT_LIMIT_KW
    event = s.vtn.add_event(
        s.ven_id, "LOAD_DISPATCH", "setpoint", [(now(), seconds(120), first)],
        measurement=kw(), event_id="export-limit-1",
    )  # fmt: skip
    s.note(f"LOAD_DISPATCH setpoint {first:g} kW queued")
    due = await answer(s, event, 0)
    criteria = [pre, answered(s, event, 0, "optIn")]
    if modify:
        await s.watch(1.0)
        s.vtn.modify_event(event, [(now(), seconds(120), -EXPORT_LIMIT_KW)])
        s.note(f"modified (modification 1): {-EXPORT_LIMIT_KW:g} kW")
        due = await answer(s, event, 1)
        criteria.append(answered(s, event, 1, "optIn"))
    await s.watch(max(0.0, due + APPLY_S + 3.0 - time.monotonic()))
    return [*criteria, export_within(s, due + APPLY_S, float("inf")), no_violation(s)]


async def e1_1025(s: Session) -> list[Criterion]:
    return await _limit_case(s, modify=False)


async def e1_1030(s: Session) -> list[Criterion]:
    return await _limit_case(s, modify=True)


async def e1_1040(s: Session) -> list[Criterion]:
    t = now()
    a = s.vtn.add_event(s.ven_id, "LOAD_DISPATCH", "setpoint", [(t, seconds(120), -2.0)],
                        measurement=kw(), event_id="limit-now")  # fmt: skip
    b = s.vtn.add_event(s.ven_id, "LOAD_DISPATCH", "setpoint",
                        [(t + seconds(300), seconds(120), -1.0)], measurement=kw(),
                        event_id="limit-later")  # fmt: skip
    s.note("two events queued for one oadrDistributeEvent")
    await s.until(lambda: bool(s.responses(a) and s.responses(b)), ANSWER_S)
    return [answered(s, a, 0, "optIn"), answered(s, b, 0, "optIn"), no_violation(s)]


async def e1_1050(s: Session) -> list[Criterion]:
    t = now()
    a = s.vtn.add_event(s.ven_id, "LOAD_DISPATCH", "setpoint", [(t, seconds(120), -2.0)],
                        measurement=kw(), event_id="limit")  # fmt: skip
    # A relay is open or closed: half capacity is an event this home cannot carry out.
    b = s.vtn.add_event(s.ven_id, "LOAD_CONTROL", "x-loadControlCapacity",
                        [(t, seconds(120), 0.5)], event_id="half-capacity")  # fmt: skip
    sent = s.note("an event to opt in to and one to opt out of, in one oadrDistributeEvent")
    await s.until(lambda: bool(s.responses(a) and s.responses(b)), ANSWER_S)
    await s.watch(2.0)
    return [
        answered(s, a, 0, "optIn"),
        answered(s, b, 0, "optOut"),
        home_untouched(s, sent, "nothing of the opted-out event reaches the devices"),
    ]


OPT_S = 10.0  # the EV leaves: an oadrCreateOpt for the event within this long


async def e1_1060(s: Session) -> list[Criterion]:
    ahead = [(now() + seconds(60), seconds(300), 0.0)]
    event = s.vtn.add_event(
        s.ven_id, "LOAD_CONTROL", "x-loadControlCapacity", ahead, event_id="island-ahead"
    )
    s.note("island event in 60 s queued")
    await answer(s, event, 0)
    opted_in = answered(s, event, 0, "optIn")
    s.home.physics.charger.ev_connected = False  # the EV that would carry the island leaves
    s.note("the EV unplugged")
    await s.until(lambda: any(o.event_id == event for o in s.vtn.opts), OPT_S)
    opts = [o for o in s.vtn.opts if o.event_id == event]
    return [
        opted_in,
        Criterion(
            f"the VEN tells the VTN it can no longer take part: oadrCreateOpt within {OPT_S:.0f} s",
            any(o.opt_type == "optOut" and o.modification_number == 0 for o in opts),
            "optOut for the event, modification 0",
            ", ".join(f"{o.opt_type} {o.reason} mod {o.modification_number}" for o in opts)
            or "none",
        ),
    ]


async def e1_1070(s: Session) -> list[Criterion]:
    event = s.vtn.add_event(s.ven_id, "ELECTRICITY_PRICE", "price", [(now(), seconds(120), 0.25)],
                            event_id="price-1")  # fmt: skip
    sent = s.note("ELECTRICITY_PRICE event queued (not a signal this home acts on)")
    await answer(s, event, 0)
    await s.watch(2.0)
    return [
        answered(s, event, 0, "optOut", NOT_SUPPORTED),
        home_untouched(s, sent, "nothing reaches the devices"),
    ]


async def e1_1080(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrPoll")), 5.0)
    s.vtn.swap_vtn_id_case_next()
    event = s.vtn.add_event(
        s.ven_id, "LOAD_CONTROL", "x-loadControlCapacity", [(now(), seconds(ISLAND_S), 0.0)],
        event_id="island-swapped",
    )  # fmt: skip
    sent = s.note(f"island event queued under vtnID {s.vtn.vtn_id.swapcase()}")
    await answer(s, event, 0)
    await s.watch(APPLY_S)
    seen = s.responses(event)
    return [
        Criterion(
            "oadrCreatedEvent answered 452 (invalid ID), the event opted out",
            any(mc == INVALID_ID and o == "optOut" for _, o, _, mc in seen),
            "message 452, optOut",
            ", ".join(f"mod {m} {o} {c} (message {mc})" for m, o, c, mc in seen) or "none",
        ),
        home_untouched(s, sent, "the event is not carried out"),
    ]


# --- reports (R1) and security (G1) -----------------------------------------------------------


async def r1_3010(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrUpdateReport")), 6.0)
    created = s.requests("oadrCreatedReport")
    updates = s.requests("oadrUpdateReport")
    return [
        Criterion(
            "the VTN's report request is acknowledged: oadrCreatedReport",
            bool(created),
            "oadrCreatedReport",
            f"{len(created)}",
        ),
        Criterion(
            "then an oadrUpdateReport, answered oadrUpdatedReport",
            any(w.response == "oadrUpdatedReport" for w in updates) and bool(s.vtn.reports),
            "with report values",
            f"{len(updates)} updates, {len(s.vtn.reports)} values",
        ),
    ]


R1_3020_WINDOW_S = 6.0


async def r1_3020(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrUpdateReport")), 6.0)
    start = time.monotonic()
    await s.watch(R1_3020_WINDOW_S)
    updates = s.requests("oadrUpdateReport", start)
    nets = [x.net_w for x in s.samples]
    lo, hi = min(nets, default=0.0) - 300, max(nets, default=0.0) + 300
    values = [v.value for v in s.vtn.reports]
    return [
        Criterion(
            f"periodic oadrUpdateReport at the 1 s rate offered, over {R1_3020_WINDOW_S:g} s",
            len(updates) >= R1_3020_WINDOW_S / 2,
            f">= {R1_3020_WINDOW_S / 2:.0f}",
            f"{len(updates)}",
        ),
        Criterion(
            "a reported value is the meter's net power (within 300 W)",
            any(lo <= v <= hi for v in values),
            f"{lo:.0f} to {hi:.0f} W",
            ", ".join(f"{v:g}" for v in values[-8:]) or "no values",
        ),
    ]


async def g1_4010(s: Session) -> list[Criterion]:
    await s.until(lambda: bool(s.requests("oadrPoll")), 5.0)
    s.vtn.tamper_next()
    event = s.vtn.add_event(
        s.ven_id, "LOAD_CONTROL", "x-loadControlCapacity", [(now(), seconds(ISLAND_S), 0.0)],
        event_id="island-tampered",
    )  # fmt: skip
    sent = s.note("island event queued; its oadrDistributeEvent's signature broken")
    await s.until(
        lambda: any(w.response == "oadrDistributeEvent" for w in s.requests("oadrPoll", sent)),
        3 * POLL_S,
    )
    await s.watch(APPLY_S)
    ignored = not s.responses(event)
    untouched = home_untouched(s, sent, "the tampered event is not carried out")
    s.vtn.touch(s.ven_id)
    s.note("the list sent again, correctly signed")
    await answer(s, event, 0)
    wire = s.vtn.wire
    plain = [w for w in wire if not w.tls]
    unsigned = [w for w in wire if not w.signed and w.request]
    refused = [w for w in wire if w.status != OK]
    return [
        Criterion(
            "every request over TLS with a client certificate",
            bool(wire) and not plain,
            "all",
            f"{len(plain)} of {len(wire)} not",
        ),
        Criterion(
            "every message signed, every signature accepted",
            not unsigned and not refused,
            "all",
            f"{len(unsigned)} unsigned, {len(refused)} refused of {len(wire)}",
        ),
        Criterion(
            "a distribution with a broken signature is not answered",
            ignored,
            "no oadrCreatedEvent",
            "none" if ignored else "answered",
        ),
        untouched,
        answered(s, event, 0, "optIn"),
    ]
