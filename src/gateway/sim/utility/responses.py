"""Response bodies as the simulator reads them: ``Response`` and every type sep.xsd derives
from it (``DERControlResponse``, ``DrResponse``, ``FlowReservationResponseResponse``,
``PriceResponse``, ``TextResponse``).

A client answers a DERControl with a ``DERControlResponse`` (py20305 does); the codec reads the
base ``Response`` only, so a subtype is read for the base's fields (``createdDateTime``,
``endDeviceLFDI``, ``status``, ``subject``) and what it adds (2030.5-2023's
``modesResponded``, DRLC's reductions) is kept only in the raw body.
"""

from __future__ import annotations

from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs here

from gateway.north.sep2 import codec
from gateway.north.sep2.model import Response
from gateway.north.sep2.xml import NS, Sep2ParseError, parse

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
