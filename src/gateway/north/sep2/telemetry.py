"""What the gateway tells the server about the site: the DER function set's four resources.

Pure builders from a protocol-neutral :class:`SiteState` (the runtime fills it from the
engine's telemetry) and :class:`SiteRatings` (configured, lowered by the devices' own) to
``DERCapability``, ``DERSettings``, ``DERStatus`` and ``DERAvailability``. The choices, each
checked by a CSIP-AUS procedure (sep2.md §5.6, Appendix A):

* ``genConnectStatus`` follows the islanding relay. Connected (bit 0) = the relay is confirmed
  closed; Available (bit 1) = connected and not in FAULT; Operating (bit 2) = available,
  energized, and a DER exchanging power with the grid *or carrying out a control that sets its
  output* (a limit or a setpoint in force). A DER held at 0 W by a control (a DefaultDERControl
  of 0 W import and export, ``opModGenLimW=0``) is still operating: it is doing what it was
  told; one told to cease to energize is not (SA Power Networks' reading of the bit for
  CSIP-AUS; ALL-11 and ALL-12 expect bit 2 again once their control ends, under a 0 W
  default). While the site is islanded (``opModConnect=false`` or an outage) bits 0-2 are all
  clear (ALL-07, ALL-12, ALL-27); Fault (bit 4) mirrors the engine's FAULT phase. Its
  ``dateTime`` is when the value last changed, not when it was read.
* ``operationalModeStatus``: 2 Operational while grid-connected and energized, 1 Off while
  islanded, in FAULT, or told to cease to energize (ALL-08: the DER is not operating *as a
  grid-connected DER*). Operating (bit 2 of ``genConnectStatus``) clears likewise.
* ``DERSettings.setGradW``: the ``setGradW`` of the DefaultDERControl of the highest-priority
  program that has one (ALL-13); 0 (no limit of our own) when none does.
* ``stateOfChargeStatus``: the EV's SoC in hundredths of a percent, absent when no EV is
  plugged in (a stale SoC would mislead the utility's planning).
* ``storConnectStatus``: the EV's connection to the charger (Connected + Available), absent
  when it is unknown.
* ``DERAvailability``: ``statWAvail`` is what the charger could still discharge into the grid
  now (0 below the backup reserve), ``reservePercent`` the backup reserve (hundredths of %).
* ``DERCapability.modesSupported`` and ``doeModesSupported`` list what the engine can act on
  (``SiteConfig.supported_modes``), so the utility is never promised a mode that is answered 252.
  So does ``vppModesSupported`` (bit 0: ``opModStorageTargetW``), with ``vppModesEnabled`` and
  ``setMinWh`` (the backup reserve x the storage's capacity: the stored energy the gateway does
  not discharge below), written only when the session speaks a CSIP-AUS 1.3 namespace
  (``storage=True``): 1.2's schema has no such elements.
* ``rtgMaxVA`` / ``rtgMaxVar`` / ``rtgMaxVarNeg`` / ``rtgMinPF*`` and their ``set*`` (equal):
  each DER's configured nameplate, else that of a DER run at unity PF (VA = its larger W
  rating, 0 var, PF 1.0); VA and var summed over the DER, the minimum PFs the smallest.
  ``rtgMaxVarNeg`` is written negative (var received), as 2030.5 has it.
* ``rtgMaxW`` / ``setMaxW``: the aggregate DER's generation rating, the sum over the site's DER
  of their rated discharge/generation (EV charger + PV). Each DER's is the one in force
  (``core.ratings``): the configured one, or the device's own when it reports less, read at start
  and then rarely (:meth:`SiteRatings.with_rated`), so a changed rating is PUT again without a
  restart (MUL-03 step d). The engine's ``setGradW`` reference (% of the site's DER rating per
  second) is the same sum. ``rtgMaxChargeRateW`` / ``rtgMaxDischargeRateW`` / ``rtgMaxWh`` are
  the storage's (the charger); its discharge rate follows its own rating too, its charge rate
  and capacity stay configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntFlag
from typing import Final

from gateway.core.controls import Mode
from gateway.core.site import SiteConfig
from gateway.north.sep2.der_resources import (
    MODE_CHARGE,
    MODE_CONNECT,
    MODE_DISCHARGE,
    MODE_ENERGIZE,
    MODE_FIXED_W,
    MODE_MAX_LIM_W,
    MODE_TARGET_W,
    ApparentPower,
    ConnectStatus,
    ConnectStatusType,
    DERAvailability,
    DERCapability,
    DERSettings,
    DERStatus,
    DERTypeCode,
    DeviceCategory,
    DOEModes,
    OperationalMode,
    OperationalModeStatusType,
    PowerFactor,
    ReactivePower,
    StateOfChargeStatusType,
    VPPModes,
)
from gateway.north.sep2.model import ActivePower
from gateway.north.sep2.pubsub import LogEvent

__all__ = [
    "SiteRatings",
    "SiteState",
    "der_availability",
    "der_capability",
    "der_settings",
    "der_status",
    "device_category",
    "doe_modes",
    "modes_supported",
    "vpp_modes",
]

_PERCENT_SCALE = 100  # PerCent: hundredths of a percent


@dataclass(frozen=True, slots=True)
class SiteRatings:
    """The DER as configured (W, positive magnitudes): the storage's rates and capacity, and
    the generation rating of all the site's DER together."""

    max_discharge_w: float  # the storage's, into the home/grid
    max_charge_w: float
    der_type: int = DERTypeCode.EVSE
    set_grad_w: int = 0  # hundredths of %/s; 0 = no ramp limit of our own
    backup_reserve_pct: float = 20.0
    capacity_wh: float | None = None  # the storage's usable energy (rtgMaxWh, setMaxWh)
    # The sum of every DER's rated discharge/generation (rtgMaxW, setMaxW); None: the storage
    # is the site's only DER, so its discharge rate.
    generation_w: float | None = None
    # The VA / var / PF nameplate of all the site's DER together (DerRating's *_rating): VA and
    # var summed (bounds on the sum of the DER's vectors), minimum PFs the smallest (the mix's
    # PF is never below its lowest member's). max_va None: max(rtg_max_w, max_charge_w).
    max_va: float | None = None
    max_var: float = 0.0  # var delivered
    max_var_neg: float = 0.0  # var received, a magnitude (written negative)
    min_pf_over_excited: float = 1.0
    min_pf_under_excited: float = 1.0

    @property
    def rtg_max_va(self) -> float:
        return max(self.rtg_max_w, self.max_charge_w) if self.max_va is None else self.max_va

    @property
    def rtg_max_w(self) -> float:
        return self.max_discharge_w if self.generation_w is None else self.generation_w

    @property
    def min_wh(self) -> float | None:
        """The stored energy kept (``setMinWh``): the backup reserve of the capacity."""
        if self.capacity_wh is None:
            return None
        return self.backup_reserve_pct / 100.0 * self.capacity_wh

    @classmethod
    def of_site(cls, config: SiteConfig) -> SiteRatings:
        """The ratings of a site's V2H charger and its DER's total, as configured.

        The total is the engine's ``setGradW`` reference too (``core.engine``): the sum of every
        DER's ``max_discharge_w``, so ``setMaxW`` and the ramp agree."""
        c = config.charger
        return cls(
            max_discharge_w=c.max_discharge_w,
            max_charge_w=c.max_charge_w,
            backup_reserve_pct=config.backup_reserve_soc_pct,
            capacity_wh=c.capacity_wh,
            generation_w=sum(d.max_discharge_w for d in config.ders),
            max_va=sum(d.va_rating for d in config.ders),
            max_var=sum(d.var_rating for d in config.ders),
            max_var_neg=sum(d.var_neg_rating for d in config.ders),
            min_pf_over_excited=min(d.pf_over_excited_rating for d in config.ders),
            min_pf_under_excited=min(d.pf_under_excited_rating for d in config.ders),
        )

    def with_rated(
        self,
        rated: Mapping[str, float],
        storage_id: str,
        *,
        charge: Mapping[str, float] | None = None,
    ) -> SiteRatings:
        """These ratings with each DER's ratings in force (W by DER id, the engine's
        ``der_ratings`` and ``der_charge_ratings``: min(configured, device's)). The aggregate is
        the discharge ratings' sum, the storage's discharge and charge rates its own; none ever
        rises above these (configured) ones."""
        out = self
        if charge and storage_id in charge:
            out = replace(out, max_charge_w=min(self.max_charge_w, charge[storage_id]))
        if not rated:
            return out
        discharge = min(self.max_discharge_w, rated.get(storage_id, self.max_discharge_w))
        total = None if self.generation_w is None else min(self.generation_w, sum(rated.values()))
        return replace(out, max_discharge_w=discharge, generation_w=total)

    def bounds(self) -> tuple[float, ...]:
        """The ratings that bound a DERSettings value (setMaxW, the charge and discharge rates,
        setMaxWh, setMaxVA): see :func:`lowers`."""
        return (
            self.rtg_max_w,
            self.max_charge_w,
            self.max_discharge_w,
            self.capacity_wh or 0.0,
            self.rtg_max_va,
        )

    def stored_wh(self, soc_pct: float | None) -> float | None:
        if soc_pct is None or self.capacity_wh is None:
            return None
        return min(100.0, max(0.0, soc_pct)) / 100.0 * self.capacity_wh


