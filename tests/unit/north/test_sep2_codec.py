"""2030.5 codec: reference documents, round trips checked against the XSD, hostile bodies, mapping.

Every encoded body is validated against sep.xsd as redefined by CSIP-AUS (``sep_schema``, found
at test time: see conftest.py); the reference documents below are written for these tests in
the style of the CSIP-AUS examples.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.core.schedule import EventStatus as CoreEventStatus
from gateway.north.sep2 import codec, mapping
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
    Response,
    Sep2ValueError,
)
from gateway.north.sep2.xml import Sep2ParseError, parse

if TYPE_CHECKING:
    from conftest import SepSchemas

# ------------------------------------------------------------------ reference documents

DOE_EVENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<DERControl xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="https://csipaus.org/ns"
    href="/derp/1/derc/7" replyTo="/rsp/1" responseRequired="03">
  <mRID>0A1B2C3D4E5F60718293A4B5C6D7E8F9</mRID>
  <description>Evening export cap</description>
  <creationTime>1764072000</creationTime>
  <EventStatus>
    <currentStatus>0</currentStatus>
    <dateTime>1764072000</dateTime>
    <potentiallySuperseded>false</potentiallySuperseded>
  </EventStatus>
  <interval>
    <duration>7200</duration>
    <start>1764090000</start>
  </interval>
  <randomizeStart>60</randomizeStart>
  <DERControlBase>
    <opModEnergize>true</opModEnergize>
    <opModMaxLimW>5000</opModMaxLimW>
    <rampTms>1500</rampTms>
    <csipaus:opModImpLimW><multiplier>1</multiplier><value>1500</value></csipaus:opModImpLimW>
    <csipaus:opModExpLimW><multiplier>0</multiplier><value>500</value></csipaus:opModExpLimW>
    <csipaus:opModGenLimW><multiplier>3</multiplier><value>5</value></csipaus:opModGenLimW>
  </DERControlBase>
</DERControl>
"""

DOE_EVENT_MODEL = DERControl(
    mRID="0A1B2C3D4E5F60718293A4B5C6D7E8F9",
    description="Evening export cap",
    creationTime=1764072000,
    EventStatus=EventStatus(currentStatus=0, dateTime=1764072000, potentiallySuperseded=False),
    interval=DateTimeInterval(duration=7200, start=1764090000),
    randomizeStart=60,
    DERControlBase=DERControlBase(
        opModEnergize=True,
        opModMaxLimW=5000,
        rampTms=1500,
        opModImpLimW=ActivePower(1500, 1),
        opModExpLimW=ActivePower(500, 0),
        opModGenLimW=ActivePower(5, 3),
    ),
    href="/derp/1/derc/7",
    replyTo="/rsp/1",
    responseRequired=3,
)

DEFAULT_CONTROL = b"""<DefaultDERControl xmlns="urn:ieee:std:2030.5:ns"
    xmlns:csipaus="https://csipaus.org/ns" href="/derp/1/dderc">
  <mRID>00000000000000000000000000000D01</mRID>
  <DERControlBase>
    <opModConnect>true</opModConnect>
    <opModEnergize>true</opModEnergize>
    <csipaus:opModExpLimW><multiplier>0</multiplier><value>1500</value></csipaus:opModExpLimW>
  </DERControlBase>
  <setGradW>27</setGradW>
</DefaultDERControl>
"""

LIST_WITH_A_CURVE = b"""<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="1" results="1"
    href="/derp/1/derc">
  <DERControl>
    <mRID>AB00000000000000000000000000CD01</mRID>
    <creationTime>1764072000</creationTime>
    <EventStatus>
      <currentStatus>1</currentStatus>
      <dateTime>1764072100</dateTime>
      <potentiallySuperseded>true</potentiallySuperseded>
      <potentiallySupersededTime>1764072100</potentiallySupersededTime>
    </EventStatus>
    <interval><duration>600</duration><start>1764072000</start></interval>
    <DERControlBase>
      <opModConnect>false</opModConnect>
      <opModVoltVar href="/curves/1"/>
    </DERControlBase>
  </DERControl>
</DERControlList>
"""

