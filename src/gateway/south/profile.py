"""A device profile: what a vendor's register map means, as data.

A profile is loaded from TOML (``gateway.south.profiles``), validated as a whole against
``schemas/device-profile.schema.json`` plus the cross-checks that a schema cannot express, and
only then turned into these frozen objects, so that a profile never loads half-way.

Vocabulary:

* a **point** is one value in the device's register map (address, table, type, scaling, access);
* a **role** binds a point to a meaning the drivers understand (``relay_open``, ``power``, ...),
  with the symbol to write, the device's sign convention, or which states mean what;
* the **watchdog** is the device's own revert timer, which the gateway keeps alive while healthy;
* **init** writes put the device under remote control when the gateway connects.

Sign conventions are the device's, declared per role (``positive = "charge"``) and normalised by
the drivers to the gateway's: power into the home (discharge, generation, import) is positive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum, unique
from types import MappingProxyType

from gateway.south.registers import DataType, Pacing, Table, WordOrder

#: Registers per value for the fixed-size types; strings say their own length.
WORDS: Mapping[DataType, int] = MappingProxyType(
    {
        DataType.INT16: 1,
        DataType.UINT16: 1,
        DataType.ENUM16: 1,
        DataType.BITFIELD16: 1,
        DataType.SUNSSF: 1,
        DataType.INT32: 2,
        DataType.UINT32: 2,
        DataType.ENUM32: 2,
        DataType.BITFIELD32: 2,
        DataType.ACC32: 2,
        DataType.FLOAT32: 2,
        DataType.INT64: 4,
        DataType.UINT64: 4,
        DataType.ACC64: 4,
        DataType.FLOAT64: 4,
        DataType.BIT: 1,
    }
)


@unique
class DeviceKind(StrEnum):
    METER_RELAY = "meter_relay"
    METER = "meter"  # a site meter apart from the relay: net power and phase currents
    CHARGER = "charger"
    DER = "der"


@unique
class Access(StrEnum):
    R = "r"
    RW = "rw"
    W = "w"  # write-only command registers: read-back goes through a state role instead

    @property
    def readable(self) -> bool:
        return self is not Access.W

    @property
    def writable(self) -> bool:
        return self is not Access.R


@unique
class Sense(StrEnum):
    """Which direction a device's positive number means (declared per power role)."""

    CHARGE = "charge"  # into the EV / battery: negative for the gateway
    DISCHARGE = "discharge"  # out of the EV / battery into the home: positive for the gateway
    GENERATION = "generation"  # SunSpec: positive for DER injection
    IMPORT = "import"  # meter: positive when the home draws from the grid
    EXPORT = "export"  # meter: positive when the home feeds the grid


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    address: int
    table: Table
    type: DataType
    count: int  # registers (or coils) the value occupies
    access: Access = Access.R
    word_order: WordOrder = WordOrder.BIG
    scale: float = 1.0  # engineering value = raw * scale * 10 ** scale_factor
    scale_factor: str | None = None  # name of a ``sunssf`` point
    units: str | None = None
    symbols: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # The raw value that means "not implemented" (SunSpec 0x8000, 0xFFFF, ...); decoded as None.
    not_implemented: int | None = None
    description: str = ""
    # The range the device accepts, in engineering units (after scale): ``Device.write`` refuses
    # a value outside it before anything goes on the wire. Narrower than the type's range, e.g.
    # Sigenergy's charge limit "never 0, clamp to [500 W, rated]". None: only the type limits.
    minimum: float | None = None
    maximum: float | None = None

    def symbol(self, raw: int) -> str | None:
        """The enum symbol for a raw value, if the profile names one."""
        for name, value in self.symbols.items():
            if value == raw:
                return name
        return None

    def admits(self, value: float) -> bool:
        """Whether ``value`` (engineering units) is inside the profile's range, if it has one."""
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def range_text(self) -> str:
        """The profile's range for people: "500..25000 W", "at least 500 W", "any"."""
        unit = f" {self.units}" if self.units else ""
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"{lo:g}..{hi:g}{unit}"
        if lo is not None:
            return f"at least {lo:g}{unit}"
        if hi is not None:
            return f"at most {hi:g}{unit}"
        return "any"


def _category_of(states: Mapping[str, frozenset[int]], raw: object) -> str | None:
    if not isinstance(raw, int) or isinstance(raw, bool):
        return None
    for name, values in states.items():
        if raw in values:
            return name
    return None