def lowers(new: SiteRatings, old: SiteRatings | None) -> bool:
    """Whether any rating that bounds a setting is lower in ``new`` than in ``old`` (None:
    nothing PUT yet). A change that lowers one rating and raises another has no safe order
    for two PUTs; it counts as lowering (ratings change by a device's own reading, rarely,
    and one direction at a time in practice)."""
    return old is not None and any(n < o for n, o in zip(new.bounds(), old.bounds(), strict=True))


@dataclass(frozen=True, slots=True)
class SiteState:
    """One snapshot of the site, in server time."""

    at: float
    grid_connected: bool  # the islanding relay is confirmed closed
    connect_changed_at: float  # when ``grid_connected`` (or ``fault``) last changed
    fault: bool = False
    der_w: float | None = None  # total DER output, positive = generation/discharge
    soc_pct: float | None = None
    ev_connected: bool | None = None
    site_w: float | None = None  # at the connection point, positive = import
    site_var: float | None = None  # reactive, positive = import (lagging)
    der_var: float | None = None  # the DER's reactive power, positive = injected
    voltage_v: float | None = None  # grid side of the relay
    frequency_hz: float | None = None
    energized: bool = True  # False while opModEnergize=false (or an override) is in force
    alarms: int = 0  # DerAlarm bits in force
    # Some DER behind the site could run (not all switched off or faulted); the connection
    # point's relay alone does not make the aggregate DER connected (MUL-01).
    der_available: bool = True
    # A control that sets the DER's output is in force (a limit or a setpoint, from any
    # source): the DER is operating under it even while it holds them at 0 W.
    dispatched: bool = False


