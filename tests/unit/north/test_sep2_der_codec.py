"""2030.5 DER resources: round trips checked against the XSD, range errors, hostile bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.north.sep2 import codec, resources_codec
from gateway.north.sep2.der_resources import (
    DER,
    MODE_CONNECT,
    MODE_ENERGIZE,
    MODE_MAX_LIM_W,
    ConnectStatus,
    ConnectStatusType,
    DERAvailability,
    DERCapability,
    DERList,
    DERSettings,
    DERStatus,
    DERTypeCode,
    DOEModes,
    InverterStatusType,
    OperationalMode,
    OperationalModeStatusType,
    ReactivePower,
    StateOfChargeStatusType,
)
from gateway.north.sep2.model import ActivePower, Sep2ValueError
from gateway.north.sep2.resources import Link, ListLink
from gateway.north.sep2.xml import Sep2ParseError

if TYPE_CHECKING:
    from conftest import SepSchemas

NSDECL = 'xmlns="urn:ieee:std:2030.5:ns"'
CSIPDECL = 'xmlns:csipaus="https://csipaus.org/ns"'
ALL_DOE = DOEModes.EXP_LIM_W | DOEModes.IMP_LIM_W | DOEModes.GEN_LIM_W | DOEModes.LOAD_LIM_W
UP = ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE | ConnectStatus.OPERATING

DER_ = DER(
    href="/edev/1/der/1",
    subscribable=0,
    AssociatedDERProgramListLink=ListLink("/edev/1/der/1/derp", all=1),
    AssociatedUsagePointLink=Link("/mup/1"),
    CurrentDERProgramLink=Link("/derp/1"),
    DERAvailabilityLink=Link("/edev/1/der/1/dera"),
    DERCapabilityLink=Link("/edev/1/der/1/dercap"),
    DERSettingsLink=Link("/edev/1/der/1/derg"),
    DERStatusLink=Link("/edev/1/der/1/ders"),
)
DERCAP = DERCapability(
    href="/edev/1/der/1/dercap",
    modesSupported=MODE_CONNECT | MODE_ENERGIZE | MODE_MAX_LIM_W,
    rtgMaxChargeRateW=ActivePower(7400),
    rtgMaxDischargeRateW=ActivePower(74, 2),
    rtgMaxW=ActivePower(7400),
    type=DERTypeCode.EVSE,
    doeModesSupported=ALL_DOE,
)
DERSET = DERSettings(
    href="/edev/1/der/1/derg",
    subscribable=1,
    modesEnabled=MODE_ENERGIZE,
    setGradW=27,
    setMaxChargeRateW=ActivePower(7000),
    setMaxDischargeRateW=ActivePower(5000),
    setMaxW=ActivePower(7000),
    updatedTime=1764072000,
    doeModesEnabled=DOEModes.EXP_LIM_W | DOEModes.IMP_LIM_W,
)
DERSTAT = DERStatus(
    href="/edev/1/der/1/ders",
    genConnectStatus=ConnectStatusType(1764072000, UP),
    inverterStatus=InverterStatusType(1764072000, 4),
    operationalModeStatus=OperationalModeStatusType(1764072000, OperationalMode.OPERATIONAL),
    readingTime=1764072010,
    stateOfChargeStatus=StateOfChargeStatusType(1764072000, 5550),
    storConnectStatus=ConnectStatusType(1764072000, ConnectStatus.FAULT),
)
DERAVAIL = DERAvailability(
    href="/edev/1/der/1/dera",
    availabilityDuration=3600,
    maxChargeDuration=7200,
    readingTime=1764072000,
    reserveChargePercent=2000,
    reservePercent=1000,
    statVarAvail=ReactivePower(-1500),
    statWAvail=ActivePower(65, 2),
)

RESOURCES = [
    pytest.param(DER_, id="DER"),
    pytest.param(DER(), id="DER-empty"),
    pytest.param(DERList(all=2, results=2, DER=(DER_, DER()), href="/edev/1/der"), id="DERList"),
    pytest.param(DERList(all=0, results=0, pollRate=60), id="DERList-empty"),
    pytest.param(DERCAP, id="DERCapability"),
    pytest.param(
        DERCapability(0, ActivePower(0), 0, DOEModes(0)), id="DERCapability-minimal-csipaus"
    ),
    pytest.param(DERSET, id="DERSettings"),
    pytest.param(DERSettings(0, ActivePower(1, 4), 0), id="DERSettings-minimal"),
    pytest.param(DERSTAT, id="DERStatus"),
    pytest.param(DERStatus(readingTime=0), id="DERStatus-minimal"),
    pytest.param(DERAVAIL, id="DERAvailability"),
    pytest.param(DERAvailability(readingTime=0), id="DERAvailability-minimal"),
]


@pytest.mark.parametrize("resource", RESOURCES)
def test_round_trip_valid_against_schema(resource: object, sep_schema: SepSchemas) -> None:
    body = resources_codec.encode(resource)  # type: ignore[arg-type]
    # The CSIP-AUS 1.2 schema (2030.5-2018 redefined): DERCapability must carry doeModesSupported.
    sep_schema.assert_valid(body)
    assert resources_codec.decode(body) == resource
    assert codec.encode(resource) == body  # type: ignore[arg-type]
    assert codec.decode(body) == resource
    assert resources_codec.decode_as(body, type(resource)) == resource  # type: ignore[arg-type]


def test_us_csip_capability_has_no_doe_modes(sep_schema: SepSchemas) -> None:
    """US CSIP: no doeModesSupported. It decodes (None); the CSIP-AUS schema would refuse it,
    which is why the client writes the DOE modes whenever it talks to a CSIP-AUS server."""
    body = (
        f"<DERCapability {NSDECL}><modesSupported>00000004</modesSupported>"
        "<rtgMaxW><multiplier>0</multiplier><value>7400</value></rtgMaxW><type>82</type>"
        "</DERCapability>"
    ).encode()
    assert sep_schema.errors(body)  # CSIP-AUS 1.2 requires it
    decoded = codec.decode(body)
    assert isinstance(decoded, DERCapability)
    assert decoded.doeModesSupported is None
    written = codec.encode(decoded)
    assert b"doeModesSupported" not in written
    assert codec.decode(written) == decoded
    assert not sep_schema.errors(written, year=2023)  # plain 2030.5 takes it


def test_bitmaps_written_as_hex_and_named_bits() -> None:
    body = codec.encode(DERCAP).decode()
    assert "<modesSupported>0010000C</modesSupported>" in body
    assert "<csipaus:doeModesSupported>0F</csipaus:doeModesSupported>" in body
    status = codec.encode(DERSTAT).decode()
    assert "<value>07</value>" in status  # Connected | Available | Operating
    assert "<value>10</value>" in status  # Fault
    decoded = resources_codec.decode_as(codec.encode(DERSTAT), DERStatus)
    assert decoded.genConnectStatus is not None
    assert isinstance(decoded.genConnectStatus.value, ConnectStatus)
    assert ConnectStatus.CONNECTED in decoded.genConnectStatus.value
    assert ConnectStatus.FAULT not in decoded.genConnectStatus.value
    assert (
        DOEModes.LOAD_LIM_W
        in resources_codec.decode_as(codec.encode(DERCAP), DERCapability).doeModesSupported
    )


def test_settings_without_csipaus_has_no_csipaus_namespace() -> None:
    assert b"csipaus" not in codec.encode(DERSettings(0, ActivePower(1), 0))


def test_reference_bodies_read_lower_case_hex_and_unknown_elements() -> None:
    body = (
        f"<DERSettings {NSDECL} {CSIPDECL}><modesEnabled>0c</modesEnabled><setGradW>27</setGradW>"
        "<setMaxW><multiplier>3</multiplier><value>7</value></setMaxW><setMaxWh><multiplier>0"
        "</multiplier><value>1</value></setMaxWh><updatedTime>5</updatedTime>"
        "<csipaus:doeModesEnabled>03</csipaus:doeModesEnabled></DERSettings>"
    ).encode()
    s = resources_codec.decode_as(body, DERSettings)
    assert s.modesEnabled == MODE_CONNECT | MODE_ENERGIZE
    assert s.setMaxW.watts == 7000
    assert s.doeModesEnabled == DOEModes.EXP_LIM_W | DOEModes.IMP_LIM_W


# ------------------------------------------------------------------------------ range errors


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (DER(subscribable=4), "DER/@subscribable"),
        (DERList(all=1, results=1, DER=(DER(subscribable=-1),)), "DERList/DER[0]/@subscribable"),
        (DERCapability(-1, ActivePower(1), 0, DOEModes(0)), "DERCapability/modesSupported"),
        (DERCapability(2**32, ActivePower(1), 0, DOEModes(0)), "DERCapability/modesSupported"),
        (DERCapability(0, ActivePower(-1), 0, DOEModes(0)), "DERCapability/rtgMaxW/value"),
        (DERCapability(0, ActivePower(40000), 0, DOEModes(0)), "DERCapability/rtgMaxW/value"),
        (DERCapability(0, ActivePower(1, 10), 0, DOEModes(0)), "DERCapability/rtgMaxW/multiplier"),
        (DERCapability(0, ActivePower(1), 256, DOEModes(0)), "DERCapability/type"),
        (DERCapability(0, ActivePower(1), 0, DOEModes(256)), "DERCapability/doeModesSupported"),
        (DERSettings(65536, ActivePower(1), 0), "DERSettings/setGradW"),
        (DERSettings(-1, ActivePower(1), 0), "DERSettings/setGradW"),
        (DERSettings(0, ActivePower(1), 0, modesEnabled=2**32), "DERSettings/modesEnabled"),
        (
            DERSettings(0, ActivePower(1), 0, setMaxChargeRateW=ActivePower(-5)),
            "DERSettings/setMaxChargeRateW/value",
        ),
        (
            DERStatus(0, stateOfChargeStatus=StateOfChargeStatusType(0, 10001)),
            "DERStatus/stateOfChargeStatus/value",
        ),
        (
            DERStatus(0, genConnectStatus=ConnectStatusType(0, ConnectStatus(256))),
            "DERStatus/genConnectStatus/value",
        ),
        (
            DERStatus(0, operationalModeStatus=OperationalModeStatusType(0, 256)),
            "DERStatus/operationalModeStatus/value",
        ),
        (
            DERStatus(0, inverterStatus=InverterStatusType(2**63, 1)),
            "DERStatus/inverterStatus/dateTime",
        ),
        (DERAvailability(0, reservePercent=10001), "DERAvailability/reservePercent"),
        (DERAvailability(0, reserveChargePercent=-1), "DERAvailability/reserveChargePercent"),
        (DERAvailability(0, availabilityDuration=2**32), "DERAvailability/availabilityDuration"),
        (
            DERAvailability(0, statVarAvail=ReactivePower(-32769)),
            "DERAvailability/statVarAvail/value",
        ),
    ],
)
def test_encode_refuses_what_decode_refuses(resource: object, element: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        codec.encode(resource)  # type: ignore[arg-type]
    assert e.value.element == element


def test_range_bounds_accepted() -> None:
    cap = DERCapability(2**32 - 1, ActivePower(32767, 9), 255, DOEModes(255))
    assert codec.decode(codec.encode(cap)) == cap
    avail = DERAvailability(0, reservePercent=10000, statWAvail=ActivePower(-32768, -9))
    assert codec.decode(codec.encode(avail)) == avail


def test_der_list_counts_checked() -> None:
    with pytest.raises(Sep2ValueError, match="holds 1"):
        codec.encode(DERList(all=3, results=2, DER=(DER_,)))
    with pytest.raises(Sep2ValueError, match="more than @all"):
        codec.encode(DERList(all=0, results=1, DER=(DER_,)))


# ------------------------------------------------------------------------------ hostile bodies

_POWER = "<multiplier>0</multiplier><value>1</value>"

HOSTILE = [
    pytest.param(f"<DER {NSDECL}><DERStatusLink/></DER>".encode(), DER, id="der-link-without-href"),
    pytest.param(
        f'<DERList {NSDECL} all="1" results="1"><DER><DERStatusLink href="/a"/>'
        '<DERStatusLink href="/b"/></DER></DERList>'.encode(),
        DERList,
        id="derlist-duplicate-link",
    ),
    pytest.param(f'<DERList {NSDECL} all="1"/>'.encode(), DERList, id="derlist-no-results"),
    pytest.param(
        f"<DERCapability {NSDECL} {CSIPDECL}><modesSupported>0x04</modesSupported>"
        f"<rtgMaxW>{_POWER}</rtgMaxW><type>82</type>"
        "<csipaus:doeModesSupported>0F</csipaus:doeModesSupported></DERCapability>".encode(),
        DERCapability,
        id="dercap-hex-prefix",
    ),
    pytest.param(
        f"<DERSettings {NSDECL}><setGradW>1</setGradW><setMaxW><value>1</value></setMaxW>"
        "<updatedTime>0</updatedTime></DERSettings>".encode(),
        DERSettings,
        id="derset-power-no-multiplier",
    ),
    pytest.param(
        f"<DERSettings {NSDECL}><setGradW>1</setGradW><setMaxW>7000</setMaxW>"
        "<updatedTime>0</updatedTime></DERSettings>".encode(),
        DERSettings,
        id="derset-power-as-text",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "1">]>'
        + f"<DERStatus {NSDECL}><readingTime>&a;</readingTime></DERStatus>".encode(),
        DERStatus,
        id="derstatus-entity",
    ),
    pytest.param(
        f"<DERStatus {NSDECL}><genConnectStatus><value>01</value></genConnectStatus>"
        "<readingTime>0</readingTime></DERStatus>".encode(),
        DERStatus,
        id="derstatus-status-no-datetime",
    ),
    pytest.param(
        f"<DERStatus {NSDECL}><genConnectStatus><dateTime>0</dateTime><value>1</value>"
        "</genConnectStatus><readingTime>0</readingTime></DERStatus>".encode(),
        DERStatus,
        id="derstatus-odd-hex",
    ),
    pytest.param(
        f"<DERAvailability {NSDECL}><reservePercent>50.5</reservePercent>"
        "<readingTime>0</readingTime></DERAvailability>".encode(),
        DERAvailability,
        id="deravail-fraction",
    ),
    pytest.param(
        f"<DERAvailability {NSDECL}><readingTime>0</readingTime>".encode(),
        DERAvailability,
        id="deravail-not-well-formed",
    ),
    pytest.param(f"<DERStatus {NSDECL}/>".encode(), DERAvailability, id="deravail-wrong-root"),
    pytest.param(b"x" * (1 << 21), DERStatus, id="oversized"),
]


@pytest.mark.parametrize(("body", "cls"), HOSTILE)
def test_hostile_bodies_refused(body: bytes, cls: type) -> None:
    with pytest.raises(Sep2ParseError):
        resources_codec.decode_as(body, cls)
