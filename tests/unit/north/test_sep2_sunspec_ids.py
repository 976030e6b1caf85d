"""SunSpec CSIP group topologies (BASIC-002, CORE-010, CORE-011) through the walk and the session.

The CSIP procedures PDF is not redistributable; the shapes follow the titles as transcribed in
``shared/domain/sep2.md`` §2.2: BASIC-002 "7 FSAs / 7 programs / 3 EndDevices", CORE-010 "Function
Set Assignments (7-level topology)", CORE-011 "advanced FSA (15-level topology)". Each level of
the CSIP group hierarchy (service point, transformer, feeder, ... system) is one FSA holding one
DERProgram with one DERControl; the levels' primacies differ. The walk must find every FSA and
program of *our* EndDevice (not the other two), page through the FSA list, and the session must
offer every control once, with its own program's primacy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.core.messages import DefaultsReceived, EventReceived
from gateway.north.sep2 import codec
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
)
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
    Time,
)
from gateway.north.sep2.session import Session
from gateway.north.sep2.walk import Discovery, Reply, Request, discover

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
OTHERS = ("854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B", "0F3078CFDDAEE28DC20B95635DC116CC2A6D877F")
PAGE = 4
NOW = 1764072000


def _mrid(n: int) -> str:
    return f"{n:032X}"


def _ok(resource: codec.AnyResource) -> Reply:
    return Reply(200, codec.encode(resource), {"Content-Type": "application/sep+xml"})


def _pages(
    href: str, items: Sequence[Any], make: Callable[[int, Sequence[Any]], codec.AnyResource]
) -> dict[str, Reply]:
    out: dict[str, Reply] = {}
    for s in range(0, max(1, len(items)), PAGE):
        out[f"{href}?s={s}&l={PAGE}"] = _ok(make(len(items), items[s : s + PAGE]))
    return out


def _server(levels: int) -> dict[str, Reply]:
    """Three EndDevices, ours the last; ours has ``levels`` FSAs, one program and control each.
    The other EndDevices' FSA lists are not served: reading them would be a 404."""
    edevs = [
        EndDevice(
            href=f"/edev/{n}",
            sFDI=167261211391,
            changedTime=NOW,
            lFDI=lfdi,
            FunctionSetAssignmentsListLink=ListLink(f"/edev/{n}/fsa", all=levels if n == 3 else 1),
        )
        for n, lfdi in ((1, OTHERS[0]), (2, OTHERS[1]), (3, LFDI))
    ]
    fsas: list[FunctionSetAssignments] = []
    server: dict[str, Reply] = {}
    for k in range(1, levels + 1):
        fsa = FunctionSetAssignments(
            href=f"/fsa/{k}", mRID=_mrid(k), DERProgramListLink=ListLink(f"/fsa/{k}/derp", all=1)
        )
        program = DERProgram(
            href=f"/derp/{k}",
            mRID=_mrid(100 + k),
            primacy=k,  # level k: service point (1) ... system (levels)
            DefaultDERControlLink=Link(f"/derp/{k}/dderc"),
            DERControlListLink=ListLink(f"/derp/{k}/derc", all=1),
        )
        control = DERControl(
            href=f"/derp/{k}/derc/1",
            mRID=_mrid(200 + k),
            creationTime=NOW,
            EventStatus=EventStatus(currentStatus=0, dateTime=NOW),
            interval=DateTimeInterval(duration=600, start=NOW + 3600),
            DERControlBase=DERControlBase(opModExpLimW=ActivePower(100 * k)),
        )
        default = DefaultDERControl(
            href=f"/derp/{k}/dderc",
            mRID=_mrid(300 + k),
            DERControlBase=DERControlBase(opModExpLimW=ActivePower(1000 + k)),
        )
        fsas.append(fsa)
        server[f"/fsa/{k}/derp?s=0&l={PAGE}"] = _ok(
            DERProgramList(all=1, results=1, DERProgram=(program,))
        )
        server[f"/derp/{k}/derc?s=0&l={PAGE}"] = _ok(
            DERControlList(all=1, results=1, DERControl=(control,))
        )
        server[f"/derp/{k}/dderc"] = _ok(default)
    server |= {
        "/dcap": _ok(
            DeviceCapability(
                href="/dcap",
                pollRate=60,
                TimeLink=Link("/tm"),
                EndDeviceListLink=ListLink("/edev", all=3),
            )
        ),
        "/tm": _ok(
            Time(
                href="/tm",
                currentTime=NOW,
                dstEndTime=0,
                dstOffset=0,
                dstStartTime=0,
                quality=7,
                tzOffset=0,
            )
        ),
    }
    server |= _pages(
        "/edev",
        edevs,
        lambda n, page: EndDeviceList(all=n, results=len(page), EndDevice=tuple(page)),
    )
    server |= _pages(
        "/edev/3/fsa",
        fsas,
        lambda n, page: FunctionSetAssignmentsList(
            all=n, results=len(page), FunctionSetAssignments=tuple(page)
        ),
    )
    return server


def _walk(server: Mapping[str, Reply]) -> tuple[Discovery, list[str]]:
    walk = discover("/dcap", lfdi=LFDI, pin=None, page_size=PAGE)
    log: list[Request] = []
    request = next(walk)
    while True:
        log.append(request)
        try:
            request = walk.send(server.get(request.href, Reply(404, b"", {})))
        except StopIteration as done:
            found: Discovery = done.value
            return found, [r.href for r in log]


def _check_topology(levels: int) -> None:
    found, hrefs = _walk(_server(levels))
    assert found.end_device.lFDI == LFDI
    assert [f.href for f in found.fsas] == [f"/fsa/{k}" for k in range(1, levels + 1)]
    assert [v.program.primacy for v in found.programs] == list(range(1, levels + 1))
    assert all(len(v.controls) == 1 and v.default is not None for v in found.programs)
    assert not any(h.startswith(("/edev/1/", "/edev/2/")) for h in hrefs)  # only our groups
    assert len(hrefs) == len(set(hrefs))  # nothing read twice

    up = Session().discovered(found, at=float(NOW), t=0)
    events = [i.event for i in up.inputs if isinstance(i, EventReceived)]
    defaults = [i for i in up.inputs if isinstance(i, DefaultsReceived)]
    assert [(e.mrid, e.primacy, e.controls.export_limit_w) for e in events] == [
        (_mrid(200 + k), k, 100.0 * k) for k in range(1, levels + 1)
    ]
    assert len(defaults) == levels


def test_BASIC_002_seven_fsas_seven_programs_three_end_devices() -> None:
    _check_topology(7)


def test_CORE_010_seven_level_fsa_topology_paged() -> None:
    _check_topology(7)  # 7 FSAs over two pages of 4


def test_CORE_011_fifteen_level_fsa_topology() -> None:
    _check_topology(15)