class DerAlarm(IntFlag):
    """``DERStatus.alarmStatus`` bits (2030.5), each with a pair of LogEvent codes (CSIP
    Implementation Guide Table 14): ``2 * bit`` when raised, ``2 * bit + 1`` when it returns
    to normal. Bits 11 and up are reserved."""

    OVER_CURRENT = 1 << 0
    OVER_VOLTAGE = 1 << 1
    UNDER_VOLTAGE = 1 << 2
    OVER_FREQUENCY = 1 << 3
    UNDER_FREQUENCY = 1 << 4
    VOLTAGE_IMBALANCE = 1 << 5
    CURRENT_IMBALANCE = 1 << 6
    LOCAL_EMERGENCY = 1 << 7
    REMOTE_EMERGENCY = 1 << 8
    LOW_INPUT_POWER = 1 << 9
    PHASE_ROTATION = 1 << 10


IEEE_2030_5_PEN = 40732  # "IEEE 2030.5-assigned logEventCodes SHALL use the IEEE 2030.5 PEN"
PROFILE_2030_5 = 2
FUNCTION_SET_DER = 11


def alarm_changes(previous: int, current: int) -> list[tuple[DerAlarm, bool]]:
    """Each alarm bit that changed, lowest first, with True when it was raised."""
    return [(alarm, bool(current & alarm)) for alarm in DerAlarm if (previous ^ current) & alarm]


