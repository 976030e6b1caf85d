"""CSIP-AUS 1.3 service discovery and version negotiation (SDVN-01), sans-I/O.

A CSIP-AUS 1.3 server publishes ``/.well-known/csipaus``: JSON naming, per schema version (its
namespace URI), the DeviceCapability paths that serve it::

    {"supportedSchemaVersions": {"https://csipaus.org/ns/v1.3": {"dcap": ["/dcap"]}}}

The client picks the newest version it supports and tries that version's paths in order; a
path that does not answer a DeviceCapability is skipped (the caller's part). Versions are
recognised by their namespace URI or by their last segment ("v1.3"); anything else (a future
"v99.99", ``null``, a typo) is passed over, never guessed at.

Choices:

* Supported, newest first: 1.3 (``https://csipaus.org/ns/v1.3``), then 1.2 (the unversioned
  ``https://csipaus.org/ns``, or ".../v1.2"). 1.3-beta/storage is not a release: not chosen.
* Malformed JSON, a body over 64 KiB or no supported version: :class:`WellKnownError`, with
  what was offered, so a person can see why.
* Paths are taken as given (relative to the server); absolute URLs on another host are refused
  (a discovery document must not send our client certificate elsewhere).
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import urlsplit

from gateway.core import errors

PATH: Final = "/.well-known/csipaus"
MAX_BYTES: Final = 64 * 1024
# (version, the namespace URIs and short names that mean it), newest first.
SUPPORTED: Final = (
    ("1.3", ("https://csipaus.org/ns/v1.3", "v1.3")),
    ("1.2", ("https://csipaus.org/ns", "https://csipaus.org/ns/v1.2", "v1.2")),
)


class WellKnownError(errors.ProtocolError, ValueError):
    """The discovery document cannot be used; the message says what it offered."""


def candidates(body: bytes) -> list[tuple[str, str]]:
    """``(version, dcap path)`` to try, in order: the newest supported version's paths first."""
    if len(body) > MAX_BYTES:
        raise WellKnownError(f"{PATH}: {len(body)} bytes, over the {MAX_BYTES} byte cap")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise WellKnownError(f"{PATH}: not JSON ({e})") from e
    versions = doc.get("supportedSchemaVersions") if isinstance(doc, dict) else None
    if not isinstance(versions, dict):
        raise WellKnownError(f"{PATH}: no supportedSchemaVersions object")
    out: list[tuple[str, str]] = []
    for version, names in SUPPORTED:
        for key, entry in versions.items():
            if key not in names or not isinstance(entry, dict):
                continue
            paths = entry.get("dcap")
            if not isinstance(paths, list):
                continue
            out += [(version, p) for p in paths if _local(p)]
    if not out:
        offered = ", ".join(sorted(map(str, versions))) or "nothing"
        raise WellKnownError(
            f"{PATH}: no DeviceCapability for a version this gateway speaks "
            f"(CSIP-AUS 1.3 or 1.2); the server offers: {offered}"
        )
    return out


def _local(path: object) -> bool:
    if not isinstance(path, str) or not path:
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc and path.startswith("/")
