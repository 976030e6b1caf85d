"""The checks a schema cannot express, and the frozen Profile built only when all pass.

Runs on a document that already satisfies the schema (types and keys are right), so it can
trust shapes and concentrate on meaning: roles against points and symbols, register overlaps,
writability, the watchdog's timing, init values that fit their registers and ranges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.south.codec import CodecError, encode, pack_raw, raw_range
from gateway.south.profile import (
    CONFIRM,
    REQUIRED,
    ROLES,
    WORDS,
    Access,
    Binding,
    DeviceKind,
    Point,
    Profile,
    RoleKind,
    RoleSpec,
    Sense,
    Sequences,
    StateRead,
    SunSpecDiscovery,
    Watchdog,
    WatchdogValue,
    Write,
)
from gateway.south.profile_schema import SUNSPEC_POINT
from gateway.south.profiles._report import Report, did_you_mean, listing
from gateway.south.registers import DataType, Pacing, Table, WordOrder

KeyPath = tuple[str | int, ...]

_SUNSPEC_POINT = re.compile(SUNSPEC_POINT)
_NOT_INTEGER = frozenset({DataType.FLOAT32, DataType.FLOAT64, DataType.STRING})
_NOT_SCALED = frozenset(
    {
        DataType.ENUM16,
        DataType.ENUM32,
        DataType.BITFIELD16,
        DataType.BITFIELD32,
        DataType.BIT,
        DataType.STRING,
        DataType.SUNSSF,
    }
)
_BITFIELDS = {DataType.BITFIELD16: 16, DataType.BITFIELD32: 32}
_WRITES = frozenset({RoleKind.COMMAND, RoleKind.SETPOINT, RoleKind.SETTING})
_DER_WRITES = frozenset({"limit_pct", "limit_enable", "power_setpoint", "setpoint_enable"})
_READS = frozenset({RoleKind.MEASURE, RoleKind.STATE, RoleKind.SETTING})
# A state value as the profile gives it: a resolved raw int, or a SunSpec symbol kept as text.
_StateKey = int | str


def build(doc: Mapping[str, Any], report: Report) -> Profile | None:
    """The profile, or None when ``report`` gained problems (nothing is half-built)."""
    before = len(report.problems)
    builder = _Builder(doc, report)
    profile = builder.profile()
    return profile if len(report.problems) == before else None


class _Builder:
    def __init__(self, doc: Mapping[str, Any], report: Report) -> None:
        self.doc = doc
        self.report = report
        self.kind = DeviceKind(doc["profile"]["kind"])
        self.sunspec = self._sunspec(doc.get("sunspec"))
        self.points = self._points(doc.get("points", {}))

    def add(self, path: KeyPath, message: str) -> None:
        self.report.add(path, message)

    # -- the whole ----------------------------------------------------------------------------

    def profile(self) -> Profile:
        meta = self.doc["profile"]
        pacing = self.doc.get("pacing", {})
        default = Pacing()
        charge, discharge = meta.get("max_charge_w"), meta.get("max_discharge_w")
        return Profile(
            name=meta["name"],
            kind=self.kind,
            vendor=meta["vendor"],
            model=meta["model"],
            description=meta.get("description", ""),
            source=self.report.source,
            unit_id=meta.get("unit_id", Profile.__dataclass_fields__["unit_id"].default),
            pacing=Pacing(
                delay_s=pacing.get("delay_ms", default.delay_s * 1000) / 1000,
                timeout_s=pacing.get("timeout_ms", default.timeout_s * 1000) / 1000,
                setpoint_interval_s=pacing.get(
                    "setpoint_interval_ms", default.setpoint_interval_s * 1000
                )
                / 1000,
            ),
            points=MappingProxyType(self.points),
            roles=MappingProxyType(self._roles(self.doc["roles"])),
            watchdog=self._watchdog(self.doc.get("watchdog")),
            init=self._init(self.doc.get("init", [])),
            sunspec=self.sunspec,
            sequences=self._sequences(self.doc.get("sequences")),
            max_charge_w=None if charge is None else float(charge),
            max_discharge_w=None if discharge is None else float(discharge),
            assumptions=tuple(meta.get("assumptions", ())),
        )

    # -- points -------------------------------------------------------------------------------

    def _points(self, raw: Mapping[str, Any]) -> dict[str, Point]:
        points = {name: self._point(name, spec) for name, spec in raw.items()}
        for point in points.values():
            if point.scale_factor is not None:
                sf = points.get(point.scale_factor)
                path: KeyPath = ("points", point.name, "scale_factor")
                if sf is None:
                    self.add(
                        path,
                        f"no point {point.scale_factor!r}{did_you_mean(point.scale_factor, points)}"
                        f"; scale_factor names a point of type sunssf",
                    )
                elif sf.type is not DataType.SUNSSF:
                    self.add(
                        path,
                        f"point {sf.name!r} is {sf.type}, but a scale factor must be type sunssf",
                    )
        self._overlaps(points)
        return points

    def _point(self, name: str, spec: Mapping[str, Any]) -> Point:
        path: KeyPath = ("points", name)
        dtype = DataType(spec["type"])
        table = Table(spec.get("table", Table.HOLDING))
        access = Access(spec.get("access", Access.R))
        count = WORDS.get(dtype, 1)
        if dtype is DataType.STRING:
            if "count" in spec:
                count = spec["count"]
            else:
                self.add(
                    (*path, "count"),
                    "a string point needs count = <registers> (2 characters each)",
                )
        elif "count" in spec:
            self.add(
                (*path, "count"),
                f"count is only for strings; type {dtype} always occupies {count} "
                f"register{'s' if count > 1 else ''}: remove count",
            )
        if table.bits and dtype is not DataType.BIT:
            self.add((*path, "type"), f'a {table} point holds one bit: use type = "bit"')
        elif dtype is DataType.BIT and not table.bits:
            self.add((*path, "table"), f'type = "bit" is for coil or discrete points, not {table}')
        if access.writable and not table.writable:
            self.add(
                (*path, "access"),
                f'{table} points are read only: use access = "r" (writable values are '
                f"{'holding registers' if table is Table.INPUT else 'coils'})",
            )
        scale = float(spec.get("scale", 1))
        if scale != 1 or "scale_factor" in spec:
            key = "scale" if scale != 1 else "scale_factor"
            if dtype in _NOT_SCALED:
                self.add((*path, key), f"type {dtype} is not a number and cannot be scaled")
            elif "symbols" in spec:
                self.add((*path, key), "a point with symbols holds raw codes and cannot be scaled")
        point = Point(
            name=name,
            address=spec["address"],
            table=table,
            type=dtype,
            count=count,
            access=access,
            word_order=WordOrder(spec.get("word_order", WordOrder.BIG)),
            scale=scale,
            scale_factor=spec.get("scale_factor"),
            units=spec.get("units"),
            symbols=MappingProxyType(dict(spec.get("symbols", {}))),
            not_implemented=spec.get("not_implemented"),
            description=spec.get("description", ""),
            minimum=None if "minimum" not in spec else float(spec["minimum"]),
            maximum=None if "maximum" not in spec else float(spec["maximum"]),
        )
        self._check_symbols(point, path)
        self._check_range(point, spec, path)
        if point.not_implemented is not None:
            self._check_not_implemented(point, path)
        return point

    def _check_symbols(self, point: Point, path: KeyPath) -> None:
        if point.symbols and point.type in _NOT_INTEGER:
            self.add((*path, "symbols"), f"type {point.type} cannot have symbols")
            return
        if not point.symbols:
            return
        bits = _BITFIELDS.get(point.type)
        lo, hi = (0, bits - 1) if bits else raw_range(point.type)
        what = "bit number" if bits else "value"
        for symbol, value in point.symbols.items():
            if not lo <= value <= hi:
                self.add(
                    (*path, "symbols", symbol),
                    f"{what} {value} of {symbol!r} is outside {lo}..{hi} (type {point.type})",
                )

    def _check_not_implemented(self, point: Point, path: KeyPath) -> None:
        value = point.not_implemented
        if point.type in (DataType.STRING, DataType.BIT):
            self.add((*path, "not_implemented"), f"type {point.type} has no such marker")
            return
        # The codec compares the register pattern (0x8000 for int16, 0x7FC00000 for a float32
        # NaN), so a signed value here would never match: ask for the pattern instead.
        top = (1 << (16 * point.count)) - 1
        if value is not None and not 0 <= value <= top:
            hint = f"; write the register pattern {value + top + 1}" if -top <= value < 0 else ""
            self.add(
                (*path, "not_implemented"),
                f"{value} is not a {point.type} register pattern (0..{top}){hint}",
            )

    def _check_range(self, point: Point, spec: Mapping[str, Any], path: KeyPath) -> None:
        """minimum / maximum: numbers the point can hold, in order, on a point that is a number."""
        for key in ("minimum", "maximum"):
            if key not in spec:
                continue
            value = spec[key]  # as written (an integer stays one in messages)
            if point.type in _NOT_SCALED:
                self.add(
                    (*path, key),
                    f"type {point.type} is not a number and has no range: remove {key}",
                )
            elif point.symbols:
                self.add(
                    (*path, key),
                    f"a point with symbols holds raw codes and has no range: remove {key}",
                )
            elif not math.isfinite(value):
                self.add((*path, key), f"{key} = {value} is not a finite number")
            elif point.scale_factor is None:  # with one, what fits is known only at runtime
                self._encodes(point, value, (*path, key))
        lo, hi = point.minimum, point.maximum
        if lo is not None and hi is not None and lo > hi:
            self.add(
                (*path, "minimum"),
                f"minimum = {lo:g} is above maximum = {hi:g}: no value would be accepted",
            )

    def _admits(self, point: Point, value: float, path: KeyPath) -> bool:
        """Whether a value the profile itself writes (init, watchdog, a command's number) is in
        the point's range: a profile that cannot pass its own range check must not load."""
        if point.admits(value):
            return True
        self.add(
            path,
            f"{value:g} is outside the range of point {point.name!r} ({point.range_text()}, "
            "its minimum / maximum)",
        )
        return False

    def _overlaps(self, points: Mapping[str, Point]) -> None:
        for table in Table:
            laid = sorted(
                (p for p in points.values() if p.table is table), key=lambda p: (p.address, p.name)
            )
            for n, point in enumerate(laid):
                end = point.address + point.count - 1
                path: KeyPath = ("points", point.name, "address")
                if end > 65535:
                    self.add(path, f"{_span(point)} run past the last address 65535")
                for other in laid[:n]:
                    if other.address + other.count > point.address:
                        self.add(
                            path,
                            f"{point.name!r} ({table} {_span(point)}) overlaps {other.name!r} "
                            f"({_span(other)})",
                        )

    # -- references to points -------------------------------------------------------------------

    def _ref(self, name: str, path: KeyPath) -> Point | None:
        """The point a role, watchdog or init write names (None for SunSpec or when missing)."""
        if self.sunspec is not None:
            self._sunspec_ref(self.sunspec, name, path)
            return None
        point = self.points.get(name)
        if point is None:
            if _SUNSPEC_POINT.match(name):
                self.add(path, f"{name!r} is a SunSpec point name: add a [sunspec] table")
            else:
                self.add(
                    path,
                    f"no point {name!r}{did_you_mean(name, self.points)}; points: "
                    f"{listing(self.points)}",
                )
        return point

    def _sunspec_ref(self, sunspec: SunSpecDiscovery, name: str, path: KeyPath) -> None:
        if not _SUNSPEC_POINT.match(name):
            self.add(
                path,
                f"a SunSpec profile names points 'MODEL.Point' (e.g. '704.WSet'), not {name!r}",
            )
            return
        model = int(name.split(".", 1)[0])
        if model not in (*sunspec.required_models, *sunspec.optional_models):
            self.add(
                path,
                f"model {model} is in neither sunspec.required_models "
                f"({_models(sunspec.required_models)}) nor sunspec.optional_models "
                f"({_models(sunspec.optional_models)}): add it to one of them",
            )

    def _value(self, point: Point, value: int | str, path: KeyPath, *, raw: bool) -> int | None:
        """A symbol (its raw value) or a number for ``point``, checked against the point's range.

        A number in a state list is a raw reading (``raw=True``); a number to write (command,
        init) is a value as the driver writes it, which ``Device.write`` encodes with the
        point's scale, so it is checked with ``encode`` and kept as written. Points with
        symbols are never scaled, so a symbol's raw value is also what the driver writes.
        """
        if isinstance(value, str):
            if value not in point.symbols:
                self.add(
                    path,
                    f"{value!r} is not a symbol of point {point.name!r}"
                    f"{did_you_mean(value, point.symbols)}; its symbols: {listing(point.symbols)}",
                )
                return None
            return point.symbols[value]
        if point.type is DataType.STRING:
            self.add(path, f"point {point.name!r} is a string; only integers are written here")
            return None
        try:
            if raw:
                pack_raw(point, value)
            elif point.scale_factor is None:  # with one, the range is known only at runtime
                encode(point, value)
        except CodecError as exc:
            self.add(path, str(exc))
            return None
        if not raw and not self._admits(point, value, path):
            return None
        return value

    # -- roles --------------------------------------------------------------------------------

    def _roles(self, raw: Mapping[str, Any]) -> dict[str, Binding]:
        specs = ROLES[self.kind]
        bindings: dict[str, Binding] = {}
        for role, spec_raw in raw.items():
            spec = specs.get(role)
            if spec is None:
                owners = [k.value for k, roles in ROLES.items() if role in roles]
                self.add(
                    ("roles", role),
                    f"{role!r} is a {' and '.join(owners)} role, not a {self.kind} role"
                    f"{did_you_mean(role, specs)}; {self.kind} roles: {listing(specs)}",
                )
                continue
            binding = self._binding(role, spec, spec_raw)
            if binding is not None:
                bindings[role] = binding
        bound = set(raw) & set(specs)
        reported = self._confirmable(bindings, bound)
        self._required(bound, reported)
        return bindings

    def _confirmable(self, bindings: Mapping[str, Binding], bound: set[str]) -> set[str]:
        """Every command the profile binds can be confirmed by what it reads: the drivers
        confirm by read-back, so a profile that cannot would validate and then fault at run
        time. Returns the missing roles reported here (not reported again as required)."""
        missing: set[str] = set()

        def needs_category(command: str, state: str, category: str, what: str) -> None:
            b = bindings.get(state)
            if command not in bindings or b is None or category in b.categories():
                return
            self.add(
                ("roles", command),
                f"{command} cannot be confirmed: no register of roles.{state} reads "
                f"{category!r}; add states.{category} = [<the symbol the device shows {what}>] "
                f"to roles.{state}",
            )

        if self.kind is DeviceKind.METER_RELAY:
            needs_category("relay_open", "relay_state", "open", "when its contacts are open")
            needs_category("relay_close", "relay_state", "closed", "when they are closed")
        if self.kind is DeviceKind.CHARGER:
            needs_category("stop", "state", "stopped", "when stopped with an EV connected")
            needs_category("grid_forming_on", "state", "forming", "while it forms a grid")
            needs_category("start", "state", "charging", "while it charges")
            needs_category("start", "state", "discharging", "while it discharges")
        setpoints = sorted(r for r in bound if ROLES[self.kind][r].kind is RoleKind.SETPOINT)
        if setpoints and "power" in ROLES[self.kind] and "power" not in bound:
            missing.add("power")
            self.add(
                ("roles", "power"),
                f"{setpoints[0]} cannot be confirmed without a power measure (nor a stop at "
                "zero power): bind power = { point = '...', positive = '...' }",
            )
        if self.kind is DeviceKind.DER:
            # No state role confirms a DER's setpoint: only reading the register back does.
            for role in sorted(
                bound & {"limit_pct", "limit_enable", "power_setpoint", "setpoint_enable"}
            ):
                point = self.points.get(self.doc["roles"][role].get("point", ""))
                if point is not None and not point.access.readable:
                    self.add(
                        ("roles", role, "point"),
                        f"{role} writes point {point.name!r}, which is write only (access = w), "
                        "and a DER's setpoint is confirmed only by reading it back: make it "
                        'access = "rw" if the device reads it back',
                    )
        return missing

    def _required(self, bound: set[str], reported: set[str]) -> None:
        specs = ROLES[self.kind]
        for role in sorted(REQUIRED[self.kind] - bound - reported):
            self.add(
                ("roles", role),
                f"a {self.kind} profile must bind {role!r} ({specs[role].description})",
            )
        if self.kind is DeviceKind.CHARGER and "power_setpoint" not in bound:
            limits = {"charge_limit", "discharge_limit"}
            if not limits <= bound:
                have = f" (it has only {next(iter(limits & bound))})" if limits & bound else ""
                self.add(
                    ("roles",),
                    "a charger profile needs power_setpoint (signed) or both charge_limit and "
                    f"discharge_limit (unsigned){have}",
                )
        pair = {"grid_forming_on", "grid_forming_off"}
        if len(pair & bound) == 1:
            (missing,) = pair - bound
            self.add(
                ("roles", missing),
                f"grid_forming_on and grid_forming_off come as a pair: bind {missing!r} too "
                "(the gateway must be able to end grid-forming)",
            )

    def _binding(self, role: str, spec: RoleSpec, raw: Mapping[str, Any]) -> Binding | None:
        path: KeyPath = ("roles", role)
        before = len(self.report.problems)
        if "points" in raw:
            return self._several(role, spec, raw, path)
        point = self._ref(raw["point"], (*path, "point"))
        if point is not None:
            self._role_access(role, spec, point, (*path, "point"))
        self._only_for(role, spec, raw, "value", RoleKind.COMMAND, "the symbol to write")
        self._only_for(role, spec, raw, "states", RoleKind.STATE, "category = [symbols]")
        positive = self._positive(role, spec, raw.get("positive"), path)
        value: int | None = None
        symbol: str | None = None
        states: dict[str, frozenset[int]] = {}
        state_symbols: dict[str, frozenset[str]] = {}
        if spec.kind is RoleKind.COMMAND and "value" in raw:
            given = raw["value"]
            symbol = given if isinstance(given, str) else None
            if point is not None:
                value = self._value(point, given, (*path, "value"), raw=False)
            elif isinstance(given, int):
                value = given  # SunSpec: a raw number is taken as it is
        if spec.kind is RoleKind.STATE and "states" in raw:
            states, state_symbols = self._states(role, spec, point, raw["states"], path)
        ignore = self._ignore(role, point, raw.get("ignore"), (*path, "ignore"))
        if len(self.report.problems) != before:
            return None
        return Binding(
            role=role,
            point=raw["point"],
            value=value,
            positive=positive,
            states=MappingProxyType(states),
            symbol=symbol,
            state_symbols=MappingProxyType(state_symbols),
            ignore=ignore,
        )

    def _ignore(
        self, role: str, point: Point | None, raw: list[int | str] | None, path: KeyPath
    ) -> frozenset[int]:
        """relay_faults' bits that do not fail a command, as bit numbers."""
        if raw is None:
            return frozenset()
        if role != "relay_faults":
            self.add(path, f"ignore is only for relay_faults, not {role}: remove it")
            return frozenset()
        if point is None:
            return frozenset()
        bits: set[int] = set()
        width = _BITFIELDS.get(point.type, 16 * point.count)
        for n, item in enumerate(raw):
            bit = self._value(point, item, (*path, n), raw=True) if isinstance(item, str) else item
            if bit is None:
                continue
            if not 0 <= bit < width:
                self.add((*path, n), f"bit {bit} is outside 0..{width - 1} of {point.name!r}")
                continue
            bits.add(bit)
        return frozenset(bits)

    def _several(
        self, role: str, spec: RoleSpec, raw: Mapping[str, Any], path: KeyPath
    ) -> Binding | None:
        """A state role read from several registers: ``points = [{ point, states }, ...]``."""
        before = len(self.report.problems)
        if spec.kind is not RoleKind.STATE:
            self.add(
                (*path, "points"),
                f"{role} is a {spec.kind} role: points (several registers) is only for state "
                "roles; name its one point = '...'",
            )
            return None
        if self.sunspec is not None:
            self.add(
                (*path, "points"),
                "a SunSpec profile's state role reads one point: use point = 'MODEL.Point' "
                "and states",
            )
            return None
        if "states" in raw:
            self.add(
                (*path, "states"),
                "with points = [...], each register has its own states: move these into the "
                "entry of their point",
            )
        self._positive(role, spec, raw.get("positive"), path)
        if "value" in raw:
            self.add((*path, "value"), f"{role} is a state role: value is only for command roles")
        reads: list[StateRead] = []
        seen: set[str] = set()
        for n, item in enumerate(raw["points"]):
            ipath: KeyPath = (*path, "points", n)
            name = item["point"]
            if name in seen:
                self.add((*ipath, "point"), f"point {name!r} is listed twice: list it once")
                continue
            seen.add(name)
            point = self._ref(name, (*ipath, "point"))
            if point is not None:
                self._role_access(role, spec, point, (*ipath, "point"))
            states, _ = self._states(role, spec, point, item["states"], ipath)
            reads.append(StateRead(name, MappingProxyType(states)))
        if len(self.report.problems) != before:
            return None
        first, *more = reads
        return Binding(
            role=role,
            point=first.point,
            states=first.states,
            more=tuple(more),
        )

    def _role_access(self, role: str, spec: RoleSpec, point: Point, path: KeyPath) -> None:
        if spec.kind in _WRITES and not point.access.writable:
            self.add(path, f"{role} writes point {point.name!r}, which is read only (access = r)")
        if spec.kind in _READS and not point.access.readable:
            self.add(path, f"{role} reads point {point.name!r}, which is write only (access = w)")
        if spec.kind in (RoleKind.COMMAND, RoleKind.STATE) and point.type in _NOT_INTEGER:
            self.add(
                path, f"a {spec.kind} role needs an integer point, {point.name!r} is {point.type}"
            )
        elif point.type in (DataType.STRING, DataType.BIT) and spec.kind in (
            RoleKind.SETPOINT,
            RoleKind.MEASURE,
            RoleKind.SETTING,
        ):
            self.add(path, f"a {spec.kind} role needs a number, {point.name!r} is {point.type}")

    def _only_for(
        self, role: str, spec: RoleSpec, raw: Mapping[str, Any], key: str, kind: RoleKind, what: str
    ) -> None:
        path: KeyPath = ("roles", role, key)
        if spec.kind is kind and key not in raw:
            self.add(path, f"{role} is a {kind} role: it needs {key} ({what})")
        elif spec.kind is not kind and key in raw:
            self.add(path, f"{role} is a {spec.kind} role: {key} is only for {kind} roles")

    def _positive(
        self, role: str, spec: RoleSpec, given: str | None, path: KeyPath
    ) -> Sense | None:
        allowed = " or ".join(f'"{s}"' for s in spec.senses)
        if not spec.senses:
            if given is not None:
                self.add((*path, "positive"), f"{role} has no sign: remove positive")
            return None
        if given is None:
            self.add(
                (*path, "positive"),
                f"{role} needs positive = {allowed}: what a positive device value means",
            )
            return None
        sense = Sense(given)
        if sense not in spec.senses:
            self.add((*path, "positive"), f"{role} takes positive = {allowed}, not {given!r}")
            return None
        return sense

    def _states(
        self,
        role: str,
        spec: RoleSpec,
        point: Point | None,
        raw: Mapping[str, list[int | str]],
        path: KeyPath,
    ) -> tuple[dict[str, frozenset[int]], dict[str, frozenset[str]]]:
        states: dict[str, set[int]] = {}
        symbols: dict[str, set[str]] = {}
        seen: dict[_StateKey, str] = {}
        for category, items in raw.items():
            cpath: KeyPath = (*path, "states", category)
            if category not in spec.categories:
                self.add(
                    cpath,
                    f"unknown category {category!r}{did_you_mean(category, spec.categories)}; "
                    f"{role} categories: {', '.join(spec.categories)}",
                )
                continue
            for n, item in enumerate(items):
                key: _StateKey | None = item
                if point is not None:
                    key = self._value(point, item, (*cpath, n), raw=True)
                if key is None:
                    continue
                if key in seen:
                    where = "twice" if seen[key] == category else f"also in {seen[key]!r}"
                    self.add((*cpath, n), f"{item!r} is listed {where}: a state means one category")
                    continue
                seen[key] = category
                if isinstance(key, int):
                    states.setdefault(category, set()).add(key)
                else:
                    symbols.setdefault(category, set()).add(key)
        return (
            {c: frozenset(v) for c, v in states.items()},
            {c: frozenset(v) for c, v in symbols.items()},
        )

    # -- watchdog, init, sunspec ------------------------------------------------------------------

    def _watchdog(self, raw: Mapping[str, Any] | None) -> Watchdog | None:
        if raw is None:
            return None
        path: KeyPath = ("watchdog",)
        point = self._ref(raw["point"], (*path, "point"))
        timeout, refresh = float(raw["timeout_s"]), float(raw["refresh_s"])
        mode = WatchdogValue(raw.get("value", WatchdogValue.TIMEOUT))
        if refresh >= timeout:
            self.add(
                (*path, "refresh_s"),
                f"refresh_s = {refresh:g} is not under timeout_s = {timeout:g}: refresh must be "
                f"well under the timeout; use {timeout / 2:g} (timeout / 2) or less",
            )
        if mode is WatchdogValue.CONSTANT and "constant" not in raw:
            self.add((*path, "constant"), 'value = "constant" needs constant = <raw value>')
        elif mode is not WatchdogValue.CONSTANT and "constant" in raw:
            self.add(
                (*path, "constant"),
                f'constant is only used with value = "constant" (value is "{mode}"): remove it',
            )
        if point is not None:
            if not point.access.writable:
                self.add(
                    (*path, "point"),
                    f"the watchdog writes point {point.name!r}, which is read only (access = r)",
                )
            if point.type in _NOT_INTEGER | {DataType.BIT}:
                self.add(
                    (*path, "point"),
                    f"a watchdog point holds an integer; {point.name!r} is {point.type}",
                )
            elif mode is WatchdogValue.TIMEOUT:
                self._fits(point, timeout, (*path, "timeout_s"))
            elif mode is WatchdogValue.CONSTANT and "constant" in raw:
                self._fits(point, raw["constant"], (*path, "constant"))
            elif mode is WatchdogValue.COUNTER and not (point.admits(0) and point.admits(0xFFFF)):
                self.add(
                    (*path, "value"),
                    f"a counter runs through 0..65535, but point {point.name!r} only takes "
                    f"{point.range_text()} (its minimum / maximum)",
                )
        return Watchdog(
            point=raw["point"],
            timeout_s=timeout,
            refresh_s=refresh,
            value=mode,
            constant=raw.get("constant", 0),
            reverts_to=raw["reverts_to"],
        )

    def _fits(self, point: Point, value: float, path: KeyPath) -> None:
        """A value written from the profile (watchdog): the registers hold it, the range has it."""
        if self._encodes(point, value, path):
            self._admits(point, value, path)

    def _encodes(self, point: Point, value: float, path: KeyPath) -> bool:
        try:
            encode(point, value)
        except CodecError as exc:
            self.add(path, f"does not fit point {point.name!r}: {exc}")
            return False
        return True

    def _init(self, raw: list[Mapping[str, Any]]) -> tuple[Write, ...]:
        writes: list[Write] = []
        for n, item in enumerate(raw):
            path: KeyPath = ("init", n)
            point = self._ref(item["point"], (*path, "point"))
            given = item["value"]
            written: int | None = None
            if self.sunspec is not None:
                if isinstance(given, str):
                    self.add(
                        (*path, "value"),
                        "a SunSpec profile writes raw integers in init (symbols are resolved "
                        "only for roles, at discovery)",
                    )
                else:
                    written = given
            elif point is not None:
                if not point.access.writable:
                    self.add(
                        (*path, "point"),
                        f"init writes point {point.name!r}, which is read only (access = r)",
                    )
                written = self._value(point, given, (*path, "value"), raw=False)
            if written is not None:
                writes.append(Write(point=item["point"], value=written))
        return tuple(writes)

    def _sequences(self, raw: Mapping[str, list[str]] | None) -> Sequences:
        """The charger's step orders: bound command roles and ``confirm``, each sequence
        confirmed by read-back, and nothing after that confirmation that could start power
        flow or grid-forming (the engine acts on the confirmation: it closes the relay)."""
        default = Sequences()
        if raw is None:
            return default
        if self.kind is not DeviceKind.CHARGER:
            self.add(("sequences",), f"sequences are for charger profiles, not {self.kind}")
            return default
        bound = set(self.doc["roles"])
        forming = {"grid_forming_on", "grid_forming_off"} <= bound
        needs = {"enter_forming": "grid_forming_on", "leave_forming": "grid_forming_off"}
        for name, steps in raw.items():
            path: KeyPath = ("sequences", name)
            if name in needs and not forming:
                self.add(
                    path,
                    f"{name} is for a charger with grid_forming_on and grid_forming_off roles; "
                    "this profile has no grid-forming mode: remove it",
                )
                continue
            for n, step in enumerate(steps):
                if step != CONFIRM and step not in bound:
                    self.add(
                        (*path, n),
                        f"step {step!r} is a command role this profile does not bind: bind "
                        f"roles.{step} or remove the step",
                    )
            if CONFIRM not in steps:
                goal = "forming" if name == "enter_forming" else "stopped at zero power"
                self.add(
                    path,
                    f"{name} never confirms: add 'confirm' (the state read back as {goal}) "
                    "after its last command; the engine acts on that confirmation",
                )
                continue
            last = len(steps) - 1 - steps[::-1].index(CONFIRM)
            wanted = needs.get(name, "stop")
            if wanted not in steps:
                self.add(path, f"{name} never writes {wanted}: add it before 'confirm'")
            if name == "enter_forming":
                for n in range(last + 1, len(steps)):
                    self.add(
                        (*path, n),
                        f"{steps[n]!r} after the last 'confirm' would go unconfirmed: "
                        "enter_forming ends with 'confirm'",
                    )
                continue
            for n, step in enumerate(steps):
                if step in ("start", "grid_forming_on"):
                    self.add(
                        (*path, n),
                        f"{name} must not write {step}: a stop never starts power flow or "
                        "grid-forming; remove it",
                    )
                elif n > last and step not in ("grid_forming_off", CONFIRM):
                    self.add(
                        (*path, n),
                        f"{step!r} after the last 'confirm' would go unconfirmed: only "
                        "grid_forming_off (which moves no power) may follow it; move it "
                        "before 'confirm'",
                    )
        return Sequences(
            **{name: tuple(steps) for name, steps in raw.items() if name in default.__slots__}
        )

    def _sunspec(self, raw: Mapping[str, Any] | None) -> SunSpecDiscovery | None:
        if raw is None:
            return None
        required = tuple(raw["required_models"])
        optional = tuple(raw.get("optional_models", ()))
        for n, model in enumerate(optional):
            if model in required:
                self.add(
                    ("sunspec", "optional_models", n),
                    f"model {model} is also in required_models: list it once",
                )
        return SunSpecDiscovery(
            bases=tuple(raw.get("bases", SunSpecDiscovery().bases)),
            required_models=required,
            optional_models=optional,
        )


def _span(point: Point) -> str:
    unit = "coil" if point.table.bits else "register"
    if point.count == 1:
        return f"{unit} {point.address}"
    return f"{unit}s {point.address}..{point.address + point.count - 1}"


def _models(models: tuple[int, ...]) -> str:
    return ", ".join(map(str, models)) or "none"
