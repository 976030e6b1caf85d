"""2030.5 resources -> the core's protocol-neutral values (the one place the two vocabularies meet).

| 2030.5 / CSIP-AUS            | core ``ControlSet``      | conversion                         |
|------------------------------|--------------------------|------------------------------------|
| ``opModConnect``             | ``connect``              | as is                              |
| ``opModEnergize``            | ``energize``             | as is                              |
| ``opModIslandPermit``        | ``island_permit``        | as is (2030.5-2023)                |
| ``opModGridConnectPermit``   | ``grid_connect_permit``  | as is (2030.5-2023)                |
| ``csipaus:opModExpLimW``     | ``export_limit_w``       | ActivePower -> W                   |
| ``csipaus:opModImpLimW``     | ``import_limit_w``       | ActivePower -> W                   |
| ``csipaus:opModGenLimW``     | ``generation_limit_w``   | ActivePower -> W                   |
| ``csipaus:opModLoadLimW``    | ``load_limit_w``         | ActivePower -> W                   |
| ``opModMaxLimW``             | ``max_generation_pct``   | hundredths of % -> %               |
| ``opModFixedW``              | ``fixed_w_pct``          | hundredths of % -> % (signed)      |
| ``opModTargetW``             | ``target_w``             | ActivePower -> W                   |
| ``csipaus:opModStorageTargetW`` | ``storage_target_w``  | ActivePower -> W                   |
| ``rampTms``                  | ``ramp_time_s``          | hundredths of s -> s               |
| ``setGradW`` (defaults only) | ``ramp_rate_pct_s``      | hundredths of %/s -> %/s; 0 = none |
| ``setSoftGradW`` (defaults)  | ``soft_start_rate_pct_s`` | hundredths of %/s -> %/s; 0 = none |
| ``setESDelay`` (defaults)    | ``enter_service_delay_s`` | hundredths of s -> s               |
| ``setESRandomDelay`` (defaults) | ``enter_service_random_delay_s`` | hundredths of s -> s  |
| ``setESRampTms`` (defaults)  | ``enter_service_ramp_s``  | hundredths of s -> s; 0 = none     |

Anything else the server sent in a ``DERControlBase`` (curves, var/PF modes, ...) is returned
in ``unmapped`` with a sentence, never dropped silently: the caller logs it, and an event left
with no mode at all is answered 252 by the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.controls import ControlSet
from gateway.core.schedule import Event
from gateway.core.schedule import EventStatus as CoreEventStatus
from gateway.core.units import MRID
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControl, DERControlBase

ORIGIN = "sep2"


@dataclass(frozen=True, slots=True)
class MappedControls:
    controls: ControlSet
    unmapped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MappedEvent:
    event: Event
    unmapped: tuple[str, ...] = ()


def _w(p: ActivePower | None) -> float | None:
    return None if p is None else p.watts


def _hundredths(v: int | None) -> float | None:
    return None if v is None else v / 100


def control_set(base: DERControlBase) -> MappedControls:
    """The core's controls for one ``DERControlBase``, and what could not be mapped."""
    controls = ControlSet(
        connect=base.opModConnect,
        energize=base.opModEnergize,
        island_permit=base.opModIslandPermit,
        grid_connect_permit=base.opModGridConnectPermit,
        export_limit_w=_w(base.opModExpLimW),
        import_limit_w=_w(base.opModImpLimW),
        generation_limit_w=_w(base.opModGenLimW),
        load_limit_w=_w(base.opModLoadLimW),
        max_generation_pct=_hundredths(base.opModMaxLimW),
        fixed_w_pct=_hundredths(base.opModFixedW),
        target_w=_w(base.opModTargetW),
        storage_target_w=_w(base.opModStorageTargetW),
        ramp_time_s=_hundredths(base.rampTms),
    )
    unmapped = tuple(f"{name}: mode not supported by the gateway" for name in base.unsupported)
    return MappedControls(controls=controls, unmapped=unmapped)


def default_control_set(default: DefaultDERControl) -> MappedControls:
    """A DefaultDERControl's controls: its base, plus ``setGradW`` as the default ramp rate and
    ``setSoftGradW`` as the soft-start rate (for each, 0 means "no limit", which is the same as
    not setting it), and the enter-service settings: ``setESDelay``, ``setESRandomDelay`` as
    given (0 is a value: no delay, no random part) and ``setESRampTms`` (0 = no ramp, the same
    as not setting it). Range problems are left to :meth:`ControlSet.problems` (the default is
    refused with the reason)."""
    mapped = control_set(default.DERControlBase)
    more: dict[str, float] = {}
    if default.setGradW:
        more["ramp_rate_pct_s"] = default.setGradW / 100
    if default.setSoftGradW:
        more["soft_start_rate_pct_s"] = default.setSoftGradW / 100
    if default.setESDelay is not None:
        more["enter_service_delay_s"] = default.setESDelay / 100
    if default.setESRandomDelay is not None:
        more["enter_service_random_delay_s"] = default.setESRandomDelay / 100
    if default.setESRampTms:
        more["enter_service_ramp_s"] = default.setESRampTms / 100
    if not more:
        return mapped
    return MappedControls(mapped.controls.with_(**more), mapped.unmapped)


def event(control: DERControl, *, program: str, primacy: int) -> MappedEvent:
    """The core's :class:`Event` for one ``DERControl`` of the DERProgram ``program``.

    ``program`` (the DERProgram's href or mRID) and ``primacy`` come from the DERProgram, not
    the DERControl. Range problems are left to :meth:`Event.problems` (answered 253).
    """
    mapped = control_set(control.DERControlBase)
    unmapped = list(mapped.unmapped)
    if control.deviceCategory is not None:
        unmapped.append(
            f"deviceCategory {control.deviceCategory}: not checked against this device "
            "(the event is treated as addressed to it)"
        )
    ev = Event(
        mrid=MRID(control.mRID.upper()),
        program=program,
        primacy=primacy,
        creation_time=float(control.creationTime),
        start=float(control.interval.start),
        duration=float(control.interval.duration),
        controls=mapped.controls,
        randomize_start=control.randomizeStart or 0,
        randomize_duration=control.randomizeDuration or 0,
        status=CoreEventStatus(control.EventStatus.currentStatus),
        response_required=control.responseRequired or 0,
        reply_to=control.replyTo,
        origin=ORIGIN,
    )
    return MappedEvent(event=ev, unmapped=tuple(unmapped))
