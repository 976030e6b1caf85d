"""The site's configuration as the core sees it: validated once, passed in through constructors."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core import errors
from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet, Mode
from gateway.core.island import EnterService, OutageDetect


class ConfigError(errors.ConfigError, ValueError):
    """The site configuration cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    panel: PanelRating
    # Every controllable DER in allocation order; exactly one of them is the V2H charger.
    ders: tuple[DerRating, ...]
    charger_id: str
    enter_service: EnterService = field(default_factory=EnterService)
    outage: OutageDetect = field(default_factory=OutageDetect)
    # A device step (write + read-back) not confirmed within this time is a fault.
    step_timeout_s: float = 10.0
    # Relay/charger telemetry older than this is unknown: relay counts as CLOSED.
    telemetry_max_age_s: float = 5.0
    # Meter data older than this sends backfeed caps to the static 120 % allowance.
    max_meter_age_s: float = 5.0
    # The EV keeps this much for driving: no V2H discharge or grid-forming at or below it.
    backup_reserve_soc_pct: float = 20.0
    # |charger power| at or below this counts as "zero power" before the relay may close.
    zero_power_tolerance_w: float = 50.0
    # The home side of an open relay counts as de-energised below this voltage. A relay that
    # reads open while the home side is live (and the charger is not forming) is not trusted:
    # its auxiliary contact may be lying, or the contacts welded.
    dead_bus_v: float = 50.0
    # Raising a setpoint by less than this is not worth a Modbus write; lowering always is.
    setpoint_deadband_w: float = 50.0
    # A failed non-step write in GRID_CONNECTED is retried after this long.
    retry_after_s: float = 5.0
    # The installer's own limits (interconnection agreement), composed like any other source.
    site_policy: ControlSet = field(default_factory=ControlSet)
    supported_modes: frozenset[Mode] = frozenset(Mode)
    # Finished events are forgotten this long after their last activity, so the schedule (and
    # the cost of every change to it) does not grow for ever. A server that still lists an
    # event this old gets it treated as new (answered 254 if it is over).
    event_retention_s: float = 7 * 86400.0

    @property
    def charger(self) -> DerRating:
        return next(d for d in self.ders if d.der_id == self.charger_id)

    def problems(self) -> list[str]:
        out = list(self.panel.problems())
        out += self.enter_service.problems()
        ids = [d.der_id for d in self.ders]
        if len(set(ids)) != len(ids):
            out.append(f"DER ids must be unique, got {ids}")
        if self.charger_id not in ids:
            out.append(f"charger_id {self.charger_id!r} is not one of the DER ids {ids}")
        for d in self.ders:
            if d.max_discharge_w < 0 or d.max_charge_w < 0:
                out.append(f"DER {d.der_id}: ratings must not be negative")
            out += [f"DER {p}" for p in d.nameplate_problems()]
        for name in (
            "step_timeout_s",
            "telemetry_max_age_s",
            "max_meter_age_s",
            "retry_after_s",
            "dead_bus_v",
            "event_retention_s",
        ):
            if not getattr(self, name) > 0:
                out.append(f"{name} must be positive")
        if not 0 <= self.backup_reserve_soc_pct <= 100:
            out.append("backup_reserve_soc_pct must be 0-100")
        if self.zero_power_tolerance_w < 0 or self.setpoint_deadband_w < 0:
            out.append("tolerances must not be negative")
        out += [f"site policy: {p}" for p in self.site_policy.problems()]
        return out

    def validated(self) -> SiteConfig:
        problems = self.problems()
        if problems:
            raise ConfigError("invalid site configuration:\n  - " + "\n  - ".join(problems))
        return self