RESPONSE = b"""<Response xmlns="urn:ieee:std:2030.5:ns">
  <createdDateTime>1764090000</createdDateTime>
  <endDeviceLFDI>3E4F45AB31EDFE5B67E343E5E4562E31984E23E5</endDeviceLFDI>
  <status>2</status>
  <subject>0A1B2C3D4E5F60718293A4B5C6D7E8F9</subject>
</Response>
"""


def test_reference_documents_are_schema_valid(sep_schema: SepSchemas) -> None:
    for body in (DOE_EVENT, DEFAULT_CONTROL, LIST_WITH_A_CURVE, RESPONSE):
        sep_schema.assert_valid(body)


def test_reference_der_control_decodes_to_the_standards_values() -> None:
    assert codec.decode(DOE_EVENT) == DOE_EVENT_MODEL


def test_reference_default_list_and_response_decode() -> None:
    default = codec.decode(DEFAULT_CONTROL)
    assert isinstance(default, DefaultDERControl)
    assert default.DERControlBase.opModExpLimW == ActivePower(1500, 0)
    assert default.setGradW == 27
    lst = codec.decode(LIST_WITH_A_CURVE)
    assert isinstance(lst, DERControlList)
    assert lst.all == lst.results == 1
    (item,) = lst.DERControl
    assert item.DERControlBase.opModConnect is False
    assert item.DERControlBase.unsupported == ("opModVoltVar",)
    assert item.EventStatus.potentiallySupersededTime == 1764072100
    assert codec.decode(RESPONSE) == Response(
        createdDateTime=1764090000,
        endDeviceLFDI="3E4F45AB31EDFE5B67E343E5E4562E31984E23E5",
        status=2,
        subject="0A1B2C3D4E5F60718293A4B5C6D7E8F9",
    )


# ------------------------------------------------------------------ round trips


def test_der_control_round_trip_is_schema_valid(sep_schema: SepSchemas) -> None:
    body = codec.encode(DOE_EVENT_MODEL)
    sep_schema.assert_valid(body)
    assert codec.decode(body) == DOE_EVENT_MODEL


def test_csipaus_elements_are_written_after_every_sep_element() -> None:
    root = parse(codec.encode(DOE_EVENT_MODEL))
    base = root.find("{urn:ieee:std:2030.5:ns}DERControlBase")
    names = [child.tag for child in base]
    first_csip = next(i for i, n in enumerate(names) if n.startswith("{https://csipaus.org/ns}"))
    assert all(n.startswith("{https://csipaus.org/ns}") for n in names[first_csip:])
    assert names[-3:] == [
        "{https://csipaus.org/ns}opModImpLimW",
        "{https://csipaus.org/ns}opModExpLimW",
        "{https://csipaus.org/ns}opModGenLimW",
    ]


def test_the_schema_itself_rejects_csipaus_before_sep_elements(sep_schema: SepSchemas) -> None:
    """The oracle is sharp: the order our encoder keeps is the one the schema demands."""
    swapped = DOE_EVENT.replace(b"<opModEnergize>true</opModEnergize>", b"").replace(
        b"</DERControlBase>", b"<opModEnergize>true</opModEnergize></DERControlBase>"
    )
    assert sep_schema.errors(swapped)


def test_list_default_and_response_round_trips(sep_schema: SepSchemas) -> None:
    resources = [
        DERControlList(all=3, results=1, DERControl=(DOE_EVENT_MODEL,), href="/derp/1/derc"),
        DERControlList(all=0, results=0),
        DefaultDERControl(
            mRID="00000000000000000000000000000D01",
            DERControlBase=DERControlBase(opModEnergize=True, opModLoadLimW=ActivePower(7000, 0)),
            setESDelay=30000,
            setESRandomDelay=6000,
            setGradW=27,
            href="/derp/1/dderc",
        ),
        Response(endDeviceLFDI="3E4F45AB31EDFE5B67E343E5E4562E31984E23E5", subject="0A1B"),
        Response(
            endDeviceLFDI="3E4F45AB31EDFE5B67E343E5E4562E31984E23E5",
            subject="0A1B2C3D4E5F60718293A4B5C6D7E8F9",
            status=253,
            createdDateTime=1764090000,
            href="/rsp/1/1",
        ),
    ]
    for resource in resources:
        body = codec.encode(resource)
        sep_schema.assert_valid(body)
        assert codec.decode(body) == resource


