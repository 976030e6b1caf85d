"""The ``[openadr3]`` table of ``gateway run``'s TOML, validated once (every problem listed).

```toml
[openadr3]
vtn = "https://vtn.example.com/openadr3/3.0.1"   # base URL: /programs, /events, ... below it
client_id = "gateway-17"
client_secret_file = "secrets/vtn.secret"        # or client_secret = "..." (not recommended)
# token_url = "https://vtn.example.com/oauth/token"  # default: asked of the VTN (GET /auth/server)
ven_name = "gateway-17"
ca_file = "certs/vtn-ca.pem"                     # default: the system's trust store
poll_s = 30                                      # polling, also the fallback with a webhook
report_period_s = 60

[openadr3.webhook]                               # optional: subscriptions + callback listener
host = "0.0.0.0"
port = 8443
public_url = "https://gateway-17.example.net:8443/openadr3/notify"
# cert_file / key_file: serve the callback over TLS (the VTN must trust it)

[[openadr3.program]]
name = "feeder-7-flex"
limit_units = "KW"             # power payloads without a payloadDescriptor
dispatch_sign = "consumption"  # or "export"
ev_capacity_kwh = 60           # only for CHARGE_STATE_SETPOINT in KWH
alerts = { ALERT_GRID_EMERGENCY = "prepare", ALERT_BLACK_START = "island" }
prepare = { soc_target_pct = 100 }
simple = { "1" = { export_limit_w = 0 }, "2" = { connect = false } }
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.core.controls import ControlSet
from gateway.north.openadr3.mapping import (
    ALERTS,
    DEFAULT_ALERTS,
    AlertAction,
    DispatchSign,
    ProgramMapping,
    control_names,
)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None  # what the VTN calls; default http://host:port/openadr3/notify
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Oadr3Config:
    vtn: str
    client_id: str
    client_secret: str = field(repr=False)
    ven_name: str
    programs: tuple[ProgramMapping, ...]
    token_url: str | None = None
    ca_file: Path | None = None
    poll_s: float = 30.0
    report_period_s: float = 60.0
    webhook: WebhookConfig | None = None
    timeout_s: float = 10.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 60.0


class _Reader:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.problems: list[str] = []

    def get(self, t: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        v = t.get(key)
        if v is None:
            return None
        if (isinstance(v, bool) and kind is not bool) or not isinstance(v, kind):
            self.problems.append(f"{where}.{key}: expected {_name(kind)}, got {v!r}")
            return None
        return v

    def path(self, t: dict[str, Any], key: str, where: str) -> Path | None:
        v = self.get(t, key, str, where)
        if v is None:
            return None
        p = Path(v) if Path(v).is_absolute() else self.base / v
        if not p.exists():
            self.problems.append(f"{where}.{key}: {p} does not exist")
            return None
        return p

    def seconds(
        self, t: dict[str, Any], key: str, where: str, lo: float, hi: float
    ) -> float | None:
        v = self.get(t, key, (int, float), where)
        if v is not None and not lo <= v <= hi:
            self.problems.append(f"{where}.{key}: expected {lo:g}..{hi:g} s, got {v}")
            return None
        return None if v is None else float(v)


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "dict": "a table",
            "list": "a list",
            "bool": "true or false",
        }.get(k.__name__, k.__name__)
        for k in kinds
    )


def _url(value: str, where: str, problems: list[str]) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{where}: expected an http(s):// URL, got {value!r}")
        return None
    return value.rstrip("/")


def _controls(value: Any, where: str, problems: list[str]) -> ControlSet | None:
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a table of controls, got {value!r}")
        return None
    unknown = set(value) - control_names()
    if unknown:
        problems.append(f"{where}: unknown controls {', '.join(sorted(unknown))}")
        return None
    try:
        controls = ControlSet.from_dict(value)
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: {e}")
        return None
    bad = controls.problems()
    if bad:
        problems.append(f"{where}: " + "; ".join(bad))
        return None
    return controls


def _program(r: _Reader, t: Any, where: str) -> ProgramMapping | None:
    if not isinstance(t, dict):
        r.problems.append(f"{where}: expected a table")
        return None
    name = r.get(t, "name", str, where)
    if not name:
        r.problems.append(f"{where}.name: missing")
        return None
    n = len(r.problems)
    units = (r.get(t, "limit_units", str, where) or "KW").upper()
    if units not in ("W", "KW", "MW"):
        r.problems.append(f'{where}.limit_units: "W", "KW" or "MW", got {units!r}')
    sign_text = r.get(t, "dispatch_sign", str, where) or "consumption"
    try:
        sign = DispatchSign(sign_text)
    except ValueError:
        r.problems.append(f'{where}.dispatch_sign: "consumption" or "export", got {sign_text!r}')
        sign = DispatchSign.CONSUMPTION
    capacity = r.get(t, "ev_capacity_kwh", (int, float), where)
    if capacity is not None and not 1 <= capacity <= 1000:
        r.problems.append(f"{where}.ev_capacity_kwh: expected 1..1000 kWh, got {capacity}")
    alerts = dict(DEFAULT_ALERTS)
    for key, v in (r.get(t, "alerts", dict, where) or {}).items():
        if key not in ALERTS:
            r.problems.append(f"{where}.alerts.{key}: not one of {', '.join(ALERTS)}")
            continue
        try:
            alerts[key] = AlertAction(v)
        except ValueError:
            r.problems.append(f'{where}.alerts.{key}: "prepare", "island" or "ignore", got {v!r}')
    prepare = ControlSet(soc_target_pct=100.0)
    if "prepare" in t:
        prepare = _controls(t["prepare"], f"{where}.prepare", r.problems) or prepare
    simple: dict[int, ControlSet] = {}
    for level, v in (r.get(t, "simple", dict, where) or {}).items():
        if str(level) not in ("0", "1", "2", "3"):
            r.problems.append(f"{where}.simple.{level}: SIMPLE levels are 0..3")
            continue
        c = _controls(v, f"{where}.simple.{level}", r.problems)
        if c is not None:
            simple[int(level)] = c
    if len(r.problems) > n:
        return None
    return ProgramMapping(
        program_name=name,
        limit_units=units,
        dispatch_sign=sign,
        ev_capacity_kwh=None if capacity is None else float(capacity),
        alerts=alerts,
        prepare=prepare,
        simple=simple,
    )


def _webhook(r: _Reader, t: Any) -> WebhookConfig | None:
    where = "openadr3.webhook"
    if not isinstance(t, dict):
        r.problems.append(f"{where}: expected a [openadr3.webhook] table")
        return None
    host = r.get(t, "host", str, where) or "127.0.0.1"
    port = r.get(t, "port", int, where)
    if port is not None and not 0 <= port <= 65535:
        r.problems.append(f"{where}.port: expected 0..65535, got {port}")
    public = r.get(t, "public_url", str, where)
    if public is not None:
        public = _url(public, f"{where}.public_url", r.problems)
    cert, key = r.path(t, "cert_file", where), r.path(t, "key_file", where)
    if (t.get("cert_file") is None) != (t.get("key_file") is None):
        r.problems.append(f"{where}: cert_file and key_file go together")
    return WebhookConfig(host, port or 0, public, cert, key)


def parse(table: dict[str, Any], base: Path) -> tuple[Oadr3Config | None, list[str]]:
    """The ``[openadr3]`` table -> config, or None and every problem (paths relative to base)."""
    r = _Reader(base)
    where = "openadr3"
    vtn = r.get(table, "vtn", str, where)
    if vtn is None and "vtn" not in table:
        r.problems.append(f"{where}.vtn: missing (the VTN's base URL)")
    vtn = None if vtn is None else _url(vtn, f"{where}.vtn", r.problems)
    token_url = r.get(table, "token_url", str, where)
    if token_url is not None:
        token_url = _url(token_url, f"{where}.token_url", r.problems)
    client_id = r.get(table, "client_id", str, where)
    if not client_id:
        r.problems.append(f"{where}.client_id: missing")
    secret = r.get(table, "client_secret", str, where)
    secret_file = r.path(table, "client_secret_file", where)
    if secret is not None and secret_file is not None:
        r.problems.append(f"{where}: client_secret and client_secret_file are exclusive")
    if secret_file is not None:
        secret = secret_file.read_text().strip()
    if not secret:
        r.problems.append(f"{where}.client_secret_file (or client_secret): missing or empty")
    ven_name = r.get(table, "ven_name", str, where) or client_id
    ca_file = r.path(table, "ca_file", where)
    poll_s = r.seconds(table, "poll_s", where, 0.05, 3600) or 30.0
    report_s = r.seconds(table, "report_period_s", where, 0.05, 86400) or 60.0
    timeout_s = r.seconds(table, "timeout_s", where, 0.1, 300) or 10.0
    webhook = None if "webhook" not in table else _webhook(r, table["webhook"])
    raw_programs = table.get("program")
    programs: list[ProgramMapping] = []
    if not isinstance(raw_programs, list) or not raw_programs:
        r.problems.append(f"{where}.program: expected one or more [[openadr3.program]] tables")
    else:
        for i, t in enumerate(raw_programs):
            p = _program(r, t, f"{where}.program[{i}]")
            if p is not None:
                programs.append(p)
        names = [p.program_name for p in programs]
        if len(set(names)) != len(names):
            r.problems.append(f"{where}.program: program names must be unique, got {names}")
    if vtn is not None and vtn.startswith("http://"):
        r.problems.append(f"{where}.vtn: OpenADR 3 runs over TLS: expected https://, got {vtn}")
    if r.problems or vtn is None or not client_id or not secret or not ven_name:
        return None, r.problems
    return (
        Oadr3Config(
            vtn=vtn,
            client_id=client_id,
            client_secret=secret,
            ven_name=ven_name,
            programs=tuple(programs),
            token_url=token_url,
            ca_file=ca_file,
            poll_s=poll_s,
            report_period_s=report_s,
            webhook=webhook,
            timeout_s=timeout_s,
        ),
        [],
    )
