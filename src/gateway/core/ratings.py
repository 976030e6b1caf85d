"""Which rating of each DER is in force: the configured one, or the device's own when lower.

Each DER has two ratings, one per direction: discharge (generation into the home;
``DerRating.max_discharge_w``) and charge (``max_charge_w``). For each, the installer's
configuration is the ceiling: a device that reports a higher rating (a nameplate read over
Modbus: SunSpec ``WMaxRtg`` / ``WChaRteMaxRtg``, a charger's hardware maximum) never raises it. A
device that reports less (derated, reconfigured, a smaller module than the site file says)
lowers what the gateway *reports* (2030.5 ``rtgMaxW`` / ``setMaxW``, ``rtgMaxChargeRateW`` /
``setMaxChargeRateW``), the reference its ramp rates are a percentage of (``setGradW`` /
``setSoftGradW``, discharge only), and what the allocator asks of that DER. The backfeed
allocator's budgets (panel, meter) keep using the configuration alone (``core.backfeed``).

A reading that is not a positive, finite number (0, "not implemented", NaN) is no rating: the
configured one stays in force. Device ids the configuration does not name are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

from gateway.core.backfeed import DerRating
from gateway.core.messages import Direction

__all__ = ["changed", "in_force", "usable"]

K = TypeVar("K", bound=Hashable)  # a reading's key: a DER id, or (DER id, direction)


def usable(rated_w: float | None) -> bool:
    """Whether a device's reading is a rating at all (positive and finite)."""
    return (
        isinstance(rated_w, int | float)
        and not isinstance(rated_w, bool)
        and math.isfinite(rated_w)
        and rated_w > 0
    )


def in_force(
    ders: Iterable[DerRating], device: Mapping[str, float], direction: Direction = "discharge"
) -> dict[str, float]:
    """Each configured DER's rating (W, in ``direction``): ``min(configured, device's)``, the
    configured one where the device gives none (or none usable)."""
    out: dict[str, float] = {}
    for d in ders:
        own = device.get(d.der_id)
        configured = d.max_discharge_w if direction == "discharge" else d.max_charge_w
        out[d.der_id] = configured if own is None or not usable(own) else min(configured, own)
    return out


def changed(fed: Mapping[K, float], read: Mapping[K, float]) -> dict[K, float]:
    """The readings in ``read`` that differ from what was last fed (a new DER counts), so each
    change reaches the engine once, and an unchanged re-read reaches it not at all."""
    return {der_id: w for der_id, w in read.items() if fed.get(der_id) != w}