def test_2023_permits_round_trip_and_validate_against_the_2023_schema(
    sep_schema: SepSchemas,
) -> None:
    control = DERControl(
        mRID="00000000000000000000000000002023",
        creationTime=1764072000,
        EventStatus=EventStatus(currentStatus=1, dateTime=1764072000),
        interval=DateTimeInterval(duration=3600, start=1764072000),
        DERControlBase=DERControlBase(
            opModConnect=True,
            opModFixedW=-5000,
            opModGridConnectPermit=False,
            opModIslandPermit=True,
            opModTargetW=ActivePower(-3300, 0),
        ),
    )
    body = codec.encode(control)
    sep_schema.assert_valid(body, year=2023)
    assert sep_schema.errors(body)  # not 2018 elements: CSIP-AUS 1.2 rejects them
    assert codec.decode(body) == control


_int16 = st.integers(-32768, 32767)
_power = st.builds(ActivePower, value=_int16, multiplier=st.integers(-9, 9))
_limit = st.builds(ActivePower, value=st.integers(0, 32767), multiplier=st.integers(-9, 9))
_bases = st.builds(
    DERControlBase,
    opModConnect=st.none() | st.booleans(),
    opModEnergize=st.none() | st.booleans(),
    opModFixedW=st.none() | st.integers(-10000, 10000),
    opModMaxLimW=st.none() | st.integers(0, 10000),
    opModTargetW=st.none() | _power,
    rampTms=st.none() | st.integers(0, 65535),
    opModImpLimW=st.none() | _limit,
    opModExpLimW=st.none() | _limit,
    opModGenLimW=st.none() | _limit,
    opModLoadLimW=st.none() | _limit,
)
_ascii = st.characters(codec="ascii", min_codepoint=33, max_codepoint=126)
_hex_id = st.binary(min_size=1, max_size=16).map(lambda b: b.hex().upper())
_controls = st.builds(
    DERControl,
    mRID=_hex_id,
    creationTime=st.integers(0, 2**40),
    EventStatus=st.builds(
        EventStatus,
        currentStatus=st.integers(0, 4),
        dateTime=st.integers(0, 2**40),
        potentiallySuperseded=st.booleans(),
        potentiallySupersededTime=st.none() | st.integers(0, 2**40),
        reason=st.none() | st.text(_ascii, max_size=20),
    ),
    interval=st.builds(
        DateTimeInterval, duration=st.integers(0, 366 * 86400), start=st.integers(0, 2**40)
    ),
    DERControlBase=_bases,
    description=st.none() | st.text(_ascii, max_size=32),
    version=st.none() | st.integers(0, 65535),
    randomizeDuration=st.none() | st.integers(-3600, 3600),
    randomizeStart=st.none() | st.integers(-3600, 3600),
    responseRequired=st.none() | st.integers(0, 255),
    replyTo=st.none() | st.just("/rsp/1"),
    href=st.none() | st.just("/derp/1/derc/1"),
)


@settings(max_examples=150, deadline=None)
@given(control=_controls)
def test_any_der_control_round_trips_and_is_schema_valid(
    sep_schema: SepSchemas, control: DERControl
) -> None:
    body = codec.encode(control)
    sep_schema.assert_valid(body)
    assert codec.decode(body) == control


# ------------------------------------------------------------------ ActivePower scaling


@given(watts=st.floats(min_value=-32767e9, max_value=32767e9, allow_nan=False))
def test_watts_to_active_power_and_back_within_one_unit(watts: float) -> None:
    p = ActivePower.from_watts(watts)
    assert -32768 <= p.value <= 32767
    assert 0 <= p.multiplier <= 9
    assert math.isclose(p.watts, watts, abs_tol=10**p.multiplier, rel_tol=1e-12)
    if p.multiplier > 0:  # the smallest multiplier that fits: one less would overflow
        assert abs(round(watts / 10 ** (p.multiplier - 1))) > 32767


@given(watts=st.floats(min_value=-3000, max_value=3000, allow_nan=False))
def test_fractional_watts_with_a_negative_minimum_multiplier(watts: float) -> None:
    p = ActivePower.from_watts(watts, min_multiplier=-3)
    assert math.isclose(p.watts, watts, abs_tol=10**p.multiplier)


