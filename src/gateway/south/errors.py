"""The south side's exception tree. No pymodbus, pyserial or OSError escapes ``gateway.south``.

Every message names the device, the point and what went wrong, so that a person reading the log
(or the audit table) can act on it::

    DeviceError                 ``device``, ``point``, ``why``
    ├── DeviceUnreachable       no connection (refused, reset, closed, held by another client)
    ├── DeviceTimeout           no answer within the profile's timeout; connection dropped
    ├── DeviceRejected          a Modbus exception response (``code``: 1 illegal function, ...)
    ├── ReadbackMismatch        the write went out but the read-back disagrees
    └── DeviceStateError        the device answered, but not in a state the command needs
    ProfileError                a profile that does not validate; ``problems`` lists them all
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core import errors

# The Modbus exception codes (Modbus Application Protocol v1.1b3 §7).
EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


class DeviceError(errors.DeviceError):
    """A device-side failure. ``device`` is ``"<profile or endpoint> unit <id>"``."""

    def __init__(self, device: str, point: str, why: str) -> None:
        super().__init__(f"{device}: {point}: {why}")
        self.device = device
        self.point = point
        self.why = why


class DeviceUnreachable(DeviceError):  # noqa: N818 - names from the domain read better
    pass


class DeviceTimeout(DeviceError):  # noqa: N818 - names from the domain read better
    pass


class DeviceRejected(DeviceError):  # noqa: N818 - names from the domain read better
    def __init__(self, device: str, point: str, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(device, point, f"device answered Modbus exception {code} ({name})")
        self.code = code


class ReadbackMismatch(DeviceError):  # noqa: N818 - names from the domain read better
    def __init__(self, device: str, point: str, wrote: object, read: object) -> None:
        super().__init__(device, point, f"wrote {wrote!r} but read back {read!r}")
        self.wrote = wrote
        self.read = read


class DeviceStateError(DeviceError):
    pass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a profile: where (file, line, key path) and what."""

    source: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class ProfileError(errors.ConfigError):
    """A profile that does not validate. Nothing of it was loaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
