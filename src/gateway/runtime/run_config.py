"""The ``gateway run`` configuration file (TOML), validated once at start-up.

The site's utility link is exactly one of three tables: ``[sep2]`` (IEEE 2030.5, below),
``[openadr2]`` (an OpenADR 2.0b VTN: ``gateway.north.openadr2.config``) or ``[openadr3]`` (an
OpenADR 3 VTN: ``gateway.north.openadr3.config``). ``[site]`` is the same for all three, so
the same home can follow any of them.

::

    [sep2]
    dcap = "https://utility.example:8443/dcap"   # the DeviceCapability URL (COMM-002), or
    # server = "https://utility.example:8443"    # CSIP-AUS 1.3: found at /.well-known/csipaus
    cert = "device.pem"          # our certificate; paths are relative to this file
    key = "device.key"
    chain = "device-chain.pem"   # optional: leaf + intermediates to present
    serca = "serca.pem"          # the only trust anchor for the server's chain
    pin = 111115                 # optional: registration PIN with its check digit (ALL-04)
    server_lfdi = "..."          # optional: accept only this server certificate
    check_hostname = true        # false for a server addressed by IP in a test PKI
    register = false             # true: POST our EndDevice when the server does not know it
    connection_point = "..."     # optional, CSIP-AUS: the site's NMI (PUT to ConnectionPoint)
    pen = 32473                  # your IANA Private Enterprise Number, in our mRIDs
    profile = "csip-aus"         # or "csip" (US): no CSIP-AUS elements in what we write

    [sep2.notify]                # optional: subscribe, and listen for notifications (mTLS)
    listen = "0.0.0.0"           # address to bind
    port = 8444
    host = "gateway.example"     # the name the utility reaches us by (the notificationURI)

    [[sep2.end_device]]          # aggregator mode: one per EndDevice (site); omitted = one
    lfdi = "..."                 # EndDevice, the certificate's own LFDI
    sfdi = 123456789012
    pin = 111115

    [site]
    simulate = true              # drive the embedded simulated home (one per EndDevice)
    store = "gateway.db"         # SQLite file (one per EndDevice: "-<n>" before the suffix)
    period_s = 1.0               # control-loop period
    enter_service_delay_s = 300  # IEEE 1547 enter-service delay before reconnecting

    [site.der.ev]                # optional, per DER id ("ev", "pv"): nameplate beyond W,
    max_va = 10000               # reported in DERCapability/DERSettings (never commanded);
    max_var = 4400               # var delivered; absent: 0 (the gateway runs the DER at unity PF)
    max_var_neg = 4400           # var received, a magnitude; absent: max_var
    min_pf_over_excited = 0.9    # in (0, 1]; absent: 1.0
    min_pf_under_excited = 0.9   # in (0, 1]; absent: min_pf_over_excited
    # max_va absent: the larger of the DER's discharge and charge W ratings

Every problem in the file is reported at once, with its key, as :class:`RunConfigError`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gateway.core import errors
from gateway.core.backfeed import DerRating
from gateway.north.openadr2 import config as openadr2_config
from gateway.north.openadr2.config import Oadr2Config
from gateway.north.openadr3 import config as openadr3_config
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.sep2.identity import certificate_der, parse_lfdi, sfdi_from_lfdi
from gateway.north.sep2.identity import lfdi as lfdi_of
from gateway.runtime.demo import demo_site

__all__ = [
    "EndDeviceConfig",
    "NotifyConfig",
    "RunConfig",
    "RunConfigError",
    "Sep2Config",
    "load",
]


class RunConfigError(errors.ConfigError, ValueError):
    """The configuration cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class EndDeviceConfig:
    lfdi: str
    sfdi: int
    pin: int | None
    connection_point: str | None = None


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    listen: str
    port: int
    host: str | None


@dataclass(frozen=True, slots=True)
class Sep2Config:
    dcap: str | None  # None: discovered from ``server``'s /.well-known/csipaus (SDVN-01)
    cert: Path
    key: Path
    chain: Path | None
    serca: Path
    server_lfdi: str | None
    check_hostname: bool
    register: bool
    end_devices: tuple[EndDeviceConfig, ...]
    notify: NotifyConfig | None = None
    pen: int = 32473
    csipaus: bool = True
    server: str | None = None

    @property
    def base_url(self) -> str:
        url = self.dcap or self.server
        assert url is not None
        return url

    @property
    def aggregator(self) -> bool:
        return len(self.end_devices) > 1


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Exactly one of ``sep2``, ``openadr2`` and ``openadr3`` is set: the site's utility link."""

    path: Path
    sep2: Sep2Config | None
    simulate: bool
    store: Path
    period_s: float
    enter_service_delay_s: float = 300.0
    openadr2: Oadr2Config | None = None
    openadr3: Oadr3Config | None = None
    # [site.der.<id>]: nameplate values by DER id (keys among NAMEPLATE_KEYS)
    der_nameplates: dict[str, dict[str, float]] = field(default_factory=dict)

    def with_nameplates(self, ders: tuple[DerRating, ...]) -> tuple[DerRating, ...]:
        """``ders`` with this file's ``[site.der.<id>]`` values."""
        return tuple(_nameplated(d, self.der_nameplates.get(d.der_id, {})) for d in ders)

    def store_for(self, index: int) -> Path:
        if index == 0:
            return self.store
        return self.store.with_name(f"{self.store.stem}-{index}{self.store.suffix}")


