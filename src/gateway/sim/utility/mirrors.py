"""The metering mirror (2030.5 §10.11.3) of the utility simulator, with the metering models.

``POST /mup`` a ``MirrorUsagePoint``: an mRID not held yet answers **201**, one already held
(from the same client) is overwritten and answers **204**, both with ``Location: /mup/{m}``
(rules a 3 and a 4); an mRID another client holds answers 409, as does a MirrorMeterReading
mRID another client's mirror holds. ``POST /mup/{m}`` a
``MirrorMeterReading`` or a ``MirrorMeterReadingList`` answers **204** with the Location of the
MeterReading (list) of the mirrored UsagePoint, ``/upt/{m}/mr[/{r}]`` (rules f, g; the simulator
serves no UsagePoint). Only the client that created a mirror may POST to it or GET it (rule e:
else 403); a mirror lost (``UtilityState.lose_mup``, a server reset) answers **404**, and the
client must POST its MirrorUsagePoint to ``/mup`` again (SAPN; open-dynamic-export #79). A
MirrorMeterReading whose mRID the mirror does not know must carry its ReadingType (rule h 3:
else 400). ``GET /mup/{m}`` and the ``GET /mup`` list show first-level elements only (rule c: no
MirrorMeterReadings), a client's own mirrors only.

Every MirrorMeterReading that carries a ``Reading`` or ``MirrorReadingSet`` (in the MUP POST
too, rule a 2) is kept as a :class:`~gateway.sim.utility.records.MirrorReading` with the server
time; ``UtilityState.readings`` queries them. Raw bodies stay in the records and the recorder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from aiohttp import web

from gateway.north.sep2 import codec
from gateway.north.sep2.metering import (
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorUsagePoint,
    MirrorUsagePointList,
)
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility import paths
from gateway.sim.utility.posted import decode_readings
from gateway.sim.utility.records import MirrorReading, Mup
from gateway.sim.utility.state import UtilityState

SEP_XML: Final = "application/sep+xml"


# ------------------------------------------------------------------------------ storage
def _check_types(known: dict[str, MirrorMeterReading], mmrs: Iterable[MirrorMeterReading]) -> None:
    for mmr in mmrs:
        if mmr.mRID.upper() not in known and mmr.ReadingType is None:
            raise ValueError(
                f"MirrorMeterReading {mmr.mRID} is new to this mirror and has no ReadingType"
                " (2030.5 §10.11.3 h 3)"
            )


def _keep(mup: Mup, mmrs: Iterable[MirrorMeterReading], at: int) -> list[int]:
    """Store each MirrorMeterReading (a later one without ReadingType keeps the first's) and
    its value; returns each one's number under the mirror (1-based, in order of first POST)."""
    numbers = []
    for posted in mmrs:
        key = posted.mRID.upper()
        old = mup.meter_readings.get(key)
        mmr = posted
        if old is not None and posted.ReadingType is None:
            mmr = replace(posted, ReadingType=old.ReadingType)
        mup.meter_readings[key] = mmr
        if mmr.Reading is not None or mmr.MirrorReadingSet:
            lfdi = mup.resource.deviceLFDI.upper()
            mup.readings.append(MirrorReading(mup.mrid, mmr, at, lfdi))
        numbers.append(list(mup.meter_readings).index(key) + 1)
    return numbers


def store_mup(
    state: UtilityState, resource: MirrorUsagePoint, body: bytes, poster: str | None
) -> tuple[Mup, bool]:
    """Hold a POSTed MirrorUsagePoint: ``(mirror, created)``; one already held with its mRID is
    overwritten. ValueError: a new MirrorMeterReading without ReadingType."""
    at = state.now()
    mup = state.find_mup(resource.mRID)
    _check_types({} if mup is None else mup.meter_readings, resource.MirrorMeterReading)
    created = mup is None
    if mup is None:
        number = max((m.number for m in state.mups), default=0) + 1
        mup = Mup(number, poster, resource, body, at, at)
        state.mups.append(mup)
    else:
        mup.resource, mup.body, mup.updated = resource, body, at
    _keep(mup, resource.MirrorMeterReading, at)
    return mup, created


def store_readings(state: UtilityState, mup: Mup, mmrs: Iterable[MirrorMeterReading]) -> list[int]:
    """Add POSTed MirrorMeterReadings to a mirror; their numbers under it (see ``_keep``)."""
    mmrs = tuple(mmrs)
    _check_types(mup.meter_readings, mmrs)
    mup.updated = state.now()
    return _keep(mup, mmrs, mup.updated)


# ------------------------------------------------------------------------------ views
def first_level(mup: Mup, post_rate: int | None = None) -> MirrorUsagePoint:
    """The mirror as a GET shows it: its href, no MirrorMeterReadings (rule c); ``post_rate``
    (``UtilityState.mup_post_rate``) replaces the postRate the client posted."""
    shown = replace(mup.resource, href=paths.mup(mup.number), MirrorMeterReading=())
    return shown if post_rate is None else replace(shown, postRate=post_rate)


def owned_by(state: UtilityState, client: str | None) -> list[Mup]:
    return [m for m in state.mups if _may(m, client)]


def mup_list(
    state: UtilityState, client: str | None, start: int, limit: int
) -> MirrorUsagePointList:
    mine = owned_by(state, client)
    shown = mine[start : start + limit]
    return MirrorUsagePointList(
        all=len(mine),
        results=len(shown),
        MirrorUsagePoint=tuple(first_level(m, state.mup_post_rate) for m in shown),
        href=paths.MUP,
        pollRate=state.poll_rate("mup"),
    )


def _may(mup: Mup, client: str | None) -> bool:
    return mup.poster is None or (client or "").upper() == mup.poster.upper()


# ------------------------------------------------------------------------------ handlers
def _xml(resource: codec.AnyResource) -> web.Response:
    return web.Response(body=codec.encode(resource), content_type=SEP_XML)


def _decode(body: bytes) -> codec.AnyResource:
    try:
        return codec.decode(body)
    except Sep2ParseError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc


def _mirror(state: UtilityState, number: int, client: str | None) -> Mup:
    mup = state.mup(number)
    if mup is None:
        raise web.HTTPNotFound(text="no such MirrorUsagePoint (lost? POST it to /mup again)")
    if not _may(mup, client):
        raise web.HTTPForbidden(text="another client's MirrorUsagePoint")
    return mup


def _refuse_foreign(
    state: UtilityState, mmrs: Iterable[MirrorMeterReading], client: str | None
) -> None:
    """409 for a MirrorMeterReading whose mRID another client's mirror holds: an mRID names
    one object (2030.5 §8.2.3); a client must not write another's readings (cactus S-ALL-05)."""
    for mmr in mmrs:
        key = mmr.mRID.upper()
        for other in state.mups:
            if key in other.meter_readings and not _may(other, client):
                raise web.HTTPConflict(text=f"MirrorMeterReading {mmr.mRID} is another client's")


def post_mup(state: UtilityState, body: bytes, client: str | None) -> web.Response:
    resource = _decode(body)
    if not isinstance(resource, MirrorUsagePoint):
        raise web.HTTPBadRequest(text=f"expected a MirrorUsagePoint, got {type(resource).__name__}")
    held = state.find_mup(resource.mRID)
    if held is not None and not _may(held, client):
        raise web.HTTPConflict(text=f"MirrorUsagePoint {resource.mRID} is another client's")
    _refuse_foreign(state, resource.MirrorMeterReading, client)
    try:
        mup, created = store_mup(state, resource, body, client)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.Response(status=201 if created else 204, headers={"Location": paths.mup(mup.number)})


def post_readings(
    state: UtilityState, number: int, body: bytes, client: str | None
) -> web.Response:
    mup = _mirror(state, number, client)
    try:
        resource = decode_readings(body)  # a list's all/results may be left out
    except Sep2ParseError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    if isinstance(resource, MirrorMeterReading):
        mmrs: tuple[MirrorMeterReading, ...] = (resource,)
    elif isinstance(resource, MirrorMeterReadingList):
        mmrs = resource.MirrorMeterReading
    else:
        raise web.HTTPBadRequest(
            text=f"expected a MirrorMeterReading(List), got {type(resource).__name__}"
        )
    _refuse_foreign(state, mmrs, client)
    try:
        numbers = store_readings(state, mup, mmrs)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    single = isinstance(resource, MirrorMeterReading)
    location = paths.meter_reading(number, numbers[0] if single else None)
    return web.Response(status=204, headers={"Location": location})


def get_mup(state: UtilityState, number: int, client: str | None) -> web.Response:
    return _xml(first_level(_mirror(state, number, client), state.mup_post_rate))


def get_mup_list(state: UtilityState, client: str | None, start: int, limit: int) -> web.Response:
    return _xml(mup_list(state, client, start, limit))