def alarm_log_event(alarm: DerAlarm, raised: bool, *, at: float, event_id: int) -> LogEvent:
    """The LogEvent for one alarm raised (or returned to normal), IEEE 2030.5-assigned codes."""
    bit = alarm.bit_length() - 1
    name = (alarm.name or "ALARM").replace("_", " ").lower()
    return LogEvent(
        createdDateTime=int(at),
        functionSet=FUNCTION_SET_DER,
        logEventCode=2 * bit + (0 if raised else 1),
        logEventID=event_id % 0x10000,
        logEventPEN=IEEE_2030_5_PEN,
        profileID=PROFILE_2030_5,
        details=(name if raised else f"{name}: normal")[:32],
    )


#: The DeviceCategoryType bit of each kind of DER the engine drives (``DerRating.kind``): the V2H
#: charger is an EVSE (the EV behind it comes and goes, as DERCapability's type EVSE says).
CATEGORY_OF_KIND: Final = {
    "charger": DeviceCategory.EVSE,
    "pv": DeviceCategory.PHOTOVOLTAIC_SYSTEM,
    "battery": DeviceCategory.OTHER_STORAGE_SYSTEM,
}


def device_category(config: SiteConfig) -> str:
    """``EndDevice.deviceCategory`` (HexBinary32, 8 hex digits) of the site: one bit per kind of
    DER behind the EndDevice. The V2H home with PV is EVSE | Photovoltaic System, 00220000."""
    bits = DeviceCategory(0)
    for d in config.ders:
        bits |= CATEGORY_OF_KIND.get(d.kind, DeviceCategory(0))
    return f"{int(bits):08X}"


def modes_supported(modes: Iterable[Mode]) -> int:
    """``DERControlType`` bits for the engine's supported modes."""
    supported = set(modes)
    bits = MODE_CHARGE | MODE_DISCHARGE  # a bidirectional charger does both
    for mode, bit in (
        (Mode.CONNECT, MODE_CONNECT),
        (Mode.ENERGIZE, MODE_ENERGIZE),
        (Mode.FIXED_W_PCT, MODE_FIXED_W),
        (Mode.MAX_GENERATION_PCT, MODE_MAX_LIM_W),
        (Mode.TARGET_W, MODE_TARGET_W),
    ):
        if mode in supported:
            bits |= bit
    return bits


def doe_modes(modes: Iterable[Mode]) -> DOEModes:
    supported = set(modes)
    out = DOEModes(0)
    for mode, bit in (
        (Mode.EXPORT_LIMIT_W, DOEModes.EXP_LIM_W),
        (Mode.IMPORT_LIMIT_W, DOEModes.IMP_LIM_W),
        (Mode.GENERATION_LIMIT_W, DOEModes.GEN_LIM_W),
        (Mode.LOAD_LIMIT_W, DOEModes.LOAD_LIM_W),
    ):
        if mode in supported:
            out |= bit
    return out


def vpp_modes(modes: Iterable[Mode]) -> VPPModes:
    return VPPModes.STORAGE_TARGET_W if Mode.STORAGE_TARGET_W in set(modes) else VPPModes(0)


def der_capability(
    r: SiteRatings, modes: Iterable[Mode], *, csipaus: bool = True, storage: bool = False
) -> DERCapability:
    """``csipaus=False`` (US CSIP) leaves out the CSIP-AUS element plain sep.xsd does not know;
    ``storage=True`` (a CSIP-AUS 1.3 namespace) adds ``vppModesSupported``."""
    modes = tuple(modes)
    return DERCapability(
        modesSupported=modes_supported(modes),
        rtgMaxW=ActivePower.from_watts(r.rtg_max_w),
        type=int(r.der_type),
        doeModesSupported=doe_modes(modes) if csipaus else None,
        rtgMaxChargeRateW=ActivePower.from_watts(r.max_charge_w),
        rtgMaxDischargeRateW=ActivePower.from_watts(r.max_discharge_w),
        rtgMaxVA=ApparentPower.from_amount(r.rtg_max_va),
        rtgMaxVar=ReactivePower.from_amount(r.max_var),
        rtgMaxVarNeg=ReactivePower.from_amount(-r.max_var_neg),
        rtgMaxWh=_wh(r.capacity_wh),
        rtgMinPFOverExcited=PowerFactor.from_ratio(r.min_pf_over_excited),
        rtgMinPFUnderExcited=_under_excited(r.min_pf_under_excited),
        vppModesSupported=vpp_modes(modes) if csipaus and storage else None,
    )