NAMEPLATE_KEYS = (
    "max_va",
    "max_var",
    "max_var_neg",
    "min_pf_over_excited",
    "min_pf_under_excited",
)


class _Reader:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.problems: list[str] = []

    def get(
        self, table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...
    ) -> Any:
        if key not in table:
            if default is ...:
                self.problems.append(f"{where}.{key}: missing")
            return None if default is ... else default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
            return None
        return value

    def file(
        self, table: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> Path | None:
        name = self.get(table, key, str, where, ... if required else None)
        if name is None:
            return None
        path: Path = (self.base / str(name)).resolve()
        if not path.is_file():
            self.problems.append(f"{where}.{key}: {path} does not exist")
        return path


def _end_devices(r: _Reader, sep2: dict[str, Any], cert: Path | None) -> list[EndDeviceConfig]:
    pin = r.get(sep2, "pin", int, "sep2", None)
    listed = sep2.get("end_device", [])
    if not isinstance(listed, list):
        r.problems.append("sep2.end_device: expected [[sep2.end_device]] tables")
        return []
    if not listed:
        if cert is None or not cert.is_file():
            return []
        try:
            own = lfdi_of(certificate_der(cert.read_bytes()))
        except ValueError as e:
            r.problems.append(f"sep2.cert: {cert}: {e}")
            return []
        nmi = r.get(sep2, "connection_point", str, "sep2", None)
        return [EndDeviceConfig(own, sfdi_from_lfdi(own), pin, nmi)]
    out: list[EndDeviceConfig] = []
    for i, table in enumerate(listed):
        where = f"sep2.end_device[{i}]"
        raw = r.get(table, "lfdi", str, where)
        try:
            lfdi = parse_lfdi(raw) if raw is not None else None
        except ValueError as e:
            r.problems.append(f"{where}.lfdi: {e}")
            lfdi = None
        sfdi = r.get(table, "sfdi", int, where, None)
        own_pin = r.get(table, "pin", int, where, pin)
        nmi = r.get(table, "connection_point", str, where, None)
        if lfdi is not None:
            own_sfdi = sfdi if sfdi is not None else sfdi_from_lfdi(lfdi)
            out.append(EndDeviceConfig(lfdi, own_sfdi, own_pin, nmi))
    return out


NORTH = ("sep2", "openadr2", "openadr3")


def load(path: Path) -> RunConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RunConfigError(f"{path}: {e}") from e
    r = _Reader(path.parent)
    named = [k for k in NORTH if k in doc]
    if len(named) != 1:
        which = ", ".join(f"[{k}]" for k in named) or "none"
        raise RunConfigError(
            f"{path}: name exactly one utility link: a [sep2] table (IEEE 2030.5: the "
            f"DeviceCapability URL), [openadr2] (an OpenADR 2.0b VTN) or [openadr3] (an "
            f"OpenADR 3 VTN); found {which}"
        )
    sep2 = oadr2 = oadr3 = None
    match named[0]:
        case "sep2":
            sep2 = _sep2(r, doc["sep2"])
        case "openadr2":
            oadr2, problems = openadr2_config.parse(doc["openadr2"], path.parent)
            r.problems += problems
        case _:
            oadr3, problems = openadr3_config.parse(doc["openadr3"], path.parent)
            r.problems += problems
    site = doc.get("site", {})
    simulate = r.get(site, "simulate", bool, "site", True)
    store = r.get(site, "store", str, "site", "gateway.db")
    period_s = r.get(site, "period_s", float, "site", 1.0)
    delay_s = r.get(site, "enter_service_delay_s", float, "site", 300.0)
    if delay_s is not None and not 0 <= delay_s <= 3600:
        r.problems.append(f"site.enter_service_delay_s: expected 0..3600 s, got {delay_s}")
    if simulate is False:
        r.problems.append("site.simulate = false: real devices from [[device]] are not wired yet")
    if period_s is not None and not 0.05 <= period_s <= 60:
        r.problems.append(f"site.period_s: expected 0.05..60 s, got {period_s}")
    nameplates = _nameplates(r, site.get("der", {}))
    if r.problems:
        raise RunConfigError(f"{path}: invalid configuration:\n  - " + "\n  - ".join(r.problems))
    return RunConfig(
        path=path,
        sep2=sep2,
        openadr2=oadr2,
        openadr3=oadr3,
        simulate=bool(simulate),
        store=(path.parent / str(store)).resolve(),
        period_s=float(period_s),
        enter_service_delay_s=float(delay_s),
        der_nameplates=nameplates,
    )


def _nameplates(r: _Reader, tables: Any) -> dict[str, dict[str, float]]:
    """``[site.der.<id>]``: each DER's nameplate, checked against the site's DER as rated."""
    if not isinstance(tables, dict):
        r.problems.append(f"site.der: expected tables [site.der.<DER id>], got {tables!r}")
        return {}
    ders = {d.der_id: d for d in demo_site().ders}
    out: dict[str, dict[str, float]] = {}
    for der_id, table in tables.items():
        where = f"site.der.{der_id}"
        if der_id not in ders:
            r.problems.append(f"{where}: no such DER (the site's are {sorted(ders)})")
            continue
        if not isinstance(table, dict):
            r.problems.append(f"{where}: expected a table, got {table!r}")
            continue
        for key in sorted(set(table) - set(NAMEPLATE_KEYS)):
            r.problems.append(f"{where}.{key}: unknown (expected one of {list(NAMEPLATE_KEYS)})")
        values = {k: r.get(table, k, float, where, None) for k in NAMEPLATE_KEYS}
        out[der_id] = {k: v for k, v in values.items() if v is not None}
        rated = _nameplated(ders[der_id], out[der_id])
        r.problems += [f"site.der.{p}" for p in rated.nameplate_problems()]
    return out


def _nameplated(der: DerRating, values: dict[str, float]) -> DerRating:
    changes: dict[str, Any] = dict(values)  # keys among NAMEPLATE_KEYS, all DerRating fields
    return replace(der, **changes)


def _sep2(r: _Reader, sep2: Any) -> Sep2Config | None:
    if not isinstance(sep2, dict):
        r.problems.append("sep2: expected a [sep2] table naming the DeviceCapability URL")
        return None
    dcap = r.get(sep2, "dcap", str, "sep2", None)
    server = r.get(sep2, "server", str, "sep2", None)
    if (dcap is None) == (server is None):
        r.problems.append(
            "sep2.dcap / sep2.server: name the DeviceCapability URL (dcap), or the server to "
            "ask for it at /.well-known/csipaus (server, CSIP-AUS 1.3), not both"
        )
    for name, url in (("dcap", dcap), ("server", server)):
        if url is not None and urlparse(url).scheme != "https":
            r.problems.append(
                f"sep2.{name}: 2030.5 runs over TLS: expected an https:// URL, got {url}"
            )
    cert = r.file(sep2, "cert", "sep2")
    key = r.file(sep2, "key", "sep2")
    chain = r.file(sep2, "chain", "sep2", required=False)
    serca = r.file(sep2, "serca", "sep2")
    server_lfdi = r.get(sep2, "server_lfdi", str, "sep2", None)
    check_hostname = r.get(sep2, "check_hostname", bool, "sep2", True)
    register = r.get(sep2, "register", bool, "sep2", False)
    devices = _end_devices(r, sep2, cert)
    pen = r.get(sep2, "pen", int, "sep2", 32473)
    profile = r.get(sep2, "profile", str, "sep2", "csip-aus")
    if profile not in ("csip-aus", "csip"):
        r.problems.append(f'sep2.profile: "csip-aus" or "csip" (US), got {profile!r}')
    if pen is not None and not 0 < pen < 2**32:
        r.problems.append(f"sep2.pen: a Private Enterprise Number is 1..2^32-1, got {pen}")
    notify = None
    raw_notify = sep2.get("notify")
    if raw_notify is not None:
        if not isinstance(raw_notify, dict):
            r.problems.append("sep2.notify: expected a [sep2.notify] table")
        else:
            listen = r.get(raw_notify, "listen", str, "sep2.notify", "127.0.0.1")
            port = r.get(raw_notify, "port", int, "sep2.notify", 0)
            host = r.get(raw_notify, "host", str, "sep2.notify", None)
            if port is not None and not 0 <= port <= 65535:
                r.problems.append(f"sep2.notify.port: expected 0..65535, got {port}")
            notify = NotifyConfig(str(listen), int(port or 0), host)
    if (dcap or server) is None or cert is None or key is None or serca is None or pen is None:
        return None
    return Sep2Config(
        dcap=dcap,
        server=server,
        cert=cert,
        key=key,
        chain=chain,
        serca=serca,
        server_lfdi=server_lfdi,
        check_hostname=bool(check_hostname),
        register=bool(register),
        end_devices=tuple(devices),
        notify=notify,
        pen=int(pen),
        csipaus=profile != "csip",
    )
