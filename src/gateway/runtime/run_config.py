"""The site file: one TOML file that describes a home, validated once at start-up.

``[site]`` names the supply, the panel, the connection agreement and the backup reserve;
``[[device]]`` each device at its address; ``[sep2]``, ``[openadr2]`` and ``[openadr3]`` the
utility links (any of them, or none: the home still islands on an outage, keeps its limits and
reconnects by itself); ``[store]`` and ``[log]``. docs/site.md explains every key, and
``docs/examples/`` has annotated homes.

Loading is two passes, as for device profiles: the JSON Schema (``site_schema``: shape, types,
ranges, and every unknown key with a "did you mean"), then what a schema cannot say (a device's
role against its profile, voltage against phases, files that exist, certificates that parse).
Every problem is reported at once, each with its line and key path, as :class:`RunConfigError`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from gateway.api import config as api_config
from gateway.api.config import ApiConfig
from gateway.core import errors
from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.island import EnterService, OutageDetect
from gateway.core.site import SiteConfig
from gateway.north.openadr2 import config as openadr2_config
from gateway.north.openadr2.config import Oadr2Config
from gateway.north.openadr3 import config as openadr3_config
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.sep2 import config as sep2_config
from gateway.north.sep2.config import EndDeviceConfig, NotifyConfig, Sep2Config
from gateway.runtime.site_schema import SCHEMA
from gateway.runtime.south import DeviceConfig
from gateway.south.errors import Problem, ProfileError
from gateway.south.profile import DeviceKind, Profile
from gateway.south.profiles import find, load_profile
from gateway.south.profiles._report import Report
from gateway.south.profiles._schema import check_schema, validator_for
from gateway.south.transport import parse_endpoint

__all__ = [
    "DeviceEntry",
    "EndDeviceConfig",
    "LogConfig",
    "NotifyConfig",
    "RunConfig",
    "RunConfigError",
    "Sep2Config",
    "load",
]

_VALIDATOR: Final = validator_for(SCHEMA)
NORTH: Final = ("sep2", "openadr2", "openadr3")
#: A device's role -> the profile kind it needs, and the engine's DER kind (None: not a DER).
ROLE_KIND: Final[dict[str, tuple[DeviceKind, str | None]]] = {
    "meter_relay": (DeviceKind.METER_RELAY, None),
    "meter": (DeviceKind.METER, None),
    "charger": (DeviceKind.CHARGER, "charger"),
    "pv_inverter": (DeviceKind.DER, "pv"),
    "battery_inverter": (DeviceKind.DER, "battery"),
}
NAMEPLATE_KEYS: Final = (
    "max_va",
    "max_var",
    "max_var_neg",
    "min_pf_over_excited",
    "min_pf_under_excited",
)
# IEEE 1547-2018 (1547.1-2020 Table 11) at 60 Hz; AS/NZS 4777.2:2020's reconnection criteria at
# 50 Hz (216-253 V on a 230 V supply, 47.5-50.15 Hz, held for 60 s). An installer may narrow or
# lengthen either in [site.enter_service].
ENTER_SERVICE: Final = {
    60: EnterService(v_min_pu=0.917, v_max_pu=1.05, f_min_hz=59.5, f_max_hz=60.1, delay_s=300.0),
    50: EnterService(
        v_min_pu=216 / 230, v_max_pu=253 / 230, f_min_hz=47.5, f_max_hz=50.15, delay_s=60.0
    ),
}
# The outage window: wide on purpose (a grid slightly out of the re-entry window is no outage).
OUTAGE: Final = {
    60: OutageDetect(f_min_hz=57.0, f_max_hz=61.8),
    50: OutageDetect(f_min_hz=47.0, f_max_hz=52.0),
}
# (phases, nominal V the meter reads, Hz) -> the panel's watts per phase-amp and its legs.
SUPPLIES: Final[dict[tuple[str, int, int], tuple[float, tuple[str, ...]]]] = {
    ("split", 240, 60): (240.0, ("L1", "L2")),
    ("single", 230, 50): (230.0, ("L1",)),
    ("three", 230, 50): (230.0 * 3, ("L1", "L2", "L3")),
}


class RunConfigError(errors.ConfigError, ValueError):
    """The site file cannot be used; ``problems`` lists every one, the message shows them."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n  - ".join(_shown(p) for p in self.problems)
        super().__init__(f"{path}: invalid site file ({len(self.problems)} problems):\n  - {lines}")


