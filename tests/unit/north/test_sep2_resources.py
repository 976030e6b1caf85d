"""2030.5 walk resources: round trips checked against the XSD, range errors, hostile bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.north.sep2 import codec, resources_codec
from gateway.north.sep2.model import Sep2ValueError
from gateway.north.sep2.resources import (
    DEFAULT_POLL_RATE_S,
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
    poll_rate_s,
)
from gateway.north.sep2.xml import Sep2ParseError

if TYPE_CHECKING:
    from conftest import SepSchemas

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
SFDI = 167261211391
MRID = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
NSDECL = 'xmlns="urn:ieee:std:2030.5:ns"'

DCAP = DeviceCapability(
    href="/dcap",
    pollRate=60,
    DERProgramListLink=ListLink("/derp", all=1),
    TimeLink=Link("/tm"),
    EndDeviceListLink=ListLink("/edev", all=1),
    MirrorUsagePointListLink=ListLink("/mup", all=0),
    SelfDeviceLink=Link("/sdev"),
)
TIME = Time(
    href="/tm",
    currentTime=1764072000,
    dstEndTime=1775318400,
    dstOffset=3600,
    dstStartTime=1759593600,
    localTime=1764111600,
    quality=4,
    tzOffset=36000,
    pollRate=900,
)
EDEV = EndDevice(
    href="/edev/1",
    subscribable=0,
    DERListLink=ListLink("/edev/1/der", all=1),
    deviceCategory="0200",
    lFDI=LFDI,
    sFDI=SFDI,
    changedTime=1764072000,
    enabled=True,
    FunctionSetAssignmentsListLink=ListLink("/edev/1/fsa", all=1),
    postRate=300,
    RegistrationLink=Link("/edev/1/rg"),
    SubscriptionListLink=ListLink("/edev/1/sub", all=0),
)
EDEV_CSIP = EndDevice(sFDI=SFDI, changedTime=0, ConnectionPointLink=Link("/edev/1/cp"))
REG = Registration(href="/edev/1/rg", dateTimeRegistered=1764000000, pIN=111115, pollRate=86400)
FSA = FunctionSetAssignments(
    href="/edev/1/fsa/1",
    subscribable=1,
    mRID=MRID,
    DERProgramListLink=ListLink("/edev/1/fsa/1/derp", all=2),
    TimeLink=Link("/tm"),
    description="Site FSA",
    version=3,
)
DERP = DERProgram(
    href="/derp/1",
    mRID=MRID,
    description="DOE program",
    version=1,
    ActiveDERControlListLink=ListLink("/derp/1/actderc", all=1),
    DefaultDERControlLink=Link("/derp/1/dderc"),
    DERControlListLink=ListLink("/derp/1/derc", all=5),
    DERCurveListLink=ListLink("/derp/1/dc", all=0),
    primacy=1,
)

RESOURCES = [
    pytest.param(Link("/tm"), id="Link"),
    pytest.param(ListLink("/edev", all=3), id="ListLink"),
    pytest.param(DeviceCapability(), id="DeviceCapability-empty"),
    pytest.param(DCAP, id="DeviceCapability"),
    pytest.param(TIME, id="Time"),
    pytest.param(Time(0, 0, 0, 0, 7, -18000), id="Time-minimal"),
    pytest.param(EDEV, id="EndDevice"),
    pytest.param(EDEV_CSIP, id="EndDevice-csipaus"),
    pytest.param(EndDeviceList(all=2, results=1, EndDevice=(EDEV,), href="/edev"), id="EDList"),
    pytest.param(EndDeviceList(all=0, results=0, pollRate=60), id="EndDeviceList-empty"),
    pytest.param(REG, id="Registration"),
    pytest.param(FSA, id="FunctionSetAssignments"),
    pytest.param(
        FunctionSetAssignmentsList(all=1, results=1, FunctionSetAssignments=(FSA,)), id="FSAList"
    ),
    pytest.param(DERP, id="DERProgram"),
    pytest.param(DERProgram(mRID="AB", primacy=0), id="DERProgram-minimal"),
    pytest.param(DERProgramList(all=3, results=2, DERProgram=(DERP, DERP), href="/derp"), id="DPL"),
]


@pytest.mark.parametrize("resource", RESOURCES)
def test_round_trip_valid_against_schema(resource: object, sep_schema: SepSchemas) -> None:
    body = resources_codec.encode(resource)  # type: ignore[arg-type]
    sep_schema.assert_valid(body)
    assert resources_codec.decode(body) == resource
    # codec dispatches to the walk resources both ways.
    assert codec.encode(resource) == body  # type: ignore[arg-type]
    assert codec.decode(body) == resource
    assert resources_codec.decode_as(body, type(resource)) == resource  # type: ignore[arg-type]


def test_poll_rate_default() -> None:
    assert poll_rate_s(DeviceCapability()) == DEFAULT_POLL_RATE_S == 900
    assert poll_rate_s(DCAP) == 60


def test_reference_dcap_reads_ignoring_unknown_elements() -> None:
    body = f"""<DeviceCapability {NSDECL} href="/dcap" pollRate="300">
      <TimeLink href="/tm"/>
      <EndDeviceListLink href="/edev" all="1"/>
      <MirrorUsagePointListLink href="/mup" all="0"/>
      <SomethingNew>x</SomethingNew>
    </DeviceCapability>""".encode()
    d = resources_codec.decode_as(body, DeviceCapability)
    assert d.pollRate == 300
    assert d.TimeLink == Link("/tm")
    assert d.EndDeviceListLink == ListLink("/edev", all=1)


def test_lfdi_upper_cased() -> None:
    body = f"<EndDevice {NSDECL}><lFDI>{LFDI.lower()}</lFDI><sFDI>{SFDI}</sFDI>"
    body += "<changedTime>0</changedTime></EndDevice>"
    assert resources_codec.decode_as(body.encode(), EndDevice).lFDI == LFDI


# ------------------------------------------------------------------------------ range errors


@pytest.mark.parametrize("rate", ["-1", "4294967296", "abc", "1.5"])
@pytest.mark.parametrize("root", ["DeviceCapability", "Registration", "Time"])
def test_poll_rate_out_of_range(root: str, rate: str) -> None:
    inner = {
        "DeviceCapability": "",
        "Registration": "<dateTimeRegistered>0</dateTimeRegistered><pIN>1</pIN>",
        "Time": "<currentTime>0</currentTime><dstEndTime>0</dstEndTime><dstOffset>0</dstOffset>"
        "<dstStartTime>0</dstStartTime><quality>3</quality><tzOffset>0</tzOffset>",
    }[root]
    body = f'<{root} {NSDECL} pollRate="{rate}">{inner}</{root}>'.encode()
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(body)
    assert e.value.element == f"{root}/@pollRate"


def test_poll_rate_max_accepted() -> None:
    body = f'<DeviceCapability {NSDECL} pollRate="4294967295"/>'.encode()
    assert resources_codec.decode_as(body, DeviceCapability).pollRate == 2**32 - 1


def _edev(lfdi: str = LFDI, sfdi: str = str(SFDI)) -> bytes:
    return (
        f"<EndDevice {NSDECL}><lFDI>{lfdi}</lFDI><sFDI>{sfdi}</sFDI>"
        "<changedTime>0</changedTime></EndDevice>"
    ).encode()


@pytest.mark.parametrize("lfdi", ["XYZ", LFDI[:-1], LFDI + "00", "3E4F-5AB3", ""])
def test_bad_lfdi(lfdi: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        resources_codec.decode(_edev(lfdi=lfdi))
    assert e.value.element == "EndDevice/lFDI"


@pytest.mark.parametrize("sfdi", ["-1", "687194767360", "99999999999999", "1e3"])
def test_sfdi_out_of_range(sfdi: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        resources_codec.decode(_edev(sfdi=sfdi))
    assert e.value.element == "EndDevice/sFDI"


def test_sfdi_bound_accepted() -> None:
    assert resources_codec.decode_as(_edev(sfdi="687194767359"), EndDevice).sFDI == 687194767359


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (Registration(dateTimeRegistered=0, pIN=1000000), "Registration/pIN"),
        (Registration(dateTimeRegistered=0, pIN=-1), "Registration/pIN"),
        (Registration(dateTimeRegistered=0, pIN=1, pollRate=-5), "Registration/@pollRate"),
        (EndDevice(sFDI=SFDI, changedTime=0, subscribable=4), "EndDevice/@subscribable"),
        (EndDevice(sFDI=SFDI, changedTime=0, postRate=2**32), "EndDevice/postRate"),
        (EndDevice(sFDI=SFDI, changedTime=0, deviceCategory="XY"), "EndDevice/deviceCategory"),
        (Time(0, 0, 2**31, 0, 3, 0), "Time/dstOffset"),
        (Time(0, 0, 0, 0, 256, 0), "Time/quality"),
        (DERProgram(mRID=MRID, primacy=256), "DERProgram/primacy"),
        (DERProgram(mRID="0G", primacy=1), "DERProgram/mRID"),
        (DERProgram(mRID=MRID, primacy=1, description="x" * 33), "DERProgram/description"),
        (FunctionSetAssignments(mRID=MRID, version=65536), "FunctionSetAssignments/version"),
        (DeviceCapability(TimeLink=Link("/tm"), EndDeviceListLink=ListLink("/e", all=-1)), None),
        (
            EndDeviceList(all=1, results=1, EndDevice=(EndDevice(sFDI=-1, changedTime=0),)),
            "EndDeviceList/EndDevice[0]/sFDI",
        ),
    ],
)
def test_encode_refuses_what_decode_refuses(resource: object, element: str | None) -> None:
    with pytest.raises(Sep2ValueError) as e:
        codec.encode(resource)  # type: ignore[arg-type]
    if element is not None:
        assert e.value.element == element


@pytest.mark.parametrize(
    ("resource", "match"),
    [
        (EndDeviceList(all=1, results=2, EndDevice=(EDEV,)), "holds 1"),
        (DERProgramList(all=1, results=2, DERProgram=(DERP, DERP)), "more than @all"),
        (FunctionSetAssignmentsList(all=5, results=0, FunctionSetAssignments=(FSA,)), "holds 1"),
    ],
)
def test_list_counts_checked(resource: object, match: str) -> None:
    with pytest.raises(Sep2ValueError, match=match):
        codec.encode(resource)  # type: ignore[arg-type]


@pytest.mark.parametrize("root", ["EndDeviceList", "DERProgramList", "FunctionSetAssignmentsList"])
def test_list_needs_all_and_results(root: str) -> None:
    with pytest.raises(Sep2ValueError, match="are required"):
        codec.decode(f'<{root} {NSDECL} all="0"/>'.encode())


# ------------------------------------------------------------------------------ hostile bodies

HOSTILE = [
    pytest.param(b"<DeviceCapability/>", DeviceCapability, id="dcap-no-namespace"),
    pytest.param(
        f"<Time {NSDECL}><currentTime>0</currentTime></Time>".encode(), Time, id="time-missing"
    ),
    pytest.param(f"<Time {NSDECL}/>".encode(), EndDevice, id="edev-wrong-root"),
    pytest.param(
        f'<EndDeviceList {NSDECL} all="1" results="1"><EndDevice><sFDI>1</sFDI>'
        "<sFDI>2</sFDI><changedTime>0</changedTime></EndDevice></EndDeviceList>".encode(),
        EndDeviceList,
        id="edevlist-duplicate-element",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
        + f"<Registration {NSDECL}><dateTimeRegistered>&a;</dateTimeRegistered>"
        "<pIN>1</pIN></Registration>".encode(),
        Registration,
        id="registration-entity",
    ),
    pytest.param(
        f"<FunctionSetAssignments {NSDECL}><TimeLink/><mRID>AB</mRID>"
        "</FunctionSetAssignments>".encode(),
        FunctionSetAssignments,
        id="fsa-link-without-href",
    ),
    pytest.param(
        f'<FunctionSetAssignmentsList {NSDECL} all="1" results="1">'
        "</FunctionSetAssignmentsList>".encode(),
        FunctionSetAssignmentsList,
        id="fsalist-results-lie",
    ),
    pytest.param(
        f"<DERProgram {NSDECL}><mRID>AB</mRID><primacy><x/></primacy></DERProgram>".encode(),
        DERProgram,
        id="derp-element-content",
    ),
    pytest.param(
        f'<DERProgramList {NSDECL} all="1" results="1"><DERProgram>'.encode(),
        DERProgramList,
        id="derplist-not-well-formed",
    ),
    pytest.param(f"<DERControlList {NSDECL}/>".encode(), DERProgramList, id="derplist-wrong-root"),
    pytest.param(f"<Link {NSDECL}/>".encode(), Link, id="link-without-href"),
    pytest.param(
        f'<ListLink {NSDECL} href="/x" all="-1"/>'.encode(), ListLink, id="listlink-bad-all"
    ),
    pytest.param(b"x" * (1 << 21), DeviceCapability, id="oversized"),
]


@pytest.mark.parametrize(("body", "cls"), HOSTILE)
def test_hostile_bodies_refused(body: bytes, cls: type) -> None:
    with pytest.raises(Sep2ParseError):
        resources_codec.decode_as(body, cls)


def test_unknown_root_named_in_error() -> None:
    with pytest.raises(Sep2ParseError, match="unsupported resource Foo"):
        codec.decode(f"<Foo {NSDECL}/>".encode())
    with pytest.raises(Sep2ParseError, match="unsupported resource DERControl"):
        resources_codec.decode(f"<DERControl {NSDECL}/>".encode())


def test_decode_as_rejects_non_resource_class() -> None:
    with pytest.raises(TypeError):
        resources_codec.decode_as(f'<Link {NSDECL} href="/x"/>'.encode(), int)  # type: ignore[type-var]
