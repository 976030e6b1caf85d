"""``--suite profile``: a vendor's device profile checked against a device, real or simulated,
for every point the profile claims (conformance/README.md, "Device profiles").

**For a bench device, not a live home**: the suite writes to the device. It writes only safe
values (the charger stopped, 0 W setpoints, the lowest limits, a higher SoC reserve, the init
writes, values rewritten unchanged), puts back what it changed, and leaves the relay alone
unless ``--allow-relay``; a charger is charged (never discharged) only with ``--allow-charge``.
"""

from __future__ import annotations

from gateway.conformance.cases import Case
from gateway.conformance.profile import points, watchdog
from gateway.conformance.profile.device import DeviceTarget, Options, target_from

__all__ = ["CASES", "SUITE", "DeviceTarget", "Options", "target_from"]

SUITE = "profile"
_NEEDS = "a device at --target and its --profile"

CASES: tuple[Case, ...] = (
    Case(
        "PRF-01",
        SUITE,
        "the device answers as its profile says (a SunSpec chain with the required models)",
        _NEEDS,
        2,
        points.answers,
    ),
    Case(
        "PRF-02",
        SUITE,
        "every readable point reads and decodes in range (type, scale, scale factor, units)",
        _NEEDS,
        3,
        points.readable,
    ),
    Case(
        "PRF-03",
        SUITE,
        "every writable point takes a safe value, reads it back, and is restored",
        _NEEDS,
        3,
        points.writable,
    ),
    Case(
        "PRF-04",
        SUITE,
        "a value beyond a point's claimed minimum or maximum is refused before the wire",
        _NEEDS,
        1,
        points.limits,
    ),
    Case(
        "PRF-05",
        SUITE,
        "the watchdog: refreshed, then left, the device falls back within the claimed timeout",
        f"{_NEEDS}; a charger also --allow-charge W",
        65,
        watchdog.watchdog,
    ),
    Case(
        "PRF-06",
        SUITE,
        "the relay opens and recloses on command, confirmed by its state",
        f"{_NEEDS}; --allow-relay (a bench relay)",
        5,
        points.relay,
    ),
)
