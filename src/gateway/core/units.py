"""Units and time used across the core.

Time in the core is POSIX seconds (float) in the *utility's* time base: the north adapters keep
an offset to the server's Time resource and hand the core server time. A float avoids naive
datetimes by construction and keeps a control cycle cheap; :func:`iso` renders one for people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType

Seconds = float
Timestamp = float  # POSIX seconds, UTC, in the utility's time base
Watts = float
Volts = float
Hertz = float
Amps = float

# Event identifiers: 2030.5 mRID (hex) or an OpenADR eventID, namespaced by the adapter.
MRID = NewType("MRID", str)


def iso(t: Timestamp) -> str:
    """Render a core timestamp for logs and reports (always UTC, always aware)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
