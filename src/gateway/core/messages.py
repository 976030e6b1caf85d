"""What goes into the engine (inputs) and what comes out (actions).

Every input carries ``at``, the server-time instant it was observed; the engine never reads a
clock. Every action carries a ``reason`` a person can read. Device commands carry an ``id`` so
that the driver's read-back confirmation can be matched to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, unique
from typing import Any, Literal

from gateway.core.controls import ControlSet
from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.schedule import Event
from gateway.core.units import MRID, Timestamp

# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class MeterTelemetry:
    """The site meter, measured on the grid side of the islanding relay."""

    at: Timestamp
    net_w: float  # positive = import from the grid
    grid_voltage_v: float | None
    grid_frequency_hz: float | None
    phase_current_a: Mapping[str, float] = field(default_factory=dict)
    net_var: float | None = None  # reactive power, positive = import (lagging); for reports


@dataclass(frozen=True, slots=True)
class RelayTelemetry:
    at: Timestamp
    position: RelayPosition  # from the independent read-back (aux contact / state register)
    # Voltage on the home side of the relay, where the meter measures it: a second, physical
    # witness that an "open" contact really is open (devices.md §4.2 step 3).
    load_voltage_v: float | None = None


@dataclass(frozen=True, slots=True)
class ChargerTelemetry:
    at: Timestamp
    mode: ChargerMode
    power_w: float  # positive = discharge into the home
    soc_pct: float | None
    ev_connected: bool = True
    fault: bool = False  # the charger reports a fault (tripped): it will not run until reset


@dataclass(frozen=True, slots=True)
class DerTelemetry:
    at: Timestamp
    der_id: str
    power_w: float  # positive = generation/discharge into the home
    reactive_var: float | None = None  # positive = injected; for reports
    connected: bool | None = None  # its own grid connection (SunSpec ConnSt); None = unknown


# Which of a DER's two power ratings: "discharge" (generation into the home; SunSpec 702
# WMaxRtg) or "charge" (absorbed; 702 WChaRteMaxRtg).
Direction = Literal["discharge", "charge"]


@dataclass(frozen=True, slots=True)
class DerRated:
    """A DER's own rating as its device reports it (W, in ``direction``), read at connect and
    then rarely; the one in force is the lower of it and the configured one (core.ratings)."""

    at: Timestamp
    der_id: str
    rated_w: float
    direction: Direction = "discharge"


@dataclass(frozen=True, slots=True)
class Tick:
    at: Timestamp


@dataclass(frozen=True, slots=True)
class Observed:
    """One telemetry snapshot: any subset of the devices."""

    at: Timestamp
    meter: MeterTelemetry | None = None
    relay: RelayTelemetry | None = None
    charger: ChargerTelemetry | None = None
    ders: tuple[DerTelemetry, ...] = ()


@dataclass(frozen=True, slots=True)
class EventReceived:
    """A utility event (2030.5 DERControl or OpenADR event) as the north adapter parsed it."""

    at: Timestamp
    event: Event


@dataclass(frozen=True, slots=True)
class EventRejected:
    """An event the north adapter received but could not read (2030.5: answered 253).

    ``event`` holds what could be read (mRID, program, replyTo, responseRequired); it is never
    put in force.
    """

    at: Timestamp
    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class ProgramsRanked:
    """Programs whose primacy the utility changed, all in one input (a swap is atomic)."""

    at: Timestamp
    primacies: Mapping[str, int]
    origin: str = "sep2"  # the link whose programs these are


@dataclass(frozen=True, slots=True)
class EventCancelled:
    """A link cancels one of its events; ``origin`` None: the link that holds the mRID. A link
    never cancels another link's event (``core.schedules``)."""

    at: Timestamp
    mrid: MRID
    randomized: bool = False
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class DefaultsReceived:
    """A program's DefaultDERControl; ``controls=None`` withdraws it."""

    at: Timestamp
    program: str
    primacy: int
    controls: ControlSet | None
    origin: str = "sep2"  # the link whose program it is


@dataclass(frozen=True, slots=True)
class ManualOverride:
    """The homeowner's override from the local API; ``None`` clears it.
    ``ControlSet(connect=False)`` is a manual island request."""

    at: Timestamp
    controls: ControlSet | None


