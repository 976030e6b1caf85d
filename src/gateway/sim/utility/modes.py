"""DERControl modes from plain values: the one place that turns a ``{"opModExpLimW": 1500, ...}``
mapping (a cactus-test-definitions action's parameters, an admin request's JSON) into a
:class:`DERControlBase`. Watts are ActivePower, flags are booleans; absent keys stay absent.
``opModFixedW`` is a SignedPerCent in hundredths of a percent and ``rampTms`` hundredths of a
second, both passed through as integers, as the schema types them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from gateway.north.sep2.model import ActivePower, DERControlBase

WATTS: Final = (
    "opModImpLimW",
    "opModExpLimW",
    "opModGenLimW",
    "opModLoadLimW",
    "opModStorageTargetW",
)
FLAGS: Final = ("opModConnect", "opModEnergize")
INTEGERS: Final = ("opModFixedW", "rampTms")
MODES: Final = WATTS + FLAGS + INTEGERS


def control_base(p: Mapping[str, object]) -> DERControlBase:
    """The modes named in ``p`` (other keys are ignored); ValueError on a value of the wrong
    type, naming the key."""
    kw: dict[str, object] = {}
    for k in MODES:
        if k not in p or p[k] is None:
            continue
        v = p[k]
        try:
            if k in WATTS:
                kw[k] = ActivePower.from_watts(float(v))  # type: ignore[arg-type]
            elif k in FLAGS:
                if not isinstance(v, bool | int):
                    raise TypeError
                kw[k] = bool(v)
            else:
                kw[k] = int(v)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ValueError(f"{k}: {v!r} is not a valid value") from None
    return DERControlBase(**kw)  # type: ignore[arg-type]


__all__ = ["MODES", "control_base"]
