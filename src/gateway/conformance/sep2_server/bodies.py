"""The bodies the suite POSTs, written out as 2030.5-2018 has them (element order of sep.xsd),
so that a server's 400 is about the server, not a body of ours sep.xsd would refuse."""

from __future__ import annotations

from typing import Final
from xml.sax.saxutils import escape

from gateway.conformance.sep2_server.probe import NS

#: Well-formed up to the point where it is cut off: what a server must answer 400.
MALFORMED: Final = f'<EndDevice xmlns="{NS}"><sFDI>1</sFDI><changedTime>0'.encode()


def end_device(lfdi: str, sfdi: int, now: int) -> bytes:
    return (
        f'<EndDevice xmlns="{NS}"><lFDI>{lfdi}</lFDI><sFDI>{sfdi}</sFDI>'
        f"<changedTime>{now}</changedTime></EndDevice>"
    ).encode()


def response(lfdi: str, subject: str, now: int, status: int = 1, kind: str = "Response") -> bytes:
    """A Response, or (``kind``) one of the types sep.xsd derives from it, such as
    DERControlResponse; status 1: event received."""
    return (
        f'<{kind} xmlns="{NS}"><createdDateTime>{now}</createdDateTime>'
        f"<endDeviceLFDI>{lfdi}</endDeviceLFDI><status>{status}</status>"
        f"<subject>{subject}</subject></{kind}>"
    ).encode()


def subscription(resource: str, uri: str, limit: int = 1) -> bytes:
    """A non-conditional Subscription (encoding 0: application/sep+xml; level +S1)."""
    return (
        f'<Subscription xmlns="{NS}"><subscribedResource>{escape(resource)}'
        f"</subscribedResource><encoding>0</encoding><level>+S1</level><limit>{limit}</limit>"
        f"<notificationURI>{escape(uri)}</notificationURI></Subscription>"
    ).encode()
