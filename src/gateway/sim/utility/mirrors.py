"""MirrorUsagePoints: ``POST /mup`` creates one (201 + Location; the same mRID again updates it,
201 with the same Location), ``POST /mup/{m}`` adds readings (204), ``GET /mup`` lists them.

Bodies are kept as POSTed. The metering codec (``gateway.north.sep2.metering``) is used to read
the mRID when ``codec.decode`` knows MirrorUsagePoint; until then (it is being added
concurrently) a small reader here takes the mRID. TODO(metering): drop the fallbacks then.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2 import codec
from gateway.north.sep2.xml import NS, Sep2ParseError, parse
from gateway.sim.utility import paths
from gateway.sim.utility.records import Mup
from gateway.sim.utility.state import UtilityState

SEP_XML = "application/sep+xml"


def _mrid(body: bytes) -> str:
    try:
        resource: Any = codec.decode(body)
    except Sep2ParseError as exc:
        if "unsupported resource" not in str(exc):
            raise
        root = parse(body)
        if etree.QName(root).localname != "MirrorUsagePoint":
            raise Sep2ParseError(f"expected a MirrorUsagePoint, got {root.tag}") from exc
        mrid = root.findtext(f"{{{NS}}}mRID")
        if not mrid or not mrid.strip():
            raise Sep2ParseError("MirrorUsagePoint/mRID is required") from exc
        return str(mrid).strip().upper()
    if type(resource).__name__ != "MirrorUsagePoint":
        raise Sep2ParseError(f"expected a MirrorUsagePoint, got a {type(resource).__name__}")
    return str(resource.mRID).upper()


def add_mup(state: UtilityState, body: bytes, poster: str | None, mrid: str) -> Mup:
    """Store a POSTed MirrorUsagePoint; one already held with ``mrid`` is replaced in place."""
    for m in state.mups:
        if m.mrid == mrid:
            m.body = body
            return m
    number = max((m.number for m in state.mups), default=0) + 1
    mup = Mup(number, poster, body, state.now(), mrid)
    state.mups.append(mup)
    return mup


def post_mup(state: UtilityState, body: bytes, poster: str | None) -> web.Response:
    try:
        mrid = _mrid(body)
    except Sep2ParseError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    mup = add_mup(state, body, poster, mrid)
    return web.Response(status=201, headers={"Location": paths.mup(mup.number)})


def mup_list(state: UtilityState, start: int, limit: int) -> web.Response:
    """The held MUPs as POSTed, each with its href, in a MirrorUsagePointList."""
    shown = state.mups[start : start + limit]
    root = etree.Element(f"{{{NS}}}MirrorUsagePointList", nsmap={None: NS})
    root.set("href", paths.MUP)
    root.set("all", str(len(state.mups)))
    root.set("results", str(len(shown)))
    for m in shown:
        item = parse(m.body)
        item.set("href", paths.mup(m.number))
        root.append(item)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(body=body, content_type=SEP_XML)