def _shown(p: Problem) -> str:
    where = f"line {p.line}: " if p.line is not None else ""
    key = f"{p.key}: " if p.key else ""
    return f"{where}{key}{p.message}"


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One ``[[device]]``: what it is, which profile, where."""

    name: str
    role: str
    profile: Profile
    url: str  # with the serial line's settings as a query for rtu://
    unit_id: int | None
    # A charger: it forms the island (the engine's charger), or only charges (a DER).
    forms_island: bool = False

    @property
    def config(self) -> DeviceConfig:
        der = ROLE_KIND[self.role][1]
        return DeviceConfig(
            self.name,
            self.profile.name,
            self.url,
            self.unit_id,
            self.name if der else None,
            forms_island=self.forms_island,
        )


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: str = "human"
    # info: one line for each thing that happened (a phase change and why, a relay or charger
    # command and why, a device lost or back, a link down), so a person can watch without -v;
    # gateway run -v: debug.
    level: str = "info"


@dataclass(frozen=True, slots=True)
class RunConfig:
    """A validated site file. Any of ``sep2``, ``openadr2`` and ``openadr3`` may be set, or none."""

    path: Path
    name: str
    site: SiteConfig
    devices: tuple[DeviceEntry, ...]
    store: Path
    period_s: float
    sep2: Sep2Config | None = None
    openadr2: Oadr2Config | None = None
    openadr3: Oadr3Config | None = None
    log: LogConfig = field(default_factory=LogConfig)
    api: ApiConfig | None = None  # [api]: the local API and dashboard

    @property
    def links(self) -> tuple[str, ...]:
        """The north links named, in the file's order of precedence."""
        return tuple(k for k in NORTH if getattr(self, k) is not None)

    @property
    def device_configs(self) -> list[DeviceConfig]:
        return [d.config for d in self.devices]

    @property
    def profiles(self) -> dict[str, Profile]:
        """Profile name -> profile, for the drivers (a file's profile is loaded once, here)."""
        return {d.profile.name: d.profile for d in self.devices}

    def store_for(self, index: int) -> Path:
        if index == 0:
            return self.store
        return self.store.with_name(f"{self.store.stem}-{index}{self.store.suffix}")


