"""What the simulator serves: 2030.5 resources built from :class:`UtilityState` (no I/O).

Lists are ordered as 2030.5 asks (EndDevices by sFDI, programs by primacy, controls by start
then newest creationTime first) and paged with ``?s=&l=`` (``l`` defaults to 1, as the
standard's query-string rules say); ``all`` is the list's size, ``results`` this page's.
Every EndDevice links its ``csipaus:ConnectionPoint`` (``/edev/{e}/cp``). The metering mirror's
views are in :mod:`gateway.sim.utility.mirrors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from gateway.north.sep2.der_resources import DER, DERList
from gateway.north.sep2.model import (
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlList,
    EventStatus,
)
from gateway.north.sep2.pubsub import LogEventList, Subscription, SubscriptionList
from gateway.north.sep2.resources import (
    DERProgram,
    DERProgramList,
    DeviceCapability,
    EndDevice,
    EndDeviceList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    Link,
    ListLink,
    Registration,
    Time,
)
from gateway.sim.utility import paths
from gateway.sim.utility.records import (
    Control,
    EndDeviceRecord,
    Fsa,
    Program,
    SubscriptionRecord,
)
from gateway.sim.utility.state import UtilityState

T = TypeVar("T")
DEFAULT_LIMIT = 1  # 2030.5 query strings: "l" defaults to 1


def page(items: Sequence[T], start: int, limit: int) -> list[T]:
    return list(items[start : start + limit])


def dcap(state: UtilityState) -> DeviceCapability:
    return DeviceCapability(
        href=paths.DCAP,
        pollRate=state.poll_rate("dcap"),
        TimeLink=Link(paths.TM),
        EndDeviceListLink=ListLink(paths.EDEV),
        MirrorUsagePointListLink=ListLink(paths.MUP, len(state.mups)),
    )


def time(state: UtilityState) -> Time:
    now = state.now()
    return Time(
        currentTime=now,
        dstEndTime=0,
        dstOffset=state.dst_offset,
        dstStartTime=0,
        quality=state.time_quality,
        tzOffset=state.tz_offset,
        localTime=now + state.tz_offset,
        href=paths.TM,
        pollRate=state.poll_rate("tm"),
    )


def end_device(e: EndDeviceRecord) -> EndDevice:
    n = e.number
    if e.virtual:  # the aggregator's own: what the reference server links from /edev/0
        return EndDevice(
            sFDI=e.sfdi,
            changedTime=e.changed_time,
            href=paths.edev(n),
            subscribable=0,
            lFDI=e.lfdi,
            enabled=True,
            SubscriptionListLink=ListLink(paths.sub_list(n), len(e.subscriptions)),
        )
    subscriptions = None
    if e.subscription_list:
        subscriptions = ListLink(paths.sub_list(n), len(e.subscriptions))
    return EndDevice(
        sFDI=e.sfdi,
        changedTime=e.changed_time,
        href=paths.edev(n),
        subscribable=1,  # notified: its postRate, its FSAs (subscribable.py)
        DERListLink=ListLink(paths.der_list(n), len(e.ders)),
        deviceCategory=e.device_category,
        lFDI=e.lfdi,
        enabled=True,
        FunctionSetAssignmentsListLink=ListLink(paths.fsa_list(n), len(e.fsas)),
        postRate=e.post_rate,
        RegistrationLink=None if e.pin is None else Link(paths.reg(n)),
        SubscriptionListLink=subscriptions,
        ConnectionPointLink=Link(paths.cp(n)),
        LogEventListLink=ListLink(paths.lel(n), len(e.log_events)),
    )


def end_device_list(
    state: UtilityState, visible: Sequence[EndDeviceRecord], start: int, limit: int
) -> EndDeviceList:
    # The aggregator's own EndDevice first, as the reference server lists it (envoy #87).
    ordered = sorted(visible, key=lambda e: (not e.virtual, e.sfdi, e.number))
    shown = page(ordered, start, limit)
    return EndDeviceList(
        all=len(ordered),
        results=len(shown),
        EndDevice=tuple(end_device(e) for e in shown),
        href=paths.EDEV,
        subscribable=1,  # notified: an EndDevice added or removed
        pollRate=state.poll_rate("edev"),
    )


def registration(state: UtilityState, e: EndDeviceRecord) -> Registration | None:
    if e.pin is None:
        return None
    return Registration(e.registered_at, e.pin, paths.reg(e.number), state.poll_rate("reg"))


def fsa(state: UtilityState, e: EndDeviceRecord, f: Fsa) -> FunctionSetAssignments:
    programs = [p for p in (_program_or_none(state, n) for n in f.programs) if p is not None]
    return FunctionSetAssignments(
        mRID=f.mrid,
        href=paths.fsa(e.number, f.number),
        subscribable=1,  # notified: its DERProgramList
        DERProgramListLink=ListLink(paths.derp_list(e.number, f.number), len(programs)),
        TimeLink=Link(paths.TM),
        description=f.description[:32] or None,
    )


def fsa_list(
    state: UtilityState, e: EndDeviceRecord, start: int, limit: int
) -> FunctionSetAssignmentsList:
    shown = page(e.fsas, start, limit)
    return FunctionSetAssignmentsList(
        all=len(e.fsas),
        results=len(shown),
        FunctionSetAssignments=tuple(fsa(state, e, f) for f in shown),
        href=paths.fsa_list(e.number),
        subscribable=1,
        pollRate=state.poll_rate("fsa"),
    )


def _program_or_none(state: UtilityState, number: int) -> Program | None:
    return next((p for p in state.programs if p.number == number), None)


def program(p: Program) -> DERProgram:
    return DERProgram(
        mRID=p.mrid,
        primacy=p.primacy,
        href=paths.derp(p.key),
        subscribable=1,
        description=p.description[:32] or None,
        version=p.version,
        # Linked only while there is one: a Link names a resource that exists (cactus S-ALL-49
        # GETs every DefaultDERControlLink and fails on a 404).
        DefaultDERControlLink=None if p.default is None else Link(paths.dderc(p.key)),
        DERControlListLink=ListLink(paths.derc_list(p.key), len(p.controls)),
    )


def derp_list(
    state: UtilityState, e: EndDeviceRecord, f: Fsa, start: int, limit: int
) -> DERProgramList:
    programs = [p for p in (_program_or_none(state, n) for n in f.programs) if p is not None]
    programs.sort(key=lambda p: (p.primacy, p.number))
    shown = page(programs, start, limit)
    return DERProgramList(
        all=len(programs),
        results=len(shown),
        DERProgram=tuple(program(p) for p in shown),
        href=paths.derp_list(e.number, f.number),
        subscribable=1,
        pollRate=state.poll_rate("derp"),
    )


def control(state: UtilityState, p: Program, c: Control) -> DERControl:
    status, since = c.status(state.now())
    return DERControl(
        mRID=c.mrid,
        creationTime=c.creation_time,
        EventStatus=EventStatus(currentStatus=status, dateTime=since),
        interval=DateTimeInterval(duration=c.duration, start=c.start),
        DERControlBase=c.base,
        description=c.description,
        version=c.version,
        randomizeDuration=c.randomize_duration,
        randomizeStart=c.randomize_start,
        deviceCategory=c.device_category,
        href=paths.derc(p.key, c.number),
        replyTo=c.reply_to,
        responseRequired=c.response_required,
    )


def control_list(state: UtilityState, p: Program, start: int, limit: int) -> DERControlList:
    now = state.now()
    listed = [c for c in p.controls if not state.hide_ended_controls or c.start + c.duration > now]
    ordered = sorted(listed, key=lambda c: (c.start, -c.creation_time, c.number))
    shown = page(ordered, start, limit)
    return DERControlList(
        all=len(ordered),
        results=len(shown),
        DERControl=tuple(control(state, p, c) for c in shown),
        href=paths.derc_list(p.key),
        subscribable=1,  # non-conditional subscriptions
    )


def default(p: Program) -> DefaultDERControl | None:
    if p.default is None:
        return None
    return replace(p.default, href=paths.dderc(p.key), subscribable=1)


def der(e: EndDeviceRecord, d: int) -> DER:
    return DER(
        href=paths.der(e.number, d),
        subscribable=0,
        DERAvailabilityLink=Link(paths.der_part(e.number, d, "dera")),
        DERCapabilityLink=Link(paths.der_part(e.number, d, "dercap")),
        DERSettingsLink=Link(paths.der_part(e.number, d, "derg")),
        DERStatusLink=Link(paths.der_part(e.number, d, "ders")),
    )


def der_list(state: UtilityState, e: EndDeviceRecord, start: int, limit: int) -> DERList:
    shown = page(e.ders, start, limit)
    return DERList(
        all=len(e.ders),
        results=len(shown),
        DER=tuple(der(e, d.number) for d in shown),
        href=paths.der_list(e.number),  # a List, not a SubscribableList: no subscribable
        pollRate=state.poll_rate("der"),
    )


def subscription(e: EndDeviceRecord, s: SubscriptionRecord) -> Subscription:
    return replace(s.resource, href=paths.sub(e.number, s.number))


def log_event_list(e: EndDeviceRecord, start: int, limit: int) -> LogEventList:
    shown = page(e.log_events, start, limit)
    return LogEventList(
        all=len(e.log_events),
        results=len(shown),
        LogEvent=tuple(
            replace(x, href=f"{paths.lel(e.number)}/{start + i + 1}") for i, x in enumerate(shown)
        ),
        href=paths.lel(e.number),
    )


def subscription_list(e: EndDeviceRecord, start: int, limit: int) -> SubscriptionList:
    shown = page(e.subscriptions, start, limit)
    return SubscriptionList(
        all=len(e.subscriptions),
        results=len(shown),
        Subscription=tuple(subscription(e, s) for s in shown),
        href=paths.sub_list(e.number),
    )
