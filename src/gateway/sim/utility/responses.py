"""Response bodies as the simulator reads them: ``Response`` and every type sep.xsd derives
from it (``DERControlResponse``, ``DrResponse``, ``FlowReservationResponseResponse``,
``PriceResponse``, ``TextResponse``).

A client answers a DERControl with a ``DERControlResponse`` (py20305 does); the codec reads the
base ``Response`` only, so a subtype is read for the base's fields (``createdDateTime``,
``endDeviceLFDI``, ``status``, ``subject``) and what it adds (2030.5-2023's
``modesResponded``, DRLC's reductions) is kept only in the raw body.

A Response is refused (400) when its ``endDeviceLFDI`` names no EndDevice the posting client
may speak for, or its ``status`` is no ResponseType of 2030.5-2018 (1-14, 252-254; 0, 15-251
and 255 are reserved there, and CSIP-AUS builds on 2018): cactus S-ALL-57.
"""

from __future__ import annotations

from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs here

from gateway.north.sep2 import codec
from gateway.north.sep2.model import Response
from gateway.north.sep2.xml import NS, Sep2ParseError, parse
from gateway.sim.utility.records import EndDeviceRecord

# sep.xsd (2018 and 2023): the complexTypes whose extension base is Response.
RESPONSE_TYPES: Final = frozenset(
    {
        "Response",
        "DERControlResponse",
        "DrResponse",
        "FlowReservationResponseResponse",
        "PriceResponse",
        "TextResponse",
    }
)


# 2030.5-2018 Table 27 (ResponseType): the values a Response's status may take.
RESPONSE_STATUSES: Final = frozenset(range(1, 15)) | {252, 253, 254}


def response_problem(resp: Response, speaks_for: list[EndDeviceRecord]) -> str | None:
    """Why this Response must be refused (None: it may be kept)."""
    if resp.status is not None and resp.status not in RESPONSE_STATUSES:
        return f"status {resp.status} is reserved (2030.5-2018 ResponseType: 1-14, 252-254)"
    lfdi = resp.endDeviceLFDI.upper()
    if not any(e.lfdi == lfdi for e in speaks_for):
        return f"endDeviceLFDI {resp.endDeviceLFDI} is no EndDevice of this client"
    return None


def read_response(body: bytes) -> tuple[str, Response]:
    """``(root name, the Response)``; Sep2ParseError if the body is no Response of any type."""
    root = parse(body)
    name = etree.QName(root)
    if name.namespace != NS or name.localname not in RESPONSE_TYPES:
        raise Sep2ParseError(
            f"expected a Response ({', '.join(sorted(RESPONSE_TYPES))}), got {name.localname}"
        )
    root.tag = f"{{{NS}}}Response"  # the base's fields are all the simulator reads
    resource = codec.decode_element(root)
    if not isinstance(resource, Response):  # pragma: no cover - the root is Response
        raise Sep2ParseError(f"expected a Response, got a {type(resource).__name__}")
    return name.localname, resource
