"""North adapters by link kind: the one table the runtime builds them from.

Every adapter is built the same way, from its section + the site's port + the site's store
(``core.ports``): the composition root names a link kind and never a protocol class, and a new
protocol is one more row here. The adapters share a shape (:class:`NorthAdapter`: ``tasks(stop)``
yields the adapter's own tasks, which the runtime runs, with every other link's, next to the
site's one control loop; ``run(stop, period_s=...)`` is that with the adapter alone).

The sections:

* ``"openadr2"``: :class:`~gateway.north.openadr2.config.Oadr2Config` (the ``[openadr2]`` table);
* ``"openadr3"``: :class:`~gateway.north.openadr3.config.Oadr3Config` (the ``[openadr3]`` table);
* ``"sep2"``: :class:`Sep2Link`, one per EndDevice. Not the ``[sep2]`` table itself: its
  EndDevices share one connection pool (:class:`~gateway.north.sep2.client.Http`, an async
  context the caller opens, after service discovery) and one notification listener, and each
  has its own site and store, so the caller resolves the table into one link per EndDevice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar, overload

from gateway.core.ports import Jobs, SitePort
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr2.config import Oadr2Config
from gateway.north.openadr3.adapter import Oadr3Gateway
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import DOCUMENTATION_PEN, Http, Identity
from gateway.north.sep2.telemetry import SiteRatings
from gateway.store.api import Store

__all__ = ["KINDS", "NORTH", "Factory", "LinkKind", "NorthAdapter", "Sep2Link", "build"]

LinkKind = Literal["sep2", "openadr2", "openadr3"]


class NorthAdapter(Protocol):
    """What the runtime does with any north adapter once built.

    ``tasks(stop)`` opens what the link needs (a session, a listener, the server's time) and
    yields its own tasks; the runtime runs every link's tasks with the site's one control loop
    under one supervision (``SitePort.run``), so a site with several links has one loop. ``run``
    is the same with this link alone."""

    def tasks(self, stop: asyncio.Event) -> AbstractAsyncContextManager[Jobs]: ...

    async def run(self, stop: asyncio.Event, *, period_s: float = 1.0) -> None: ...


@dataclass(frozen=True, slots=True)
class Sep2Link:
    """One 2030.5 EndDevice's section: the rest of ``Sep2Gateway``'s parameters."""

    http: Http
    identity: Identity
    ratings: SiteRatings | None = None
    notify: tuple[NotificationRouter, str] | None = None
    pen: int = DOCUMENTATION_PEN
    csipaus: bool = True


# (section, port, store) -> adapter. The section is typed per row and checked when called.
Factory = Callable[[Any, SitePort, Store], NorthAdapter]

S = TypeVar("S")


def _section(kind: str, section: object, expected: type[S]) -> S:
    # The table is keyed by a string, so a section of the wrong kind gets past mypy at a
    # dynamic call site; say which, rather than fail later inside the adapter.
    if not isinstance(section, expected):
        raise TypeError(
            f"north link {kind!r} is built from a {expected.__name__}, "
            f"not a {type(section).__name__}"
        )
    return section


def _sep2(section: object, site: SitePort, store: Store) -> Sep2Gateway:
    s = _section("sep2", section, Sep2Link)
    return Sep2Gateway(
        site,
        store,
        s.http,
        s.identity,
        ratings=s.ratings,
        notify=s.notify,
        pen=s.pen,
        csipaus=s.csipaus,
    )


def _openadr2(section: object, site: SitePort, store: Store) -> Oadr2Gateway:
    return Oadr2Gateway(site, store, _section("openadr2", section, Oadr2Config))


def _openadr3(section: object, site: SitePort, store: Store) -> Oadr3Gateway:
    return Oadr3Gateway(site, store, _section("openadr3", section, Oadr3Config))


NORTH: Mapping[str, Factory] = MappingProxyType(
    {"sep2": _sep2, "openadr2": _openadr2, "openadr3": _openadr3}
)
KINDS: tuple[LinkKind, ...] = ("sep2", "openadr2", "openadr3")


@overload
def build(
    kind: Literal["sep2"], section: Sep2Link, site: SitePort, store: Store
) -> Sep2Gateway: ...
@overload
def build(
    kind: Literal["openadr2"], section: Oadr2Config, site: SitePort, store: Store
) -> Oadr2Gateway: ...
@overload
def build(
    kind: Literal["openadr3"], section: Oadr3Config, site: SitePort, store: Store
) -> Oadr3Gateway: ...
@overload
def build(kind: str, section: object, site: SitePort, store: Store) -> NorthAdapter: ...
def build(kind: str, section: object, site: SitePort, store: Store) -> NorthAdapter:
    """The adapter for link ``kind``, built from its ``section``, the site's port and store.

    Raises ValueError for an unknown kind (naming the known ones) and TypeError for a section
    of another kind."""
    factory = NORTH.get(kind)
    if factory is None:
        raise ValueError(f"unknown north link {kind!r} (known: {', '.join(KINDS)})")
    return factory(section, site, store)
