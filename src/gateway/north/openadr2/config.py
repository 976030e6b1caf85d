"""The ``[openadr2]`` table of the ``gateway run`` configuration, validated once at start-up.

::

    [openadr2]
    vtn_url = "https://vtn.example:8443/OpenADR2/Simple/2.0b"
    ven_name = "gateway-ven"        # our name at the VTN
    ven_id = "VEN_GW_1"             # optional: a pre-allocated venID (N1_0025)
    poll_interval_s = 1.0           # optional: overrides the VTN's oadrRequestedOadrPollFreq
    report_interval_s = 10.0        # telemetry sampling/report interval offered to the VTN
    cert = "ven.pem"                # TLS client certificate, also signs our messages (ECDSA!)
    key = "ven.key"
    ca_file = "ca.pem"              # the trust anchor for the VTN's certificate
    vtn_fingerprint = "AB:CD:..."   # required with TLS: only messages signed by this VTN count
    check_hostname = true

    [openadr2.mapping]              # the default signal mapping, for every program
    export_negative = true          # LOAD_DISPATCH: negative kW = export (false: positive)
    simple = { 1 = { export_limit_w = 3000 }, 2 = { export_limit_w = 0 }, 3 = { connect = false } }

    [openadr2.programs."http://utility.example/islanding"]   # per market context, same keys
    export_negative = false

    [openadr2.availability]         # EiOpt availability schedules (see docs/openadr2.md)
    services = { "http://utility.example/islanding" = "island" }   # or "discharge"
    debounce_s = 60                 # a change must hold this long before the VTN hears of it
    horizon_s = 0                   # the optOut schedule's duration; 0 = open-ended

Paths are relative to the configuration file. :func:`parse` lists every problem at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gateway.core.controls import ControlSet

SIMPLE_LEVELS = (0, 1, 2, 3)


def default_simple() -> dict[int, ControlSet]:
    """SIMPLE levels 0-3 (normal, moderate, high, special): nothing, limit export to 3 kW,
    no export, island."""
    return {
        0: ControlSet(),
        1: ControlSet(export_limit_w=3000.0),
        2: ControlSet(export_limit_w=0.0),
        3: ControlSet(connect=False),
    }


@dataclass(frozen=True, slots=True)
class ProgramMapping:
    """How one program's (market context's) signals become core controls."""

    export_negative: bool = True
    simple: Mapping[int, ControlSet] = field(default_factory=default_simple)


@dataclass(frozen=True, slots=True)
class Tls:
    cert: Path
    key: Path
    ca_file: Path
    vtn_fingerprint: str
    check_hostname: bool = True


SERVICES = ("island", "discharge")


@dataclass(frozen=True, slots=True)
class Availability:
    """EiOpt availability schedules (``[openadr2.availability]``): which program's main
    service the site must be able to provide, and how long a change must hold."""

    services: Mapping[str, str] = field(default_factory=dict)  # market context -> service
    debounce_s: float = 60.0
    horizon_s: float = 0.0  # vavailability duration of an optOut schedule; 0: open-ended


@dataclass(frozen=True, slots=True)
class Oadr2Config:
    vtn_url: str
    ven_name: str
    ven_id: str | None = None
    poll_interval_s: float | None = None  # None: what the VTN asks for
    report_interval_s: float = 10.0
    tls: Tls | None = None
    mapping: ProgramMapping = field(default_factory=ProgramMapping)
    programs: Mapping[str, ProgramMapping] = field(default_factory=dict)
    availability: Availability = field(default_factory=Availability)

    def mapping_for(self, market_context: str | None) -> ProgramMapping:
        if market_context is not None and market_context in self.programs:
            return self.programs[market_context]
        return self.mapping


_KEYS = {
    "vtn_url",
    "ven_name",
    "ven_id",
    "poll_interval_s",
    "report_interval_s",
    "cert",
    "key",
    "ca_file",
    "vtn_fingerprint",
    "check_hostname",
    "mapping",
    "programs",
    "availability",
}
_AVAILABILITY_KEYS = {"services", "debounce_s", "horizon_s"}
_MAPPING_KEYS = {"export_negative", "simple"}


def _fingerprint_ok(fp: str) -> bool:
    parts = fp.split(":")
    return len(parts) == 10 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )


def _mapping(table: Any, where: str, problems: list[str]) -> ProgramMapping:
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table, got {table!r}")
        return ProgramMapping()
    known = ", ".join(sorted(_MAPPING_KEYS))
    problems.extend(
        f"{where}.{k}: unknown key (known: {known})" for k in sorted(set(table) - _MAPPING_KEYS)
    )
    export_negative = table.get("export_negative", True)
    if not isinstance(export_negative, bool):
        problems.append(f"{where}.export_negative: expected true or false, got {export_negative!r}")
        export_negative = True
    simple = default_simple()
    raw = table.get("simple", {})
    if not isinstance(raw, dict):
        problems.append(f"{where}.simple: expected a table of level = {{ controls }}, got {raw!r}")
        raw = {}
    for level_key, controls in raw.items():
        try:
            level = int(level_key)
        except ValueError:
            level = -1
        if level not in SIMPLE_LEVELS:
            problems.append(f"{where}.simple.{level_key}: SIMPLE levels are 0-3")
            continue
        if not isinstance(controls, dict):
            problems.append(f"{where}.simple.{level_key}: expected a table of control modes")
            continue
        try:
            cs = ControlSet.from_dict(controls)
        except (ValueError, TypeError) as e:
            problems.append(f"{where}.simple.{level_key}: {e}")
            continue
        problems.extend(f"{where}.simple.{level_key}: {p}" for p in cs.problems())
        simple[level] = cs
    return ProgramMapping(export_negative=export_negative, simple=simple)


def _availability(table: Any, problems: list[str]) -> Availability:
    where = "openadr2.availability"
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table, got {table!r}")
        return Availability()
    known = ", ".join(sorted(_AVAILABILITY_KEYS))
    problems.extend(
        f"{where}.{k}: unknown key (known: {known})"
        for k in sorted(set(table) - _AVAILABILITY_KEYS)
    )
    services: dict[str, str] = {}
    raw = table.get("services", {})
    if not isinstance(raw, dict):
        problems.append(f"{where}.services: expected market context = service, got {raw!r}")
        raw = {}
    for context, service in raw.items():
        if service not in SERVICES:
            problems.append(
                f'{where}.services."{context}": expected one of {", ".join(SERVICES)}, '
                f"got {service!r}"
            )
            continue
        services[context] = service
    seconds: dict[str, float] = {}
    for key in ("debounce_s", "horizon_s"):
        v = table.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            problems.append(f"{where}.{key}: expected a number of seconds, got {v!r}")
        elif v < 0 or (key == "horizon_s" and v <= 0):
            problems.append(
                f"{where}.{key}: must be {'positive' if key == 'horizon_s' else '>= 0'}"
            )
        else:
            seconds[key] = float(v)
    return Availability(services=services, **seconds)


def _positive(table: dict[str, Any], key: str, problems: list[str]) -> float | None:
    v = table.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        problems.append(f"openadr2.{key}: expected a positive number of seconds, got {v!r}")
        return None
    return float(v)


def _text(table: dict[str, Any], key: str, problems: list[str], *, required: bool) -> str | None:
    v = table.get(key)
    if v is None:
        if required:
            problems.append(f"openadr2.{key}: missing")
        return None
    if not isinstance(v, str) or not v:
        problems.append(f"openadr2.{key}: expected a non-empty string, got {v!r}")
        return None
    return v


def parse(table: Any, base: Path) -> tuple[Oadr2Config | None, list[str]]:
    """The ``[openadr2]`` table as a config, or None and every problem found (with its key)."""
    problems: list[str] = []
    if not isinstance(table, dict):
        return None, [f"openadr2: expected a table, got {table!r}"]
    known = ", ".join(sorted(_KEYS))
    problems.extend(
        f"openadr2.{k}: unknown key (known: {known})" for k in sorted(set(table) - _KEYS)
    )
    url = _text(table, "vtn_url", problems, required=True)
    name = _text(table, "ven_name", problems, required=True)
    ven_id = _text(table, "ven_id", problems, required=False)
    poll = _positive(table, "poll_interval_s", problems)
    report = _positive(table, "report_interval_s", problems)
    if url is not None:
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https"):
            problems.append(f"openadr2.vtn_url: expected an http(s):// URL, got {url!r}")

    tls: Tls | None = None
    tls_keys = ("cert", "key", "ca_file", "vtn_fingerprint")
    given = [k for k in tls_keys if k in table]
    if given:
        paths: dict[str, Path] = {}
        for k in ("cert", "key", "ca_file"):
            v = _text(table, k, problems, required=True)
            if v is None:
                continue
            p = (base / v) if not Path(v).is_absolute() else Path(v)
            if not p.is_file():
                problems.append(f"openadr2.{k}: {p} does not exist")
            paths[k] = p
        fp = _text(table, "vtn_fingerprint", problems, required=True)
        if fp is not None and not _fingerprint_ok(fp):
            problems.append(
                f"openadr2.vtn_fingerprint: expected 10 colon-separated hex bytes "
                f"(openleadr's fingerprint), got {fp!r}"
            )
        check = table.get("check_hostname", True)
        if not isinstance(check, bool):
            problems.append(f"openadr2.check_hostname: expected true or false, got {check!r}")
            check = True
        if len(paths) == 3 and fp is not None:
            tls = Tls(paths["cert"], paths["key"], paths["ca_file"], fp, check)
    if url is not None and urlparse(url).scheme == "https" and not given:
        problems.append(
            "openadr2.cert/key/ca_file/vtn_fingerprint: an https:// VTN needs our certificate, "
            "key, the CA and the VTN's fingerprint"
        )
    if url is not None and tls is not None and urlparse(url).scheme != "https":
        problems.append("openadr2.vtn_url: TLS is configured, so the VTN URL must be https://")

    mapping = _mapping(table.get("mapping", {}), "openadr2.mapping", problems)
    programs: dict[str, ProgramMapping] = {}
    raw_programs = table.get("programs", {})
    if not isinstance(raw_programs, dict):
        problems.append("openadr2.programs: expected tables keyed by market context")
        raw_programs = {}
    for context, sub in raw_programs.items():
        programs[context] = _mapping(sub, f'openadr2.programs."{context}"', problems)

    availability = _availability(table.get("availability", {}), problems)

    if problems or url is None or name is None:
        return None, problems
    return (
        Oadr2Config(
            vtn_url=url,
            ven_name=name,
            ven_id=ven_id,
            poll_interval_s=poll,
            report_interval_s=report if report is not None else 10.0,
            tls=tls,
            mapping=mapping,
            programs=programs,
            availability=availability,
        ),
        [],
    )