def der_settings(
    r: SiteRatings,
    modes: Iterable[Mode],
    *,
    at: float,
    csipaus: bool = True,
    storage: bool = False,
) -> DERSettings:
    """As :func:`der_capability`; ``storage=True`` adds ``vppModesEnabled`` and ``setMinWh``."""
    modes = tuple(modes)
    vpp = csipaus and storage
    return DERSettings(
        setGradW=r.set_grad_w,
        setMaxW=ActivePower.from_watts(r.rtg_max_w),
        updatedTime=int(at),
        modesEnabled=modes_supported(modes),
        setMaxChargeRateW=ActivePower.from_watts(r.max_charge_w),
        setMaxDischargeRateW=ActivePower.from_watts(r.max_discharge_w),
        # The settings are the ratings (as setMaxW = rtgMaxW): the gateway sets no lower limit.
        setMaxVA=ApparentPower.from_amount(r.rtg_max_va),
        setMaxVar=ReactivePower.from_amount(r.max_var),
        setMaxVarNeg=ReactivePower.from_amount(-r.max_var_neg),
        setMaxWh=_wh(r.capacity_wh),
        setMinPFOverExcited=PowerFactor.from_ratio(r.min_pf_over_excited),
        setMinPFUnderExcited=_under_excited(r.min_pf_under_excited),
        doeModesEnabled=doe_modes(modes) if csipaus else None,
        vppModesEnabled=vpp_modes(modes) if vpp else None,
        setMinWh=_wh(r.min_wh) if vpp else None,
    )


def _under_excited(pf: float) -> PowerFactor:
    """An under-excited minimum PF "SHALL be a positive value between 0.0 and 0.9999" (2030.5,
    unlike the over-excited one's 1.0): unity is written 0.9999, in ten-thousandths."""
    whole = PowerFactor.from_ratio(pf)  # thousandths, and the range check (0, 1]
    return whole if whole.displacement < 1_000 else PowerFactor(displacement=9_999, multiplier=-4)


def _wh(wh: float | None) -> ActivePower | None:
    # WattHour has ActivePower's shape (value x 10^multiplier); the value is non-negative.
    return None if wh is None else ActivePower.from_watts(wh)


def _connect_bits(s: SiteState) -> ConnectStatus:
    bits = ConnectStatus(0)
    if s.grid_connected and s.der_available:
        bits |= ConnectStatus.CONNECTED
        if not s.fault:
            bits |= ConnectStatus.AVAILABLE
            flowing = s.der_w is not None and abs(s.der_w) > 0
            if s.energized and (flowing or s.dispatched):
                bits |= ConnectStatus.OPERATING
    if s.fault:
        bits |= ConnectStatus.FAULT
    return bits


def der_status(s: SiteState) -> DERStatus:
    changed = int(s.connect_changed_at)
    operating = s.grid_connected and s.der_available and not s.fault and s.energized
    mode = OperationalMode.OPERATIONAL if operating else OperationalMode.OFF
    soc = None
    if s.soc_pct is not None and s.ev_connected is not False:
        value = round(min(100.0, max(0.0, s.soc_pct)) * _PERCENT_SCALE)
        soc = StateOfChargeStatusType(dateTime=int(s.at), value=value)
    stor = None
    if s.ev_connected is not None:
        ev = ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE if s.ev_connected else 0
        stor = ConnectStatusType(dateTime=int(s.at), value=ConnectStatus(ev))
    return DERStatus(
        readingTime=int(s.at),
        alarmStatus=s.alarms,
        genConnectStatus=ConnectStatusType(dateTime=changed, value=_connect_bits(s)),
        operationalModeStatus=OperationalModeStatusType(dateTime=changed, value=int(mode)),
        stateOfChargeStatus=soc,
        storConnectStatus=stor,
    )


def der_availability(s: SiteState, r: SiteRatings) -> DERAvailability:
    above_reserve = s.soc_pct is not None and s.soc_pct > r.backup_reserve_pct
    can_discharge = s.grid_connected and not s.fault and bool(s.ev_connected) and above_reserve
    return DERAvailability(
        readingTime=int(s.at),
        reservePercent=round(r.backup_reserve_pct * _PERCENT_SCALE),
        statWAvail=ActivePower.from_watts(r.max_discharge_w if can_discharge else 0.0),
    )
