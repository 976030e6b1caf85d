"""Broken variants of ``gateway simulate utility``, for the sep2-server suite's mutation checks.

``python sep2_server_mutants.py NAME ARGS...`` patches the simulator as NAME says, then runs
``gateway ARGS...`` in the same process: the server under test is still a real process behind
real mutual TLS, only wrong in one way. Each variant is one fault the suite must catch.
"""

from __future__ import annotations

import os
import re
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway.north.sep2 import tls
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility import handlers, server, views


def _foreign_ca() -> None:
    """Trusts a second CA (``$SEP2_MUTANT_CA``) next to the SERCA: a client chain from a
    foreign CA is let in."""
    real = tls.server_context

    def context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        ctx = real(*args, **kwargs)
        ctx.load_verify_locations(cafile=os.environ["SEP2_MUTANT_CA"])
        return ctx

    tls.server_context = context  # type: ignore[assignment]


def _no_client_certificate() -> None:
    """Asks for a client certificate but lets a client without one in."""
    real = tls.server_context

    def context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        return real(*args, **{**kwargs, "require_client_certificate": False})

    tls.server_context = context  # type: ignore[assignment]


def _paging() -> None:
    """Every list page starts at the first item, whatever ``s`` says."""
    views.page = lambda items, start, limit: list(items[:limit])  # type: ignore[assignment]


def _no_href() -> None:
    """Each resource served without its own href (the links and list items keep theirs), as
    the simulator once served DERStatus, DERCapability and DERSettings."""
    real = server.wire.bare

    def bare(body: bytes) -> bytes:
        return re.sub(rb'^(<[A-Za-z]+[^>]*?) href="[^"]*"', rb"\1", real(body), count=1)

    server.wire.bare = bare  # type: ignore[assignment]


def _response_subtypes() -> None:
    """Takes a plain Response only and refuses its subtypes (DERControlResponse) with a 400,
    as the simulator once did (issue 17, found with py20305)."""
    real = handlers.read_response

    def read(body: bytes) -> Any:
        if b"<DERControlResponse" in body:
            raise Sep2ParseError("expected a Response, got a DERControlResponse")
        return real(body)

    handlers.read_response = read  # type: ignore[assignment]


def _invalid_time() -> None:
    """Serves Time without its required ``quality``: a body sep.xsd refuses, that nothing but
    the schema looks at."""
    real = server.wire.bare

    def bare(body: bytes) -> bytes:
        return re.sub(rb"<quality>[^<]*</quality>", b"", real(body))

    server.wire.bare = bare  # type: ignore[assignment]


def _no_notifications() -> None:
    """Takes subscriptions and never delivers a Notification."""

    async def deliver(self: server.UtilityServer, uri: str, body: bytes, lfdi: str) -> None:
        return None

    server.UtilityServer._deliver = deliver  # type: ignore[method-assign]


MUTANTS: dict[str, Callable[[], None]] = {
    "foreign-ca": _foreign_ca,
    "no-client-certificate": _no_client_certificate,
    "paging": _paging,
    "no-href": _no_href,
    "response-subtypes": _response_subtypes,
    "invalid-time": _invalid_time,
    "no-notifications": _no_notifications,
}


def main(argv: Sequence[str]) -> int:
    name, *rest = argv
    MUTANTS[name]()
    from gateway.cli import main as gateway

    return gateway(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
