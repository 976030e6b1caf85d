"""The gateway's exception tree: every exception the project raises derives from one class.

Each shell maps the foreign exceptions it meets (aiohttp, ssl, OSError, sqlite3, pymodbus) to
one of these at its boundary, so a caller catches :class:`GatewayError` (or one branch of it)
and never a library's own class. The message of each is written for the person reading the
log: what failed, where (the file, the host, the device), and what to do when that is known::

    GatewayError
    ├── ConfigError       a setting or a file a person must fix: the gateway cannot start
    │                     (site file, run file, profile, TLS files, a port already taken)
    ├── TransportError    a peer did not answer: refused, reset, TLS handshake failed, timeout,
    │                     or asked us to come back later (429, 5xx): try again later.
    │                     The one transport error of the HTTP clients (2030.5, OpenADR 3)
    ├── ProtocolError     a peer answered, but not as its protocol allows: a body that does not
    │                     decode, a refused request, a registration that does not match
    ├── DeviceError       a device on the home side failed a read or a write (south)
    ├── StoreError        the persistent store cannot be used as asked (store)
    └── StateError        an operation a state machine does not allow here: a bug or a race in
                          the gateway, never a peer's fault (islanding, event lifecycle)

The branches are bases only: each package keeps its own classes (their names and subclass
relations are part of its interface) and derives them from the branch that fits, together
with the built-in base they always had (``ValueError``, ``LookupError``, ``OSError``...), so
that nothing that catches them breaks. Standard library only (the core's rule).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceError",
    "GatewayError",
    "ProtocolError",
    "StateError",
    "StoreError",
    "TransportError",
]


class GatewayError(Exception):
    """Base of every exception the gateway raises."""


class ConfigError(GatewayError):
    """A setting or a file a person must fix before the gateway can run; the message names it."""


class TransportError(GatewayError):
    """A peer could not be reached or did not answer in time, or answered 429/5xx: try again.

    ``retry_after_s`` is the delay the peer asked for (``Retry-After``), None when it said
    nothing. Shared by the HTTP clients, so a supervisor treats every link's outage alike.
    """

    # A class default, so subclasses that also derive from OSError (whose __init__ does not
    # call ours) still have it.
    retry_after_s: float | None = None

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProtocolError(GatewayError):
    """A peer's answer that its protocol does not allow, or a request it refused."""


class DeviceError(GatewayError):
    """A device of the home failed a read or a write."""


class StoreError(GatewayError):
    """The persistent store cannot be used as asked."""


class StateError(GatewayError):
    """An operation a state machine does not allow in its current state."""