@dataclass(frozen=True, slots=True)
class StateRead:
    """A further register of a state role read from several (``points = [...]`` in TOML),
    with its own values -> categories; the binding's own ``point`` is the first of them."""

    point: str
    states: Mapping[str, frozenset[int]] = field(default_factory=lambda: MappingProxyType({}))
    state_symbols: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class Binding:
    """A role bound to a point. Which fields matter depends on the role (see ``ROLES``)."""

    role: str
    point: str
    value: int | None = None  # command roles: the raw value to write (a symbol, resolved)
    positive: Sense | None = None  # power roles: what a positive device value means
    # state roles: category (e.g. "open", "discharging") -> raw values that mean it
    states: Mapping[str, frozenset[int]] = field(default_factory=lambda: MappingProxyType({}))
    # Command roles: the symbol as the profile wrote it ("START"). A SunSpec profile has no
    # points table to resolve it against, so there ``value`` stays None until the SunSpec binder
    # resolves ``symbol`` (and ``state_symbols``, category -> symbol names) at discovery.
    symbol: str | None = None
    state_symbols: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    # State roles read from several registers: the ones after ``point``, in the profile's order
    # (a charger that shows grid-forming only in a backup-status register of its own).
    more: tuple[StateRead, ...] = ()
    # relay_faults: bit numbers that do not fail a command (a watchdog flag the next
    # heartbeat clears is news about the gateway, not a relay that failed to move).
    ignore: frozenset[int] = frozenset()

    def category(self, raw: int) -> str | None:
        """The category of one raw value of the binding's own point."""
        return _category_of(self.states, raw)

    @property
    def points(self) -> tuple[str, ...]:
        """Every point the role reads: its own, then the further registers of a state role."""
        return (self.point, *(r.point for r in self.more))

    def decide(self, values: Mapping[str, object]) -> str | None:
        """The category a state role reads from the values of its ``points``.

        A fault in any register wins: a device that reports one anywhere has one. Otherwise
        the first register, in the profile's order, whose value is in one of its categories
        decides; a value in none of them (a backup register's NORMAL) defers to the next
        register. None: no register says anything the profile knows.
        """
        found = [_category_of(self.states, values.get(self.point))]
        found += [_category_of(r.states, values.get(r.point)) for r in self.more]
        if "fault" in found:
            return "fault"
        return next((c for c in found if c is not None), None)

    def categories(self) -> frozenset[str]:
        """Every category any of the role's registers can read (SunSpec symbols included)."""
        reads = [
            (self.states, self.state_symbols),
            *((r.states, r.state_symbols) for r in self.more),
        ]
        return frozenset(c for states, symbols in reads for c in (*states, *symbols))


@unique
class WatchdogValue(StrEnum):
    TIMEOUT = "timeout"  # write the timeout itself (Quasar reg 88, EVTEC idle timeout)
    COUNTER = "counter"  # write an incrementing counter (SunSpec 715 ControllerHb)
    CONSTANT = "constant"  # write ``constant`` every time


