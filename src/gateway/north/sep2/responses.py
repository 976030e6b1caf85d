"""The 2030.5 ``Response`` owed for a north report in the outbox (sans-I/O).

The engine decides *which* responses are owed (1, 2, 3, 6, 7, 252-254; the rules are in
:mod:`gateway.core.schedule`) and stores each once in the outbox, keyed ``sep2|<mRID>|<code>``.
This module turns one stored report into the POST the server expects:

* the body: ``Response`` with ``createdDateTime`` = when the engine decided it, in server time
  (the engine runs on server time; XSD: "in the server's timebase"), ``endDeviceLFDI`` = the
  EndDevice that answers (in aggregator mode each EndDevice answers for itself), ``status`` and
  ``subject`` (the DERControl's mRID);
* where: the DERControl's ``replyTo``. A control without one cannot be answered: the report
  is settled without a request (:func:`outcome`), with a log line.

How the server's answer settles a report (:func:`outcome`), the "exactly once" half:
2xx is delivered. 429, 5xx and transport errors are retried later, in order. Any other 4xx
means the server will never take this response (an unknown replyTo, a body it refuses):
retrying would block every later response behind it for ever, so it is settled as refused and
logged. A 3xx is followed by the client before it gets here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any

from gateway.north.sep2 import codec
from gateway.north.sep2.model import Response

__all__ = ["Outcome", "Post", "outcome", "response_post"]

_HTTP_OK_MIN, _HTTP_OK_MAX = 200, 299
_HTTP_TOO_MANY, _HTTP_SERVER_ERROR = 429, 500


@dataclass(frozen=True, slots=True)
class Post:
    href: str
    body: bytes


@unique
class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"  # settled: the server will never accept it


def response_post(doc: Mapping[str, Any], *, lfdi: str) -> Post | None:
    """The POST for one outbox document (``NorthReport`` as stored); None: no ``replyTo``."""
    reply_to = doc.get("reply_to")
    if not reply_to:
        return None
    body = codec.encode(
        Response(
            createdDateTime=int(doc["at"]),
            endDeviceLFDI=lfdi.upper(),
            status=int(doc["code"]),
            subject=str(doc["subject"]).upper(),
        )
    )
    return Post(str(reply_to), body)


def outcome(status: int) -> Outcome:
    if _HTTP_OK_MIN <= status <= _HTTP_OK_MAX:
        return Outcome.DELIVERED
    if status == _HTTP_TOO_MANY or status >= _HTTP_SERVER_ERROR:
        return Outcome.RETRY
    return Outcome.REFUSED
