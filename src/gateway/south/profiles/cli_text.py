"""``gateway profiles list | show | validate | schema``: the text, kept out of ``gateway.cli``."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TextIO

from gateway.south.errors import ProfileError
from gateway.south.profile import Binding, DeviceKind, Point, Profile, Watchdog, WatchdogValue
from gateway.south.profile_schema import render_schema
from gateway.south.profiles import find, load_profile, load_shipped, shipped
from gateway.south.registers import Table

ACTIONS = ("list", "show", "validate", "schema")
_LAST_COLUMN = 64  # characters of a wrapped last column (symbols, bindings)


def run(action: str, targets: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Carry out one ``gateway profiles`` action; problems go to ``err``; 1 if there were any."""
    if action == "schema":
        out.write(render_schema())
        return 0
    if action == "validate":
        return validate(targets, out, err)
    try:
        if action == "list":
            out.write(list_text([load_shipped(name) for name in shipped()]))
        else:
            out.write("\n".join(show_text(find(target)) for target in targets))
    except ProfileError as exc:
        err.writelines(f"{problem}\n" for problem in exc.problems)
        return 1
    return 0


def validate(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    """``OK name (kind)`` per good file; every problem of a bad one as ``file:line: key: msg``."""
    status = 0
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            err.writelines(f"{problem}\n" for problem in exc.problems)
            status = 1
        else:
            out.write(f"OK {profile.name} ({profile.kind})\n")
    return status


def list_text(profiles: Sequence[Profile]) -> str:
    rows = [[p.name, str(p.kind), f"{p.vendor} / {p.model}", p.source] for p in profiles]
    return _table(["NAME", "KIND", "VENDOR / MODEL", "FILE"], rows, indent="")


def _pacing(profile: Profile) -> str:
    p = profile.pacing
    return (
        f"delay {p.delay_s * 1000:g} ms, timeout {p.timeout_s * 1000:g} ms, "
        f"ramp steps at most every {p.setpoint_interval_s * 1000:g} ms"
    )


def show_text(profile: Profile) -> str:
    """A readable summary: identity, points, roles, watchdog, init writes and assumptions."""
    lines = [f"{profile.name}: {profile.vendor} / {profile.model} ({profile.kind})"]
    facts = [
        ("file", profile.source),
        ("unit id", str(profile.unit_id)),
        ("pacing", _pacing(profile)),
    ]
    if profile.max_charge_w is not None or profile.max_discharge_w is not None:
        facts.append(("ratings", _ratings(profile)))
    lines += [f"{name:<13}{value}" for name, value in facts]
    if profile.description:
        lines.append(
            textwrap.fill(
                profile.description, 100, initial_indent="description  ", subsequent_indent=" " * 13
            )
        )
    lines += ["", "points"]
    if profile.sunspec is not None:
        ss = profile.sunspec
        lines.append(
            f"  found by SunSpec discovery at bases {_ints(ss.bases)}: models "
            f"{_ints(ss.required_models)} required, {_ints(ss.optional_models) or 'none'} optional"
        )
    else:
        rows = [
            row
            for p in sorted(profile.points.values(), key=_by_address)
            for row in _continued(_point_row(p), _point_parts(p))
        ]
        header = ["NAME", "ADDRESS", "TABLE", "TYPE", "SCALE", "UNITS", "ACCESS", "SYMBOLS / RANGE"]
        lines.append(_table(header, rows).rstrip("\n"))
    lines += ["", "roles"]
    rows = [
        row
        for b in profile.roles.values()
        for row in _continued([b.role, b.point], _binding_parts(b, profile))
    ]
    lines.append(_table(["ROLE", "POINT", "BINDING"], rows).rstrip("\n"))
    if profile.kind is DeviceKind.CHARGER:
        seq = profile.sequences
        lines += ["", "sequences (confirm: read back until the goal holds)"]
        lines += [
            f"  {name:<15}{', '.join(steps)}"
            for name, steps in (
                ("enter_forming", seq.enter_forming),
                ("leave_forming", seq.leave_forming),
                ("stop", seq.stop),
            )
        ]
    lines += ["", "watchdog"]
    lines += _watchdog_lines(profile.watchdog) if profile.watchdog else ["  none"]
    if profile.init:
        lines += ["", "init (written on connect, in order)"]
        lines += [
            f"  {n}. {w.point} = {_raw(profile.points.get(w.point), w.value)}"
            for n, w in enumerate(profile.init, 1)
        ]
    if profile.assumptions:
        lines += ["", "assumptions (not from a public register map)"]
        lines += [
            textwrap.fill(a, 100, initial_indent="  - ", subsequent_indent="    ")
            for a in profile.assumptions
        ]
    return "\n".join(lines) + "\n"


def _by_address(point: Point) -> tuple[int, int]:
    return list(Table).index(point.table), point.address


def _continued(row: list[str], parts: Sequence[str]) -> list[list[str]]:
    """``row`` plus a last cell made of ``parts``: one line each, wrapped when long."""
    lines = [
        line for part in parts for line in textwrap.wrap(part, _LAST_COLUMN, subsequent_indent="  ")
    ] or [""]
    return [[*row, lines[0]]] + [[""] * len(row) + [line] for line in lines[1:]]


def _point_row(point: Point) -> list[str]:
    size = f"[{point.count}]" if point.type == "string" else ""
    scale = f"{point.scale:g}"
    if point.scale_factor:
        scale = (
            f"10^{point.scale_factor}" if point.scale == 1 else f"{scale}*10^{point.scale_factor}"
        )
    return [
        point.name,
        f"{point.address} (0x{point.address:04X})",
        str(point.table),
        f"{point.type}{size}",
        scale,
        point.units or "",
        str(point.access),
    ]


def _point_parts(point: Point) -> list[str]:
    """Symbols, or the profile's range (a point never has both: the loader refuses it)."""
    parts = [" ".join(f"{k}={v}" for k, v in point.symbols.items())] if point.symbols else []
    if point.minimum is not None or point.maximum is not None:
        parts.append(f"range {point.range_text()}")
    return parts


def _binding_parts(binding: Binding, profile: Profile) -> list[str]:
    point = profile.points.get(binding.point)
    parts: list[str] = []
    if binding.value is not None:
        parts.append(f"write {_raw(point, binding.value)}")
    elif binding.symbol is not None:
        parts.append(f"write {binding.symbol} (resolved at discovery)")
    if binding.positive is not None:
        parts.append(f"positive = {binding.positive}")
    if binding.more:
        parts.append("fault in any wins, else the first that reads a category:")
    for name, states in [
        (binding.point, binding.states),
        *((r.point, r.states) for r in binding.more),
    ]:
        of = profile.points.get(name)
        prefix = f"{name} " if binding.more else ""
        for category, values in states.items():
            parts.append(f"{prefix}{category}: " + ", ".join(_raw(of, v) for v in sorted(values)))
    for category, names in binding.state_symbols.items():
        parts.append(f"{category}: " + ", ".join(sorted(names)))
    return parts


def _watchdog_lines(watchdog: Watchdog) -> list[str]:
    what = {
        WatchdogValue.TIMEOUT: f"the timeout ({watchdog.timeout_s:g} s)",
        WatchdogValue.COUNTER: "an incrementing counter",
        WatchdogValue.CONSTANT: f"{watchdog.constant}",
    }[watchdog.value]
    every = f"every {watchdog.refresh_s:g} s (device timeout {watchdog.timeout_s:g} s)"
    return [
        f"  write {what} to {watchdog.point} {every}",
        textwrap.fill(
            watchdog.reverts_to, 100, initial_indent="  on expiry: ", subsequent_indent=" " * 13
        ),
    ]


def _raw(point: Point | None, value: int) -> str:
    symbol = point.symbol(value) if point is not None else None
    return f"{symbol} ({value})" if symbol else str(value)


def _ratings(profile: Profile) -> str:
    out = []
    if profile.max_charge_w is not None:
        out.append(f"charge {profile.max_charge_w:g} W")
    if profile.max_discharge_w is not None:
        out.append(f"discharge {profile.max_discharge_w:g} W")
    return ", ".join(out)


def _ints(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "".join(
        indent
        + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in [header, *rows]
    )