@dataclass(frozen=True, slots=True)
class Watchdog:
    """The device reverts to its safe state when not refreshed for ``timeout_s``; the gateway
    refreshes every ``refresh_s`` (evcc rewrites at timeout/2), so a dead gateway lets the
    device fall back on its own."""

    point: str
    timeout_s: float
    refresh_s: float
    value: WatchdogValue = WatchdogValue.TIMEOUT
    constant: int = 0
    # What the device does when it reverts, in words, for the docs and for `profiles show`.
    reverts_to: str = ""


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a fixed raw value, e.g. an init step that puts the device in remote mode."""

    point: str
    value: int


#: The step of a sequence that waits for its goal, read back: ``forming`` for enter_forming;
#: ``stopped`` (or ``no_ev``) with the power at zero for leave_forming and stop.
CONFIRM = "confirm"
#: The charger's command roles a sequence may name.
SEQUENCE_COMMANDS = ("start", "stop", "grid_forming_on", "grid_forming_off")


@dataclass(frozen=True, slots=True)
class Sequences:
    """The order of a charger's steps (``[sequences]``): command roles and ``confirm``.

    Devices differ: one must leave backup (grid-forming) mode before it accepts a stop, another
    must be stopped first. The defaults are the order that suits the shipped profiles.
    """

    # Backup mode on, then start; confirmed by the state reading forming.
    enter_forming: tuple[str, ...] = ("grid_forming_on", "start", CONFIRM)
    # Used by a stop while grid-forming may be on (after connect, or once asked for): stop,
    # confirmed stopped at zero power, then backup mode off (a stopped charger moves nothing).
    leave_forming: tuple[str, ...] = ("stop", CONFIRM, "grid_forming_off")
    # A stop with grid-forming known to be off.
    stop: tuple[str, ...] = ("stop", CONFIRM)


@dataclass(frozen=True, slots=True)
class SunSpecDiscovery:
    """Points are found at connect time by walking the SunSpec model chain."""

    bases: tuple[int, ...] = (40000, 0, 50000)
    required_models: tuple[int, ...] = (1,)
    # Models a role may use although the device need not have them (713 SoC, 715 heartbeat):
    # the binder leaves those roles unbound when the model is absent.
    optional_models: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    kind: DeviceKind
    vendor: str
    model: str
    description: str
    source: str  # the file it came from (or "<sunspec>" for a discovered binding)
    unit_id: int = 1
    pacing: Pacing = field(default_factory=Pacing)
    points: Mapping[str, Point] = field(default_factory=lambda: MappingProxyType({}))
    roles: Mapping[str, Binding] = field(default_factory=lambda: MappingProxyType({}))
    watchdog: Watchdog | None = None
    init: tuple[Write, ...] = ()
    sunspec: SunSpecDiscovery | None = None
    sequences: Sequences = field(default_factory=Sequences)  # chargers only
    # Ratings the device does not report itself (W); None means "read it from the device".
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    # Things in this profile that are not from a public map (e.g. a backup-mode register we
    # assume); `gateway profiles show` prints them so nobody mistakes them for vendor facts.
    assumptions: tuple[str, ...] = ()

    def role(self, name: str) -> Binding | None:
        return self.roles.get(name)

    def point_for(self, role: str) -> Point:
        """The point bound to ``role``; KeyError names the profile when it is absent."""
        binding = self.roles.get(role)
        if binding is None:
            msg = f"profile {self.name!r} has no {role!r} role"
            raise KeyError(msg)
        return self.points[binding.point]


# ---------------------------------------------------------------------------------------------
# Roles: what the drivers understand. ``required`` roles must be bound for a profile of that
# kind to load; the kinds of binding are checked by the loader.


@unique
class RoleKind(StrEnum):
    COMMAND = "command"  # write ``value`` (a symbol) to the point
    SETPOINT = "setpoint"  # write a number; ``positive`` says the device's sign convention
    MEASURE = "measure"  # read a number; ``positive`` where a sign matters
    STATE = "state"  # read an enum; ``states`` maps categories to symbols
    SETTING = "setting"  # read/write a number with no sign (timeouts, SoC floor)


@dataclass(frozen=True, slots=True)
class RoleSpec:
    kind: RoleKind
    description: str
    # For STATE roles: the categories the driver knows. For SETPOINT/MEASURE roles with a sign:
    # the senses a profile may declare.
    categories: tuple[str, ...] = ()
    senses: tuple[Sense, ...] = ()


_RATED = (
    "the device's own discharge/generation rating (W), read at connect and then rarely: it "
    "lowers the rating reported north and the ramp reference, never above the configured one"
)
_RATED_CHARGE = (
    "the device's own charge rating (W), read as rated_w: it lowers the charge rate reported "
    "north and what the device is asked to absorb, never above the configured one"
)
_POWER = (Sense.CHARGE, Sense.DISCHARGE, Sense.GENERATION)
_NET = (Sense.IMPORT, Sense.EXPORT)

ROLES: Mapping[DeviceKind, Mapping[str, RoleSpec]] = MappingProxyType(
    {
        DeviceKind.METER_RELAY: MappingProxyType(
            {
                "relay_open": RoleSpec(RoleKind.COMMAND, "command the islanding relay open"),
                "relay_close": RoleSpec(RoleKind.COMMAND, "command the islanding relay closed"),
                "relay_state": RoleSpec(
                    RoleKind.STATE,
                    "the relay's confirmed position from its auxiliary contact",
                    categories=("open", "closed", "moving", "fault"),
                ),
                "relay_faults": RoleSpec(
                    RoleKind.MEASURE,
                    "the relay's fault bits: any bit set fails a relay command at once, with "
                    "the bits named, instead of after the confirmation timeout",
                ),
                "net_power": RoleSpec(
                    RoleKind.MEASURE, "site net power through the meter", senses=_NET
                ),
                "net_reactive_power": RoleSpec(
                    RoleKind.MEASURE, "site net reactive power through the meter (var)", senses=_NET
                ),
                "grid_voltage": RoleSpec(RoleKind.MEASURE, "voltage on the utility side (V)"),
                "grid_frequency": RoleSpec(RoleKind.MEASURE, "frequency on the utility side (Hz)"),
                "load_voltage": RoleSpec(RoleKind.MEASURE, "voltage on the home side (V)"),
                "load_frequency": RoleSpec(RoleKind.MEASURE, "frequency on the home side (Hz)"),
                "current_l1": RoleSpec(RoleKind.MEASURE, "phase L1 current through the panel (A)"),
                "current_l2": RoleSpec(RoleKind.MEASURE, "phase L2 current through the panel (A)"),
                "current_l3": RoleSpec(RoleKind.MEASURE, "phase L3 current through the panel (A)"),
            }
        ),
        DeviceKind.METER: MappingProxyType(
            {
                "net_power": RoleSpec(
                    RoleKind.MEASURE, "site net power through the meter", senses=_NET
                ),
                "net_reactive_power": RoleSpec(
                    RoleKind.MEASURE, "site net reactive power through the meter (var)", senses=_NET
                ),
                "current_l1": RoleSpec(RoleKind.MEASURE, "phase L1 current through the panel (A)"),
                "current_l2": RoleSpec(RoleKind.MEASURE, "phase L2 current through the panel (A)"),
                "current_l3": RoleSpec(RoleKind.MEASURE, "phase L3 current through the panel (A)"),
            }
        ),
        DeviceKind.CHARGER: MappingProxyType(
            {
                "start": RoleSpec(RoleKind.COMMAND, "start (dis)charging at the setpoint"),
                "stop": RoleSpec(RoleKind.COMMAND, "stop all power flow"),
                "power_setpoint": RoleSpec(
                    RoleKind.SETPOINT, "signed power setpoint (W)", senses=_POWER
                ),
                "charge_limit": RoleSpec(RoleKind.SETPOINT, "charge power limit, unsigned (W)"),
                "discharge_limit": RoleSpec(
                    RoleKind.SETPOINT, "discharge power limit, unsigned (W)"
                ),
                "grid_forming_on": RoleSpec(
                    RoleKind.COMMAND, "enter grid-forming (backup / V2H) mode"
                ),
                "grid_forming_off": RoleSpec(RoleKind.COMMAND, "leave grid-forming mode"),
                "state": RoleSpec(
                    RoleKind.STATE,
                    "the charger's operating state",
                    categories=("stopped", "charging", "discharging", "forming", "no_ev", "fault"),
                ),
                "power": RoleSpec(RoleKind.MEASURE, "measured power (W)", senses=_POWER),
                "soc": RoleSpec(RoleKind.MEASURE, "EV state of charge (%)"),
                "soc_floor": RoleSpec(RoleKind.SETTING, "device-side minimum SoC (%)"),
                "rated_w": RoleSpec(RoleKind.MEASURE, _RATED),
                "rated_charge_w": RoleSpec(RoleKind.MEASURE, _RATED_CHARGE),
            }
        ),
        DeviceKind.DER: MappingProxyType(
            {
                "power": RoleSpec(RoleKind.MEASURE, "measured active power (W)", senses=_POWER),
                "reactive_power": RoleSpec(
                    RoleKind.MEASURE, "measured reactive power (var)", senses=_POWER
                ),
                "w_max": RoleSpec(RoleKind.MEASURE, "maximum active power setting (W)"),
                "rated_w": RoleSpec(RoleKind.MEASURE, _RATED),
                "rated_charge_w": RoleSpec(RoleKind.MEASURE, _RATED_CHARGE),
                "limit_pct": RoleSpec(RoleKind.SETPOINT, "active power limit, % of w_max"),
                "limit_enable": RoleSpec(RoleKind.COMMAND, "enable the active power limit"),
                "power_setpoint": RoleSpec(
                    RoleKind.SETPOINT, "signed power setpoint (W)", senses=_POWER
                ),
                "setpoint_enable": RoleSpec(RoleKind.COMMAND, "enable the power setpoint"),
                "soc": RoleSpec(RoleKind.MEASURE, "battery state of charge (%)"),
                "connected": RoleSpec(
                    RoleKind.STATE,
                    "the DER's own grid connection",
                    categories=("connected", "disconnected"),
                ),
            }
        ),
    }
)

#: Roles that must be bound for a profile of each kind to load. Charger profiles need either a
#: signed ``power_setpoint`` or both unsigned limits; the loader checks that alternative.
REQUIRED: Mapping[DeviceKind, frozenset[str]] = MappingProxyType(
    {
        # The relay sits at the meter socket, on the utility side of the home: its grid_voltage
        # is the only reading that shows the grid's return while the home runs islanded (a
        # meter in the panel reads the island). net_power may come from a separate meter.
        DeviceKind.METER_RELAY: frozenset(
            {"relay_open", "relay_close", "relay_state", "grid_voltage"}
        ),
        DeviceKind.METER: frozenset({"net_power"}),
        DeviceKind.CHARGER: frozenset({"start", "stop", "state", "power", "soc"}),
        DeviceKind.DER: frozenset({"power"}),
    }
)


def sign(sense: Sense | None) -> int:
    """+1 if a positive device value means power into the home (the gateway's convention)."""
    return -1 if sense in (Sense.CHARGE, Sense.EXPORT) else 1