def load(path: Path) -> RunConfig:
    """The site file at ``path``; raises :class:`RunConfigError` with every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunConfigError(path, [Problem(source, None, "", f"cannot read: {e}")]) from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunConfigError(path, [Problem(source, None, "", f"not TOML: {e}")]) from e
    report = Report(text, source)
    _non_finite(doc, (), report)
    check_schema(doc, report, validator=_VALIDATOR)
    if "simulate" in doc.get("site", {}):
        report.add(
            ("site", "simulate"),
            "the simulated home is a separate process now: run 'gateway simulate home "
            f"{path.name}' beside 'gateway run {path.name}', and remove this key",
        )
    if report.problems:
        raise RunConfigError(path, report.sorted())
    config = _Builder(path, doc, report).build()
    if report.problems or config is None:
        raise RunConfigError(path, report.sorted())
    return config


def _non_finite(value: object, path: tuple[str | int, ...], report: Report) -> None:
    """TOML allows nan and inf, and JSON Schema's minimum lets nan through (nan < 0 is false):
    a NaN rating would pass every range check and poison the allocator."""
    if isinstance(value, float) and not math.isfinite(value):
        report.add(path, f"{value} is not a number the gateway can use: give a finite value")
    elif isinstance(value, dict):
        for k, v in value.items():
            _non_finite(v, (*path, k), report)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _non_finite(v, (*path, i), report)


class _Builder:
    """The second pass: meaning, on a document of the right shape."""

    def __init__(self, path: Path, doc: dict[str, Any], report: Report) -> None:
        self.path = path
        self.base = path.parent
        self.doc = doc
        self.report = report

    def add(self, where: tuple[str | int, ...], message: str) -> None:
        self.report.add(where, message)

    def add_dotted(self, problems: Sequence[str]) -> None:
        """Problems of the north parsers, written ``key.path: message``."""
        for text in problems:
            key, _, message = text.partition(": ")
            path = tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[(\d+)\]", key) if p)
            self.add(path, message or text)

    def build(self) -> RunConfig | None:
        site = self.doc["site"]
        devices = [self._device(i, t) for i, t in enumerate(self.doc["device"])]
        entries = [d for d in devices if d is not None]
        self._roles(entries)
        config = self._site(site, entries)
        north = self._north()
        store = self.doc.get("store", {}).get("path", "gateway.db")
        log = self.doc.get("log", {})
        api = None
        if "api" in self.doc:
            api, problems = api_config.parse(self.doc["api"], self.base)
            self.add_dotted(problems)
        if config is None or self.report.problems:
            return None
        return RunConfig(
            path=self.path,
            name=str(site.get("name", "site")),
            site=config,
            devices=tuple(entries),
            store=(self.base / store).resolve(),
            period_s=float(site.get("period_s", 1.0)),
            log=LogConfig(log.get("format", "human"), log.get("level", "info")),
            api=api,
            **north,
        )

    # --- devices -------------------------------------------------------------------------

    def _device(self, i: int, t: dict[str, Any]) -> DeviceEntry | None:
        where: tuple[str | int, ...] = ("device", i)
        profile = self._profile(where, t["profile"])
        url = self._url(where, t)
        role = t["role"]
        kind, _der = ROLE_KIND[role]
        if profile is not None and profile.kind is not kind:
            self.add(
                (*where, "profile"),
                f"profile {profile.name!r} is a {profile.kind.value} profile, but role "
                f"{role!r} needs a {kind.value} profile (gateway profiles list)",
            )
        if "forms_island" in t and role != "charger":
            self.add((*where, "forms_island"), f"only for a charger, not a {role}")
        if profile is None or url is None:
            return None
        return DeviceEntry(t["name"], role, profile, url, t.get("unit_id"))

    def _profile(self, where: tuple[str | int, ...], ref: str) -> Profile | None:
        is_file = ref.endswith(".toml") or "/" in ref
        try:
            return load_profile(self.base / ref) if is_file else find(ref)
        except ProfileError as e:
            for p in e.problems[:5]:
                line = f"{p.source}:{p.line}" if p.line else p.source
                self.add((*where, "profile"), f"{line}: {p.key}: {p.message}".replace(": : ", ": "))
            if len(e.problems) > 5:
                self.add((*where, "profile"), f"... and {len(e.problems) - 5} more problems")
            return None

    def _url(self, where: tuple[str | int, ...], t: dict[str, Any]) -> str | None:
        url: str = t["transport"]
        serial = {k: t[k] for k in ("baudrate", "parity", "stopbits") if k in t}
        if serial and not url.startswith("rtu://"):
            for k in serial:
                self.add((*where, k), 'only for a serial port (transport = "rtu:///dev/...")')
            return None
        if serial:
            url += "?" + "&".join(f"{k}={v}" for k, v in serial.items())
        try:
            parse_endpoint(url)
        except ValueError as e:
            self.add((*where, "transport"), str(e))
            return None
        return url

    def _roles(self, entries: list[DeviceEntry]) -> None:
        names = [e.name for e in entries]
        for i, t in enumerate(self.doc["device"]):
            if [d["name"] for d in self.doc["device"]].index(t["name"]) != i:
                self.add(("device", i, "name"), f"{t['name']!r} is the name of an earlier device")
        if self.report.problems and len(entries) < len(self.doc["device"]):
            return  # a device that did not load: its role is unknown, so counts would mislead
        roles = [e.role for e in entries]
        if roles.count("meter_relay") != 1:
            self.add(
                ("device",),
                f"name exactly one meter_relay device (the islanding relay and its meter), "
                f"found {roles.count('meter_relay')} among {names}",
            )
        if roles.count("meter") > 1:
            self.add(("device",), f"name at most one meter, found {roles.count('meter')}")
        relay = next((e for e in entries if e.role == "meter_relay"), None)
        if relay is not None and "meter" not in roles and relay.profile.role("net_power") is None:
            i = [d["name"] for d in self.doc["device"]].index(relay.name)
            self.add(
                ("device", i, "profile"),
                f"profile {relay.profile.name!r} reads no net power (the relay has no meter): "
                'add the site meter as its own device (role = "meter"), or use a relay profile '
                "that binds net_power",
            )
        self._former(entries)

    def _former(self, entries: list[DeviceEntry]) -> None:
        """Which charger forms the island: the one marked ``forms_island = true``, or the only
        charger unless it says false. Exactly one, since the engine's islanding sequence has
        one grid-former; every other charger follows as a DER."""
        tables = {t["name"]: (i, t) for i, t in enumerate(self.doc["device"])}
        chargers = [e for e in entries if e.role == "charger"]
        marked = [e for e in chargers if tables[e.name][1].get("forms_island") is True]
        if len(chargers) == 1 and "forms_island" not in tables[chargers[0].name][1]:
            marked = chargers
        if len(marked) == 1:
            i = entries.index(marked[0])
            entries[i] = replace(marked[0], forms_island=True)
            return
        names = [e.name for e in chargers]
        if not chargers:
            why = "name a charger: the V2H charger that forms the home's grid in an island"
        elif not marked:
            why = (
                f"no charger forms the island among {names}: set forms_island = true on the "
                "one wired to form the home's grid (the others then only charge)"
            )
        else:
            shown = [e.name for e in marked]
            why = (
                f"{len(marked)} chargers set forms_island = true ({shown}): only one can form "
                "the home's grid; set it on one"
            )
        self.add(("device",), why)

    # --- the site ------------------------------------------------------------------------

    def _site(self, site: dict[str, Any], entries: list[DeviceEntry]) -> SiteConfig | None:
        hz = int(site["frequency_hz"])
        supply = SUPPLIES.get((site["phases"], int(site["nominal_voltage_v"]), hz))
        if supply is None:
            known = "; ".join(f"phases = {p!r}, {v} V, {f} Hz" for p, v, f in SUPPLIES)
            self.add(
                ("site", "phases"),
                f"{site['phases']} phase at {site['nominal_voltage_v']} V and {hz} Hz is not a "
                f"supply the gateway knows; use one of: {known}",
            )
            return None
        watts_per_amp, legs = supply
        panel = self._panel(site, watts_per_amp, legs)
        ders = self._ders(entries)
        volts = float(site["nominal_voltage_v"])
        es = replace(ENTER_SERVICE[hz], nominal_v=volts, **site.get("enter_service", {}))
        policy = ControlSet(
            export_limit_w=site.get("export_limit_w"), import_limit_w=site.get("import_limit_w")
        )
        charger = next((e.name for e in entries if e.forms_island), "")
        config = SiteConfig(
            panel=panel,
            ders=ders,
            charger_id=charger,
            enter_service=es,
            outage=replace(OUTAGE[hz], nominal_v=volts),
            backup_reserve_soc_pct=float(site.get("backup_reserve_pct", 20.0)),
            site_policy=policy,
        )
        if not charger:
            return None  # already reported by _roles
        for problem in config.problems():
            self.add(("site",), problem)
        return config

    def _panel(
        self, site: dict[str, Any], watts_per_amp: float, legs: tuple[str, ...]
    ) -> PanelRating:
        backfeed = site.get("backfeed", {"rule": "705.12"})
        busbar = float(site["busbar_a"])
        where = ("site", "backfeed")
        margin = 1.0
        static = backfeed.get("static_allowance_a")
        if backfeed["rule"] == "705.12":
            if "power_control_limit_a" in backfeed:
                self.add((*where, "power_control_limit_a"), 'only with rule = "705.13"')
        else:
            if static is not None:
                self.add((*where, "static_allowance_a"), 'only with rule = "705.12"')
            limit = backfeed.get("power_control_limit_a", busbar * 1.2)
            if limit > busbar * 1.2:
                self.add(
                    (*where, "power_control_limit_a"),
                    f"{limit:g} A is above 120 % of the {busbar:g} A busbar ({busbar * 1.2:g} A)",
                )
            margin = min(1.0, limit / (busbar * 1.2))
        return PanelRating(
            busbar_a=busbar,
            main_breaker_a=float(site["main_breaker_a"]),
            nominal_voltage_v=watts_per_amp,
            phases=legs,
            static_allowance_a=None if static is None else float(static),
            coordinated=backfeed["rule"] == "705.13",
            busbar_margin=margin,
        )

    def _ders(self, entries: list[DeviceEntry]) -> tuple[DerRating, ...]:
        ders: list[DerRating] = []
        tables = {t["name"]: (i, t) for i, t in enumerate(self.doc["device"])}
        for e in entries:
            kind = ROLE_KIND[e.role][1]
            if kind is None:
                continue
            i, t = tables[e.name]
            follows = e.role == "charger" and not e.forms_island
            needs = ["max_discharge_w"] + (["max_charge_w"] if kind != "pv" else [])
            if follows:
                needs = ["max_charge_w"]  # it never discharges (south/drivers/follower.py)
            for key in needs:
                if key not in t:
                    self.add(
                        ("device", i, key),
                        f"missing: the {e.role}'s rated {key[4:-2]} power (W); the gateway "
                        "never commands more, and lowers it when the device reports less",
                    )
            nameplate = {k: float(t[k]) for k in NAMEPLATE_KEYS if k in t}
            capacity = t.get("capacity_wh")
            ders.append(
                DerRating(
                    e.name,
                    kind,
                    max_discharge_w=0.0 if follows else float(t.get("max_discharge_w", 0.0)),
                    max_charge_w=float(t.get("max_charge_w", 0.0)),
                    capacity_wh=None if capacity is None else float(capacity),
                    **nameplate,
                )
            )
        return tuple(ders)

    # --- north ---------------------------------------------------------------------------

    def _north(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "sep2" in self.doc:
            out["sep2"], problems = sep2_config.parse(self.doc["sep2"], self.base)
            self.add_dotted(problems)
            if len(self.doc["sep2"].get("end_device", [])) > 1:
                self.add(
                    ("sep2", "end_device", 1),
                    "one site file describes one home: name one [[sep2.end_device]] (this "
                    "site's) and run one gateway per site",
                )
        if "openadr2" in self.doc:
            out["openadr2"], problems = openadr2_config.parse(self.doc["openadr2"], self.base)
            self.add_dotted(problems)
        if "openadr3" in self.doc:
            table = self._secret_from_env(dict(self.doc["openadr3"]))
            out["openadr3"], problems = openadr3_config.parse(table, self.base)
            self.add_dotted(problems)
        return out

    def _secret_from_env(self, table: dict[str, Any]) -> dict[str, Any]:
        """``client_secret_env``: the secret is read from the environment, never the file."""
        name = table.pop("client_secret_env", None)
        if name is None:
            return table
        value = os.environ.get(name)
        if not value:
            self.add(
                ("openadr3", "client_secret_env"),
                f"the environment has no {name}: set it to the client secret before starting "
                "the gateway (or use client_secret_file)",
            )
            table["client_secret"] = "unset"  # noqa: S105 - reported above: not "missing" a second time
            return table
        if "client_secret" in table or "client_secret_file" in table:
            self.add(
                ("openadr3", "client_secret_env"),
                "name one of client_secret, client_secret_file and client_secret_env",
            )
        table["client_secret"] = value
        return table
