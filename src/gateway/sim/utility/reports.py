"""What clients reported to the simulated utility, as decoded models: the query side of
:class:`~gateway.sim.utility.state.UtilityState` (pure, no I/O).

A conformance check asks these instead of parsing recorded bodies::

    state.der_status(lfdi)            # the last DERStatus PUT by that EndDevice (None: none yet)
    state.readings(lfdi)              # every MirrorMeterReading with a value, oldest first
    state.connection_point(lfdi)      # csipaus:ConnectionPoint as last PUT
    state.subscriptions(lfdi)         # its Subscriptions, decoded
    state.log_events(lfdi)            # the LogEvents (alarms) it POSTed, oldest first

``lfdi`` is an EndDevice's LFDI (any case); an unknown one raises ``KeyError``. The raw bodies
stay in the records and in the :class:`~gateway.sim.utility.recorder.Recorder`.
"""

from __future__ import annotations

from gateway.north.sep2.der_resources import (
    DERAvailability,
    DERCapability,
    DERSettings,
    DERStatus,
)
from gateway.north.sep2.metering import MirrorUsagePoint
from gateway.north.sep2.pubsub import ConnectionPoint, LogEvent
from gateway.sim.utility.records import (
    DerRecord,
    EndDeviceRecord,
    MirrorReading,
    Mup,
    SubscriptionRecord,
)


class ClientReports:
    """Mixed into :class:`~gateway.sim.utility.state.UtilityState`, which owns these lists."""

    end_devices: list[EndDeviceRecord]
    mups: list[Mup]

    def _reporter(self, lfdi: str) -> EndDeviceRecord:
        key = lfdi.upper()
        for e in self.end_devices:
            if e.lfdi == key:
                return e
        raise KeyError(f"no EndDevice {lfdi!r}")

    def _der(self, lfdi: str, der: int) -> DerRecord:
        record = self._reporter(lfdi).der(der)
        if record is None:
            raise KeyError(f"EndDevice {lfdi} has no DER {der}")
        return record

    def log_events(self, lfdi: str) -> list[LogEvent]:
        """The LogEvents (alarms) the EndDevice POSTed, oldest first."""
        return list(self._reporter(lfdi).log_events)

    # ------------------------------------------------------------------ DER (PUT by the client)
    def der_capability(self, lfdi: str, der: int = 1) -> DERCapability | None:
        return self._der(lfdi, der).capability

    def der_settings(self, lfdi: str, der: int = 1) -> DERSettings | None:
        return self._der(lfdi, der).settings

    def der_status(self, lfdi: str, der: int = 1) -> DERStatus | None:
        return self._der(lfdi, der).status

    def der_availability(self, lfdi: str, der: int = 1) -> DERAvailability | None:
        return self._der(lfdi, der).availability

    # ------------------------------------------------------------------ connection point
    def connection_point(self, lfdi: str) -> ConnectionPoint | None:
        """The EndDevice's ``csipaus:ConnectionPoint`` (None until PUT or set)."""
        return self._reporter(lfdi).connection_point

    def set_connection_point(self, lfdi: str, connection_point_id: str | None) -> None:
        """Script the ConnectionPoint (None: none, ``GET .../cp`` answers 404)."""
        edev = self._reporter(lfdi)
        edev.connection_point = (
            None if connection_point_id is None else ConnectionPoint(connection_point_id)
        )

    # ------------------------------------------------------------------ subscriptions
    def subscriptions(self, lfdi: str) -> list[SubscriptionRecord]:
        """The EndDevice's Subscriptions (``.resource`` is the decoded ``Subscription``)."""
        return list(self._reporter(lfdi).subscriptions)

    # ------------------------------------------------------------------ metering mirror
    def mup(self, number: int) -> Mup | None:
        """The MirrorUsagePoint served at ``/mup/{number}`` (None: none, or lost)."""
        return next((m for m in self.mups if m.number == number), None)

    def find_mup(self, mrid: str) -> Mup | None:
        key = mrid.upper()
        return next((m for m in self.mups if m.mrid == key), None)

    def mirror_usage_points(self, lfdi: str | None = None) -> list[MirrorUsagePoint]:
        """The MirrorUsagePoints held (as last POSTed), of the device ``lfdi`` (its
        ``deviceLFDI``) or posted by that client certificate if given."""
        return [m.resource for m in self.mups if _concerns(m, lfdi)]

    def readings(
        self, lfdi: str | None = None, *, mup: str | None = None, mrid: str | None = None
    ) -> list[MirrorReading]:
        """Every MirrorMeterReading POSTed with a value (a ``Reading`` or a
        ``MirrorReadingSet``), oldest first, each with its ReadingType (the mirror's when the
        POST left it out): of the device or client ``lfdi``, of the MirrorUsagePoint mRID
        ``mup``, with the MirrorMeterReading mRID ``mrid``."""
        return [
            r
            for m in self.mups
            if _concerns(m, lfdi) and (mup is None or m.mrid == mup.upper())
            for r in m.readings
            if mrid is None or r.reading.mRID.upper() == mrid.upper()
        ]

    def lose_mup(self, number: int | None = None) -> None:
        """Forget a MirrorUsagePoint (None: every one, as after a server reset): later POSTs
        to it answer 404 and the client must POST its MirrorUsagePoint to ``/mup`` again."""
        self.mups = [m for m in self.mups if number is not None and m.number != number]


def _concerns(m: Mup, lfdi: str | None) -> bool:
    if lfdi is None:
        return True
    key = lfdi.upper()
    return key in (m.resource.deviceLFDI.upper(), (m.poster or "").upper())
