"""The NMI a CSIP-AUS client PUTs as its ConnectionPoint's ``connectionPointId``.

AEMO's National Metering Identifier procedure: an NMI is 10 characters, upper-case letters and
digits, optionally followed by its checksum digit (11 characters in all). The checksum: take
the ASCII code of each of the 10 characters, double every other one starting from the
rightmost, add up the decimal digits of all of them; the checksum is ``(10 - sum % 10) % 10``
(``4123456789`` gives 6, ``QFFF0000LV`` 7).
"""

from __future__ import annotations

import string
from typing import Final

NMI_LENGTH: Final = 10
_ALLOWED: Final = frozenset(string.ascii_uppercase + string.digits)


def checksum(nmi: str) -> int:
    """The checksum digit of a 10-character NMI."""
    total = 0
    for i, char in enumerate(reversed(nmi)):
        value = ord(char) * (2 if i % 2 == 0 else 1)
        total += sum(int(d) for d in str(value))
    return (10 - total % 10) % 10


def problem(value: str) -> str | None:
    """Why ``value`` is no NMI (None: it is one)."""
    if len(value) not in (NMI_LENGTH, NMI_LENGTH + 1):
        return (
            f"connectionPointId {value!r} is no NMI: {len(value)} characters, not 10 "
            "(or 11 with the checksum digit)"
        )
    bad = sorted({c for c in value[:NMI_LENGTH] if c not in _ALLOWED})
    if bad:
        return (
            f"connectionPointId {value!r} is no NMI: {''.join(bad)!r} not allowed "
            "(upper-case letters and digits only)"
        )
    if len(value) == NMI_LENGTH + 1:
        expected = checksum(value[:NMI_LENGTH])
        if value[-1] != str(expected):
            return (
                f"connectionPointId {value!r}: the NMI checksum of {value[:NMI_LENGTH]} is "
                f"{expected}, not {value[-1]!r} (AEMO NMI procedure)"
            )
    return None
