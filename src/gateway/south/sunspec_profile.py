"""Turn a SunSpec profile (roles named ``"704.WSet"``) into a concrete one for one device.

Pure: given the profile and the model chain the device reported, it returns the profile with
every symbol resolved and the points bound at their absolute addresses. Roles on optional
models the device lacks are dropped (so the driver sees them as absent), as is a watchdog on a
missing model; a missing *required* model is an error that names what the device does have.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from gateway.south import sunspec
from gateway.south.profile import Binding, Point, Profile, Write


def _model_of(point: str) -> str:
    return point.split(".", 1)[0]


def bind_profile(profile: Profile, chain: sunspec.Chain) -> tuple[Profile, dict[str, Point]]:
    if profile.sunspec is None:
        msg = f"profile {profile.name!r} is not a SunSpec profile"
        raise sunspec.SunSpecError(msg)
    present = set(chain.named())
    missing = [m for m in profile.sunspec.required_models if str(m) not in present]
    if missing:
        msg = (
            f"the device lacks required SunSpec model(s) {', '.join(map(str, missing))} "
            f"(it has {chain.describe()})"
        )
        raise sunspec.SunSpecError(msg)
    roles = {r: b for r, b in profile.roles.items() if _model_of(b.point) in present}
    watchdog = profile.watchdog
    if watchdog is not None and _model_of(watchdog.point) not in present:
        watchdog = None  # no heartbeat model: the 704 revert timers are the device's fallback
    init = tuple(w for w in profile.init if _model_of(w.point) in present)
    wanted = {b.point for b in roles.values()} | {w.point for w in init}
    if watchdog is not None:
        wanted.add(watchdog.point)
    points = sunspec.bind(chain, wanted)
    resolved = {r: _resolve(b, points[b.point]) for r, b in roles.items()}
    bound = replace(
        profile,
        roles=MappingProxyType(resolved),
        watchdog=watchdog,
        init=tuple(Write(w.point, w.value) for w in init),
        points=MappingProxyType(points),
    )
    return bound, points


def _resolve(b: Binding, point: Point) -> Binding:
    def raw(symbol: str) -> int:
        if symbol not in point.symbols:
            known = ", ".join(point.symbols) or "none"
            msg = f"{point.name} has no symbol {symbol!r} (it has: {known})"
            raise sunspec.SunSpecError(msg)
        return point.symbols[symbol]

    value = b.value if b.value is not None or b.symbol is None else raw(b.symbol)
    states = dict(b.states)
    for category, symbols in b.state_symbols.items():
        states[category] = frozenset(raw(s) for s in symbols)
    return replace(b, value=value, states=MappingProxyType(states))