@dataclass(frozen=True, slots=True)
class BackupReserveSet:
    """The homeowner's backup reserve from the local API: the EV's state of charge (%) the
    gateway keeps for an outage (it discharges the EV only above it)."""

    at: Timestamp
    soc_pct: float
    by: str


@dataclass(frozen=True, slots=True)
class WriteConfirmed:
    """The driver wrote a command and its read-back matched."""

    at: Timestamp
    command_id: str


@dataclass(frozen=True, slots=True)
class WriteFailed:
    at: Timestamp
    command_id: str
    error: str
    # The link failed (no answer, or no connection), not the device: the command may never
    # have reached it. Inside an islanding step the engine retries it until the step's own
    # timeout; a device's own refusal or a failed read-back is never transient.
    transient: bool = False


@dataclass(frozen=True, slots=True)
class NorthLinkLost:
    at: Timestamp
    origin: str
    error: str


@dataclass(frozen=True, slots=True)
class NorthLinkRestored:
    at: Timestamp
    origin: str


@dataclass(frozen=True, slots=True)
class ReportAcked:
    """The utility acknowledged a north report (HTTP 201/204 on the Response POST, ...)."""

    at: Timestamp
    key: str


@dataclass(frozen=True, slots=True)
class FaultReset:
    """A person (installer, homeowner) asks the gateway to leave FAULT.

    Refused, with the reason, while the fault's condition persists (``Engine.reset_blockers``);
    accepted or refused, it is an audit entry whose correlation id is ``request`` (the local
    request it came from, so that its answer can be matched to it) or one the engine makes.
    """

    at: Timestamp
    by: str
    request: str | None = None


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    """What became of one :class:`FaultReset` (``Engine.last_reset``)."""

    at: Timestamp
    by: str
    request: str  # the audit entry's correlation id
    accepted: bool
    # Why it was accepted (and where it leads), or every reason it was refused, each a sentence
    # without "; " in it, joined by REASONS_JOINED_BY.
    reason: str


REASONS_JOINED_BY = "; "


Input = (
    Tick
    | Observed
    | EventReceived
    | EventRejected
    | ProgramsRanked
    | EventCancelled
    | DefaultsReceived
    | ManualOverride
    | BackupReserveSet
    | WriteConfirmed
    | WriteFailed
    | NorthLinkLost
    | NorthLinkRestored
    | ReportAcked
    | FaultReset
    | DerRated
)

# ---------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True, slots=True)
class RelayCommand:
    id: str
    position: RelayPosition
    reason: str


@dataclass(frozen=True, slots=True)
class ChargerCommand:
    id: str
    mode: ChargerMode
    setpoint_w: float  # positive = discharge; only meaningful in GRID_FOLLOWING
    reason: str


@dataclass(frozen=True, slots=True)
class DerLimit:
    id: str
    der_id: str
    max_discharge_w: float
    max_charge_w: float
    reason: str


DeviceCommand = RelayCommand | ChargerCommand | DerLimit


@dataclass(frozen=True, slots=True)
class NorthReport:
    """A report owed to the utility (2030.5 Response; OpenADR opt/created), sent via the outbox."""

    key: str  # dedupe key: exactly one report per key, ever
    origin: str
    subject: MRID
    code: int
    at: Timestamp
    reply_to: str | None
    reason: str


@unique
class Severity(Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alarm:
    at: Timestamp
    severity: Severity
    code: str
    message: str


@unique
class Table(Enum):
    EVENT = "event"  # schedule record, keyed by mRID
    STATE = "state"  # key/value state documents
    OUTBOX = "outbox"  # north report to enqueue (exactly once per key)
    ACK = "ack"  # north report acknowledged
    AUDIT = "audit"  # append-only device-write log


@dataclass(frozen=True, slots=True)
class Persist:
    """Write-ahead: the shell stores these, in one transaction, before it acts on the rest."""

    table: Table
    key: str
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop a stored record the engine no longer needs (an event pruned from the schedule);
    stored with the Persist actions of the same call. For the outbox, ``before`` drops every
    item acknowledged before that time (the key only names the reason): a report of an event
    the engine has forgotten cannot be asked for again."""

    table: Table
    key: str
    before: Timestamp | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """A decision worth a log line: what changed and why."""

    at: Timestamp
    message: str


Action = RelayCommand | ChargerCommand | DerLimit | NorthReport | Alarm | Persist | Forget | Note