def test_active_power_scaling_examples() -> None:
    assert ActivePower.from_watts(500) == ActivePower(500, 0)
    assert ActivePower.from_watts(40000) == ActivePower(4000, 1)
    assert ActivePower.from_watts(-1_500_000) == ActivePower(-15000, 2)
    assert ActivePower(5, 3).watts == 5000.0
    assert ActivePower(1234, -2).watts == pytest.approx(12.34)
    with pytest.raises(ValueError, match="does not fit"):
        ActivePower.from_watts(4e13)
    with pytest.raises(ValueError):
        ActivePower.from_watts(math.nan)


# ------------------------------------------------------------------ hostile and invalid bodies

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Response xmlns="urn:ieee:std:2030.5:ns"><subject>&lol4;</subject></Response>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response xmlns="urn:ieee:std:2030.5:ns"><subject>&xxe;</subject></Response>
"""
PLAIN_DOCTYPE = b'<!DOCTYPE Response><Response xmlns="urn:ieee:std:2030.5:ns"/>'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (XXE, "DOCTYPE"),
        (PLAIN_DOCTYPE, "DOCTYPE"),
        # The byte pre-check cannot see a UTF-16 DOCTYPE; the parsed-document check does.
        (PLAIN_DOCTYPE.decode().encode("utf-16"), "DOCTYPE"),
        (XXE.decode().encode("utf-16"), "DOCTYPE"),
        (BILLION_LAUGHS.decode().encode("utf-16"), "DOCTYPE"),
        (XXE.replace(b"<!DOCTYPE r [<!ENTITY xxe", b"<!doctype r [<!entity xxe"), "well-formed"),
        (b"", "empty"),
        (b"not xml", "well-formed"),
        (b"<Response xmlns='urn:ieee:std:2030.5:ns'>", "well-formed"),
        (b'<Response xmlns="http://ieee.org/2030.5"/>', "expected the 2030.5 namespace"),
        (b"<Response/>", "expected the 2030.5 namespace"),
        (
            DOE_EVENT.replace(b"https://csipaus.org/ns", b"http://csipaus.org/ns"),
            "https, not http",
        ),
        (b'<x:DERControl xmlns:x="http://csipaus.org/ns"/>', "https, not http"),
        (b'<DERCurve xmlns="urn:ieee:std:2030.5:ns"/>', "unsupported resource DERCurve"),
    ],
)
def test_hostile_or_foreign_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(Sep2ParseError, match=message):
        codec.decode(body)


def test_oversize_body_is_refused_before_parsing() -> None:
    body = b"<Response xmlns='urn:ieee:std:2030.5:ns'>" + b" " * (10 * 1024 * 1024) + b"</Response>"
    with pytest.raises(Sep2ParseError, match="larger than the 1048576-byte cap"):
        codec.decode(body)
    with pytest.raises(Sep2ParseError, match="cap"):
        parse(RESPONSE, max_bytes=100)


def test_http_csipaus_namespace_fails_the_schema_too(sep_schema: SepSchemas) -> None:
    assert sep_schema.errors(DOE_EVENT.replace(b"https://csipaus", b"http://csipaus"))


def test_int16_overflow_names_the_element_and_the_value(sep_schema: SepSchemas) -> None:
    body = DOE_EVENT.replace(b"<value>500</value>", b"<value>40000</value>")
    assert sep_schema.errors(body)  # the schema agrees
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(body)
    assert e.value.element == "DERControl/DERControlBase/opModExpLimW/value"
    assert e.value.value == "40000"
    assert e.value.mrid == "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    assert "Int16" in str(e.value)
    assert isinstance(e.value, Sep2ParseError)


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        (b"<value>500</value>", b"<value>-500</value>", "opModExpLimW/value"),
        (b"<multiplier>0</multiplier>", b"<multiplier>10</multiplier>", "opModExpLimW/multiplier"),
        (b"<opModMaxLimW>5000", b"<opModMaxLimW>10001", "opModMaxLimW"),
        (b"<rampTms>1500", b"<rampTms>70000", "rampTms"),
        (b"<opModEnergize>true", b"<opModEnergize>yes", "opModEnergize"),
        (b"<duration>7200", b"<duration>40000000", "interval/duration"),
        (b"<duration>7200", b"<duration>-1", "interval/duration"),
        (b"<randomizeStart>60", b"<randomizeStart>3601", "randomizeStart"),
        (b"<currentStatus>0", b"<currentStatus>9", "EventStatus/currentStatus"),
        (b"<start>1764090000", b"<start>soon", "interval/start"),
        (b'responseRequired="03"', b'responseRequired="103"', "@responseRequired"),
        (b"<mRID>0A1B", b"<mRID>ZZ1B", "DERControl/mRID"),
        (b"<creationTime>1764072000</creationTime>", b"", "DERControl/creationTime"),
        (
            b"<opModMaxLimW>5000</opModMaxLimW>",
            b"<opModMaxLimW>5000</opModMaxLimW><opModMaxLimW>1</opModMaxLimW>",
            "opModMaxLimW",
        ),
    ],
)
def test_out_of_range_values_raise_naming_the_element(old: bytes, new: bytes, element: str) -> None:
    body = DOE_EVENT.replace(old, new, 1)
    assert body != DOE_EVENT
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(body)
    assert e.value.element.endswith(element), e.value.element


@pytest.mark.parametrize(
    "base",
    [
        DERControlBase(opModExpLimW=ActivePower(40000, 0)),
        DERControlBase(opModLoadLimW=ActivePower(-1, 0)),
        DERControlBase(opModTargetW=ActivePower(1, 10)),
        DERControlBase(opModMaxLimW=12000),
    ],
)
def test_encoding_refuses_what_decoding_would_refuse(base: DERControlBase) -> None:
    with pytest.raises(Sep2ValueError, match="DERControl/DERControlBase/"):
        codec.encode(replace(DOE_EVENT_MODEL, DERControlBase=base))


def test_encoding_refuses_a_bad_lfdi() -> None:
    with pytest.raises(Sep2ValueError, match="endDeviceLFDI"):
        codec.encode(Response(endDeviceLFDI="not-hex", subject="0A1B"))


def test_list_results_must_match_its_items() -> None:
    with pytest.raises(Sep2ValueError, match="results"):
        codec.decode(LIST_WITH_A_CURVE.replace(b'results="1"', b'results="2"'))


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=300)
    | st.sampled_from([DOE_EVENT, RESPONSE]).flatmap(
        lambda b: st.integers(0, len(b)).map(lambda n: b[:n])
    )
)
def test_any_body_decodes_or_raises_the_protocol_error(body: bytes) -> None:
    try:
        decoded = codec.decode(body)
    except Sep2ParseError:
        return
    assert isinstance(decoded, DERControl | DERControlList | DefaultDERControl | Response)


# ------------------------------------------------------------------ mapping to the core


def test_der_control_maps_to_a_core_event() -> None:
    mapped = mapping.event(DOE_EVENT_MODEL, program="/derp/1", primacy=1)
    assert mapped.unmapped == ()
    ev = mapped.event
    assert ev.mrid == "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    assert (ev.program, ev.primacy, ev.origin) == ("/derp/1", 1, "sep2")
    assert (ev.creation_time, ev.start, ev.duration) == (1764072000.0, 1764090000.0, 7200.0)
    assert (ev.randomize_start, ev.randomize_duration) == (60, 0)
    assert ev.status is CoreEventStatus.SCHEDULED
    assert (ev.response_required, ev.reply_to) == (3, "/rsp/1")
    assert ev.controls == ControlSet(
        energize=True,
        max_generation_pct=50.0,
        ramp_time_s=15.0,
        import_limit_w=15000.0,
        export_limit_w=500.0,
        generation_limit_w=5000.0,
    )
    assert ev.problems(max_duration_s=86400) == []


def test_every_mode_maps_to_its_control() -> None:
    base = DERControlBase(
        opModConnect=False,
        opModEnergize=True,
        opModFixedW=-2550,
        opModGridConnectPermit=False,
        opModIslandPermit=True,
        opModMaxLimW=10000,
        opModTargetW=ActivePower(-33, 2),
        rampTms=50,
        opModImpLimW=ActivePower(7, 3),
        opModExpLimW=ActivePower(0, 0),
        opModGenLimW=ActivePower(3300, 0),
        opModLoadLimW=ActivePower(11, 3),
        opModStorageTargetW=ActivePower(-2500, 0),
    )
    assert mapping.control_set(base) == mapping.MappedControls(
        ControlSet(
            connect=False,
            energize=True,
            island_permit=True,
            grid_connect_permit=False,
            export_limit_w=0.0,
            import_limit_w=7000.0,
            generation_limit_w=3300.0,
            load_limit_w=11000.0,
            max_generation_pct=100.0,
            fixed_w_pct=-25.5,
            target_w=-3300.0,
            storage_target_w=-2500.0,
            ramp_time_s=0.5,
        )
    )


def test_a_defaults_enter_service_settings_map_to_seconds() -> None:
    """setESDelay / setESRandomDelay / setESRampTms: hundredths of a second -> seconds; 0 is a
    delay (no wait, no random part) but no ramp."""
    default = DefaultDERControl(
        "0", setESDelay=30_050, setESRandomDelay=6_000, setESRampTms=12_000, setSoftGradW=10
    )
    assert mapping.default_control_set(default).controls == ControlSet(
        enter_service_delay_s=300.5,
        enter_service_random_delay_s=60.0,
        enter_service_ramp_s=120.0,
        soft_start_rate_pct_s=0.1,
    )
    zeros = DefaultDERControl("0", setESDelay=0, setESRandomDelay=0, setESRampTms=0)
    assert mapping.default_control_set(zeros).controls == ControlSet(
        enter_service_delay_s=0.0, enter_service_random_delay_s=0.0
    )
    assert mapping.default_control_set(DefaultDERControl("0")).controls == ControlSet()


def test_an_absurd_enter_service_setting_maps_but_is_refused_with_its_reason() -> None:
    """A UInt32 setESDelay decodes (the schema allows ~497 days); over a day is refused."""
    default = DefaultDERControl("0", setESDelay=2**32 - 1, setESRampTms=8_640_001)
    problems = mapping.default_control_set(default).controls.problems()
    assert problems == [
        "enter_service_delay_s must be 0..86400 s (one day), got 42949672.95 s",
        "enter_service_ramp_s must be 0..86400 s (one day), got 86400.01 s",
    ]


def test_unmappable_modes_are_reported_not_dropped() -> None:
    lst = codec.decode(LIST_WITH_A_CURVE)
    assert isinstance(lst, DERControlList)
    mapped = mapping.event(lst.DERControl[0], program="/derp/1", primacy=2)
    assert mapped.event.controls == ControlSet(connect=False)
    assert mapped.event.status is CoreEventStatus.ACTIVE
    assert mapped.unmapped == ("opModVoltVar: mode not supported by the gateway",)


def test_csip_aus_1_3_namespace_reads_as_1_2_and_can_be_written_back() -> None:
    """CSIP-AUS 1.3 servers (envoy-schema 2.x) declare https://csipaus.org/ns/v1.3."""
    from gateway.north.sep2.xml import CSIPAUS_NS_V13, with_csipaus_ns

    original = DERControlList(
        all=1,
        results=1,
        DERControl=(
            DERControl(
                mRID="AB" * 16,
                creationTime=1,
                EventStatus=EventStatus(currentStatus=0, dateTime=1),
                interval=DateTimeInterval(duration=60, start=100),
                DERControlBase=DERControlBase(opModExpLimW=ActivePower(1500)),
            ),
        ),
    )
    body_12 = codec.encode(original)
    body_13 = with_csipaus_ns(body_12, CSIPAUS_NS_V13)
    assert CSIPAUS_NS_V13.encode() in body_13
    assert codec.decode(body_13) == original


def test_csip_aus_1_3_beta_storage_namespace_reads_as_1_2_too() -> None:
    """The storage beta's URI starts with 1.3's; its elements (opModStorageTargetW here) are
    read, not dropped as unknown."""
    from gateway.north.sep2.xml import CSIPAUS_NS_V13_BETA, with_csipaus_ns

    original = DERControlList(
        all=1,
        results=1,
        DERControl=(
            DERControl(
                mRID="CD" * 16,
                creationTime=1,
                EventStatus=EventStatus(currentStatus=0, dateTime=1),
                interval=DateTimeInterval(duration=60, start=100),
                DERControlBase=DERControlBase(
                    opModExpLimW=ActivePower(1500), opModStorageTargetW=ActivePower(-2000)
                ),
            ),
        ),
    )
    body = with_csipaus_ns(codec.encode(original), CSIPAUS_NS_V13_BETA)
    assert b'xmlns:csipaus="https://csipaus.org/ns/v1.3-beta/storage"' in body
    assert codec.decode(body) == original
