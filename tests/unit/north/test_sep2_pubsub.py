"""2030.5 pub/sub, responses, logs, errors, ConnectionPoint: XSD-checked round trips, range errors,
and a Notification's embedded ``<Resource xsi:type=...>`` decoded by the codec of that type."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lxml import etree

from gateway.north.sep2 import codec, resources_codec
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
    Sep2ValueError,
)
from gateway.north.sep2.pubsub import (
    ENCODING_XML,
    Condition,
    ConnectionPoint,
    Error,
    ErrorReason,
    LogEvent,
    LogEventList,
    Notification,
    NotificationList,
    NotificationStatus,
    ResponseSet,
    ResponseSetList,
    Subscription,
    SubscriptionList,
)
from gateway.north.sep2.resources import EndDevice, ListLink
from gateway.north.sep2.xml import Sep2ParseError

if TYPE_CHECKING:
    from conftest import SepSchemas

NSDECL = 'xmlns="urn:ieee:std:2030.5:ns"'
XSIDECL = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
MRID = "0123456789ABCDEF0123456789ABCDEF"
SUB_URI = "https://utility.example/edev/1/sub/1"

CONTROL = DERControl(
    mRID="A1" * 16,
    creationTime=1764072000,
    EventStatus=EventStatus(currentStatus=1, dateTime=1764072000),
    interval=DateTimeInterval(duration=3600, start=1764072000),
    DERControlBase=DERControlBase(opModConnect=False, opModExpLimW=ActivePower(1500)),
    href="/derp/1/derc/1",
)
CONTROLS = DERControlList(all=1, results=1, DERControl=(CONTROL,), href="/derp/1/derc")
SUBSCRIPTION = Subscription(
    href="/edev/1/sub/1",
    subscribedResource="/derp/1/derc",
    Condition=Condition(attributeIdentifier=0, lowerThreshold=-(2**47), upperThreshold=2**47),
    encoding=ENCODING_XML,
    level="+S1",
    limit=10,
    notificationURI="https://gateway.example:8443/notify",
)
NOTIFICATION = Notification(
    href="/ntfy/1",
    subscribedResource="/derp/1/derc",
    Resource=CONTROLS,
    status=NotificationStatus.DEFAULT,
    subscriptionURI=SUB_URI,
)
CP = ConnectionPoint(connectionPointId="4102123456", href="/edev/1/cp")


def _notify(resource: object) -> Notification:
    return Notification("/x", 0, SUB_URI, Resource=resource)  # type: ignore[arg-type]


RESOURCES = [
    pytest.param(SUBSCRIPTION, id="Subscription"),
    pytest.param(Subscription("/dcap", 0, "+S1", 0, "https://g/n"), id="Subscription-minimal"),
    pytest.param(
        SubscriptionList(all=2, results=1, Subscription=(SUBSCRIPTION,), pollRate=60),
        id="SubscriptionList",
    ),
    pytest.param(NOTIFICATION, id="Notification-DERControlList"),
    pytest.param(_notify(CONTROL), id="Notification-DERControl"),
    pytest.param(_notify(DefaultDERControl(mRID=MRID)), id="Notification-DefaultDERControl"),
    pytest.param(_notify(EndDevice(sFDI=167261211391, changedTime=0)), id="Notification-EndDevice"),
    pytest.param(_notify(CP), id="Notification-ConnectionPoint"),
    pytest.param(
        Notification(
            "/derp/1/derc",
            NotificationStatus.CANCELLED_MOVED,
            SUB_URI,
            newResourceURI="https://utility.example/derp/2/derc",
        ),
        id="Notification-moved",
    ),
    pytest.param(
        NotificationList(all=2, results=2, Notification=(NOTIFICATION, _notify(None))),
        id="NotificationList",
    ),
    pytest.param(
        ResponseSet(
            MRID,
            href="/rsps/1",
            description="DER",
            version=1,
            ResponseListLink=ListLink("/rsps/1/rsp", all=0),
        ),
        id="ResponseSet",
    ),
    pytest.param(
        ResponseSetList(all=1, results=1, ResponseSet=(ResponseSet(MRID),), href="/rsps"),
        id="ResponseSetList",
    ),
    pytest.param(
        LogEvent(
            createdDateTime=1764072000,
            functionSet=11,
            logEventCode=3,
            logEventID=65535,
            logEventPEN=37244,
            profileID=2,
            details="relay opened",
            extendedData=2**32 - 1,
        ),
        id="LogEvent",
    ),
    pytest.param(
        LogEventList(all=1, results=1, LogEvent=(LogEvent(0, 0, 0, 0, 0, 1),), subscribable=1),
        id="LogEventList",
    ),
    pytest.param(Error(reasonCode=ErrorReason.RESOURCE_LIMIT_REACHED), id="Error"),
    pytest.param(Error(reasonCode=4, maxRetryDuration=65535), id="Error-retry"),
]


@pytest.mark.parametrize("resource", RESOURCES)
def test_round_trip_valid_against_schema(resource: object, sep_schema: SepSchemas) -> None:
    body = codec.encode(resource)  # type: ignore[arg-type]
    sep_schema.assert_valid(body)
    assert codec.decode(body) == resource
    assert resources_codec.encode(resource) == body  # type: ignore[arg-type]


def test_connection_point_is_in_the_csipaus_namespace(sep_schema: SepSchemas) -> None:
    body = codec.encode(CP)
    sep_schema.assert_valid(body)
    root = etree.fromstring(body)
    assert root.tag == "{https://csipaus.org/ns}ConnectionPoint"
    assert root[0].tag == "{https://csipaus.org/ns}connectionPointId"
    # xml.parse admits 2030.5 roots only, so the element decoders read it.
    assert codec.decode_element(root) == CP
    assert resources_codec.decode_element(root) == CP


def test_notification_carries_the_resource_with_xsi_type() -> None:
    root = etree.fromstring(codec.encode(NOTIFICATION))
    resource = root.find("{urn:ieee:std:2030.5:ns}Resource")
    assert resource is not None
    assert resource.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "DERControlList"
    assert [etree.QName(c).localname for c in root] == [
        "subscribedResource", "Resource", "status", "subscriptionURI",
    ]  # fmt: skip
    decoded = codec.decode(codec.encode(NOTIFICATION))
    assert isinstance(decoded, Notification)
    assert isinstance(decoded.Resource, DERControlList)
    assert decoded.Resource.DERControl[0].DERControlBase.opModExpLimW == ActivePower(1500)


def test_a_server_body_with_a_prefixed_xsi_type_is_read() -> None:
    body = (
        f'<Notification {NSDECL} {XSIDECL} xmlns:sep="urn:ieee:std:2030.5:ns">'
        "<subscribedResource>/derp/1/dderc</subscribedResource>"
        f'<Resource xsi:type="sep:DefaultDERControl" href="/derp/1/dderc"><mRID>{MRID}</mRID>'
        "<DERControlBase><opModEnergize>false</opModEnergize></DERControlBase></Resource>"
        f"<status>0</status><subscriptionURI>{SUB_URI}</subscriptionURI></Notification>"
    ).encode()
    n = codec.decode(body)
    assert isinstance(n, Notification)
    assert n.Resource == DefaultDERControl(
        mRID=MRID, DERControlBase=DERControlBase(opModEnergize=False), href="/derp/1/dderc"
    )


def _with_resource(resource: str, extra: str = "") -> bytes:
    return (
        f"<Notification {NSDECL} {XSIDECL} {extra}><subscribedResource>/x</subscribedResource>"
        f"{resource}<status>0</status><subscriptionURI>{SUB_URI}</subscriptionURI></Notification>"
    ).encode()


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ('<Resource xsi:type="TariffProfile"/>', "not a resource this gateway reads"),
        ('<Resource xsi:type="Error"><reasonCode>1</reasonCode></Resource>', "not a resource"),
        ('<Resource xsi:type="Notification"/>', "not a resource this gateway reads"),
        ('<Resource xsi:type="x:DERControlList" xmlns:x="urn:other"/>', "not a resource"),
        ('<Resource xsi:type="y:DERControlList"/>', "undeclared prefix 'y'"),
        ('<Resource href="/x"/>', "is required"),
    ],
)
def test_unknown_or_missing_embedded_types_are_refused(resource: str, message: str) -> None:
    with pytest.raises(Sep2ParseError, match=message) as e:
        codec.decode(_with_resource(resource))
    assert "Notification/Resource/@xsi:type" in str(e.value)


def test_an_error_inside_the_embedded_resource_names_its_full_path() -> None:
    resource = (
        '<Resource xsi:type="DERControlList" all="1" results="2"><DERControl>'
        f"<mRID>{MRID}</mRID></DERControl></Resource>"
    )
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(_with_resource(resource))
    assert e.value.element == "Notification/Resource/DERControlList/DERControl[0]/creationTime"


def test_the_embedded_resource_is_checked_when_encoding() -> None:
    bad = DERControlList(all=1, results=1, DERControl=(CONTROL,) * 2)
    with pytest.raises(Sep2ValueError, match="DERControlList/@results"):
        codec.encode(_notify(bad))


# ------------------------------------------------------------------------------ range errors


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (Subscription("/x", 256, "+S1", 0, "https://g/n"), "Subscription/encoding"),
        (Subscription("/x", 0, "x" * 17, 0, "https://g/n"), "Subscription/level"),
        (Subscription("/x", 0, "+S1", 2**32, "https://g/n"), "Subscription/limit"),
        (
            Subscription("/x", 0, "+S1", 0, "https://g/n", Condition=Condition(0, 0, 2**47 + 1)),
            "Subscription/Condition/upperThreshold",
        ),
        (Notification("/x", 256, SUB_URI), "Notification/status"),
        (Notification("/x" * 2000, 0, SUB_URI), "Notification/subscribedResource"),
        (NotificationList(all=0, results=1), "NotificationList/@results"),
        (ResponseSet("XYZ"), "ResponseSet/mRID"),
        (LogEvent(0, 256, 0, 0, 0, 0), "LogEvent/functionSet"),
        (LogEvent(0, 0, 0, 65536, 0, 0), "LogEvent/logEventID"),
        (LogEvent(0, 0, 0, 0, 2**32, 0), "LogEvent/logEventPEN"),
        (LogEvent(0, 0, 0, 0, 0, 0, details="x" * 33), "LogEvent/details"),
        (LogEventList(all=1, results=1, LogEvent=(LogEvent(0, 0, -1, 0, 0, 0),)),
         "LogEventList/LogEvent[0]/logEventCode"),
        (Error(reasonCode=65536), "Error/reasonCode"),
        (Error(reasonCode=0, maxRetryDuration=-1), "Error/maxRetryDuration"),
        (ConnectionPoint("N" * 33), "ConnectionPoint/connectionPointId"),
    ],
)  # fmt: skip
def test_encoding_refuses_what_decoding_would(resource: object, element: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        codec.encode(resource)  # type: ignore[arg-type]
    assert e.value.element == element


def test_required_elements() -> None:
    body = f"<Subscription {NSDECL}><subscribedResource>/x</subscribedResource></Subscription>"
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(body.encode())
    assert e.value.element == "Subscription/encoding"
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(f"<Error {NSDECL}/>".encode())
    assert e.value.element == "Error/reasonCode"
