"""Hardened XML parsing for 2030.5 bodies (sans-I/O: bytes in, an element out).

Every body that arrives from the network is hostile until parsed. :func:`parse` either returns
the root element of a 2030.5 document or raises :class:`Sep2ParseError` with a message a person
can act on. What it refuses, in the order it checks:

- a body larger than ``max_bytes`` (checked on the byte length, *before* lxml sees it);
- any DOCTYPE (so no internal subset, no entity declarations: billion laughs and XXE are refused
  before any expansion could happen; the byte pre-check is backed by a check on the parsed
  document, which also covers UTF-16 bodies);
- anything lxml does not find well-formed (the parser never resolves entities, never loads a
  DTD, never touches the network and keeps libxml2's default size limits: ``huge_tree=False``);
- a root element outside the 2030.5 namespace, and any element in ``http://csipaus.org/ns``,
  a real-world mistake for the CSIP-AUS namespace ``https://csipaus.org/ns`` that the schema
  rejects.
"""

from __future__ import annotations

from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.core import errors

NS: Final = "urn:ieee:std:2030.5:ns"
CSIPAUS_NS: Final = "https://csipaus.org/ns"
# Seen in the wild (e.g. a reference server's example collection); the CSIP-AUS schema rejects it.
CSIPAUS_NS_WRONG: Final = "http://csipaus.org/ns"
# CSIP-AUS 1.3 (envoy-schema 2.x, the reference server's current branch) moved to its own URI.
CSIPAUS_NS_V13: Final = "https://csipaus.org/ns/v1.3"
# The CSIP-AUS storage extension's beta (csipaus-ext-v1.3-beta_storage.xsd; the STO-* and
# SDVN-01 procedures target it): the 1.2 elements plus opModStorageTargetW, vppModes*, setMinWh.
CSIPAUS_NS_V13_BETA: Final = "https://csipaus.org/ns/v1.3-beta/storage"
# Both 1.3 URIs start with this, so one byte check finds either.
_V13_MARK: Final = CSIPAUS_NS_V13.encode()
_CSIPAUS_DECL: Final = b'xmlns:csipaus="https://csipaus.org/ns"'
# A DERControlList of a few hundred events is tens of kB; 1 MiB leaves room and bounds memory.
MAX_BODY_BYTES: Final = 1 << 20
_WRONG_NS_ELEMENTS: Final = f"{{{CSIPAUS_NS_WRONG}}}*"  # any element in that namespace


class Sep2ParseError(errors.ProtocolError, ValueError):
    """A 2030.5 body that is not well-formed, hostile, oversized or not 2030.5 at all."""


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not thread-safe and keep error logs.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
        collect_ids=False,
    )


def _normalise_v13(root: etree._Element) -> None:
    """CSIP-AUS 1.3 (and 1.3-beta/storage) elements, in their own namespace URI, read as the
    1.2 ones they extend.

    The element names the gateway uses are the same in all; only the URI differs. Renaming in
    place keeps one decoder; the byte check above means a 1.2 body never pays for the walk.
    """
    for ns in (CSIPAUS_NS_V13, CSIPAUS_NS_V13_BETA):
        prefix = len(ns) + 2
        for el in root.iter(f"{{{ns}}}*"):
            el.tag = f"{{{CSIPAUS_NS}}}{el.tag[prefix:]}"


def with_csipaus_ns(body: bytes, ns: str) -> bytes:
    """``body`` (written by the codec, CSIP-AUS 1.2) declaring ``ns`` for its csipaus prefix:
    what a CSIP-AUS 1.3 (or 1.3-beta/storage) server expects. The URI only occurs in the
    declaration."""
    if ns == CSIPAUS_NS:
        return body
    return body.replace(_CSIPAUS_DECL, b'xmlns:csipaus="' + ns.encode() + b'"')


def parse(data: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> etree._Element:
    """Parse one 2030.5 body; raise :class:`Sep2ParseError` for anything else."""
    if not isinstance(data, bytes | bytearray):
        raise Sep2ParseError(f"a 2030.5 body must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise Sep2ParseError(f"body of {len(data)} bytes is larger than the {max_bytes}-byte cap")
    if not data.strip():
        raise Sep2ParseError("empty body")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise Sep2ParseError("DOCTYPE/ENTITY declarations are not allowed in 2030.5 bodies")
    try:
        root = etree.fromstring(bytes(data), _parser())
    except etree.XMLSyntaxError as e:
        raise Sep2ParseError(f"not well-formed XML: {e}") from None
    if root is None:  # pragma: no cover - lxml raises for an empty document
        raise Sep2ParseError("no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Sep2ParseError("DOCTYPE/ENTITY declarations are not allowed in 2030.5 bodies")
    # iter() filtered by tag walks the tree in C and hands Python only the nodes refused (in
    # document order, so the first offender is named): looking at every element's namespace
    # from Python was most of the parse time.
    for node in root.iter(etree.Entity, _WRONG_NS_ELEMENTS):
        if isinstance(node, etree._Entity):
            raise Sep2ParseError(f"entity reference {node.text} is not allowed")
        raise Sep2ParseError(
            f"element {etree.QName(node).localname} is in namespace {CSIPAUS_NS_WRONG!r}; "
            f"the CSIP-AUS namespace is {CSIPAUS_NS!r} (https, not http)"
        )
    if _V13_MARK in data:
        _normalise_v13(root)
    root_ns = etree.QName(root).namespace
    # CSIP-AUS ConnectionPoint is the one resource whose global element is in its namespace.
    if root_ns != NS and root.tag != f"{{{CSIPAUS_NS}}}ConnectionPoint":
        raise Sep2ParseError(
            f"root element {etree.QName(root).localname} is in namespace {root_ns!r}, "
            f"expected the 2030.5 namespace {NS!r}"
        )
    return root
