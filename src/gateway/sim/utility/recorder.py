"""Every exchange the utility simulator had, for tests and the conformance suite to query.

One :class:`Exchange` per HTTP request (server time, method, path, query, the client's LFDI
from its TLS certificate, the status answered, the raw request body) and one per attempt to
deliver a Notification (method ``NOTIFY``, ``path`` the notificationURI, ``status`` the
subscriber's answer or 0 when it could not be reached, ``error`` why, ``attempt`` 1, 2, ...).
``sink`` receives each as it is recorded (``gateway simulate utility --record FILE.jsonl``
writes them as JSON lines). :meth:`Recorder.decoded` gives bodies decoded by the codec
(:meth:`Recorder.responses`, :meth:`Recorder.notes` are the usual cases).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.north.sep2 import codec
from gateway.north.sep2.model import Response
from gateway.north.sep2.pubsub import Notification
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility.responses import read_response

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Exchange:
    at: float  # server time
    method: str
    path: str
    query: str
    lfdi: str | None
    status: int
    body: bytes = b""
    location: str | None = None
    error: str | None = None
    attempt: int = 1  # NOTIFY: which delivery attempt

    def to_json(self) -> dict[str, Any]:
        try:
            body: str = self.body.decode()
            encoding = "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(self.body).decode(), "base64"
        out: dict[str, Any] = {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "lfdi": self.lfdi,
            "status": self.status,
        }
        if self.body:
            out["body"] = body
            out["body_encoding"] = encoding
        if self.location is not None:
            out["location"] = self.location
        if self.error is not None:
            out["error"] = self.error
        if self.method == "NOTIFY":
            out["attempt"] = self.attempt
        return out


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)
    sink: Callable[[Exchange], None] | None = None

    def record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if self.sink is not None:
            self.sink(exchange)

    def clear(self) -> None:
        self.exchanges.clear()

    def requests(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        *,
        path: str | None = None,
        lfdi: str | None = None,
        status: int | None = None,
        since: float | None = None,
    ) -> list[Exchange]:
        """The recorded exchanges that match every filter given (Notifications included, as
        method ``NOTIFY``)."""
        return [
            x
            for x in self.exchanges
            if (method is None or x.method == method.upper())
            and (path_prefix is None or x.path.startswith(path_prefix))
            and (path is None or x.path == path)
            and (lfdi is None or x.lfdi == lfdi.upper())
            and (status is None or x.status == status)
            and (since is None or x.at >= since)
        ]

    def decoded(
        self,
        kind: type[R],
        method: str | None = None,
        path_prefix: str | None = None,
        *,
        status: int | None = None,
        lfdi: str | None = None,
    ) -> list[tuple[Exchange, R]]:
        """The matching exchanges (see :meth:`requests`) whose body decodes to a ``kind``,
        with it; bodies that do not decode, or decode to something else, are left out."""
        found: list[tuple[Exchange, R]] = []
        for x in self.requests(method, path_prefix, lfdi=lfdi, status=status):
            try:
                resource = codec.decode(x.body)
            except Sep2ParseError:
                continue
            if isinstance(resource, kind):
                found.append((x, resource))
        return found

    def responses(self, mrid: str | None = None) -> list[tuple[Exchange, Response]]:
        """Every accepted Response POST (to a ``replyTo``), decoded; for ``mrid`` only if given."""
        found: list[tuple[Exchange, Response]] = []
        for x in self.requests("POST", "/rsps/", status=201):
            try:
                _, r = read_response(x.body)  # DERControlResponse etc. too
            except Sep2ParseError:
                continue
            if mrid is None or r.subject.upper() == mrid.upper():
                found.append((x, r))
        return found

    def responses_for(self, mrid: str) -> list[tuple[int | None, int | None]]:
        """``(status, createdDateTime)`` of each Response the client sent about ``mrid``."""
        return [(r.status, r.createdDateTime) for _, r in self.responses(mrid)]

    def notifications(self, uri_prefix: str = "") -> list[Exchange]:
        """Every Notification delivery attempt (retries included)."""
        return self.requests("NOTIFY", uri_prefix)

    def notes(
        self, uri_prefix: str = "", *, delivered: bool = False
    ) -> list[tuple[Exchange, Notification]]:
        """The Notifications sent, decoded (each attempt; ``delivered``: answered 2xx only)."""
        return [
            (x, n)
            for x, n in self.decoded(Notification, "NOTIFY", uri_prefix)
            if not delivered or 200 <= x.status < 300
        ]
