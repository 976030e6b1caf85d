"""A simulated IEEE 2030.5 utility server (CSIP-AUS flavour) for tests, conformance and people.

:class:`UtilityState` is the scriptable state (pure), :class:`UtilityServer` serves it over
2030.5 mutual TLS, :class:`Recorder` keeps every exchange. ``gateway simulate utility`` runs one
from a TOML scenario (:mod:`gateway.sim.utility.scenario`).
"""

from gateway.sim.utility.recorder import Exchange, Recorder
from gateway.sim.utility.records import Change
from gateway.sim.utility.server import UtilityServer
from gateway.sim.utility.state import UtilityState

__all__ = ["Change", "Exchange", "Recorder", "UtilityServer", "UtilityState"]
