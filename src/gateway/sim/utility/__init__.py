"""A simulated IEEE 2030.5 utility server (CSIP-AUS flavour) for tests, conformance and people.

:class:`UtilityState` is the scriptable state (pure) and answers what clients reported,
decoded (:mod:`.reports`: DER PUTs, mirror readings, ConnectionPoint, subscriptions);
:class:`UtilityServer` serves it over 2030.5 mutual TLS (the metering mirror: :mod:`.mirrors`;
Notifications with retries: :mod:`.notifier`); :class:`Recorder` keeps every exchange, raw and
decodable. ``gateway simulate utility`` runs one from a TOML scenario (:mod:`.scenario`).
"""

from gateway.sim.utility.recorder import Exchange, Recorder
from gateway.sim.utility.records import Change, MirrorReading
from gateway.sim.utility.server import UtilityServer
from gateway.sim.utility.state import UtilityState

__all__ = ["Change", "Exchange", "MirrorReading", "Recorder", "UtilityServer", "UtilityState"]
