"""The ``[sep2]`` table of the site file, validated once (every problem listed, with its key).

::

    [sep2]
    dcap = "https://utility.example:8443/dcap"   # the DeviceCapability URL (COMM-002), or
    # server = "https://utility.example:8443"    # CSIP-AUS 1.3: found at /.well-known/csipaus
    cert = "device.pem"          # our certificate; paths are relative to the site file
    key = "device.key"
    chain = "device-chain.pem"   # optional: leaf + intermediates to present
    serca = "serca.pem"          # the only trust anchor for the server's chain
    pin = 111115                 # optional: registration PIN with its check digit (ALL-04),
                                 # checked against an out-of-band Registration only
    server_lfdi = "..."          # optional: accept only this server certificate
    check_hostname = true        # false for a server addressed by IP in a test PKI
    register = false             # true: POST our EndDevice when the server does not know it
    connection_point = "..."     # optional, CSIP-AUS: the site's NMI (PUT to ConnectionPoint)
    pen = 32473                  # your IANA Private Enterprise Number, in our mRIDs
                                 # (CSIP-AUS: as 8 decimal digits, so at most 99999999)
    profile = "csip-aus"         # or "csip" (US): no CSIP-AUS elements in what we write
    device_category = "00220000" # optional: EndDevice.deviceCategory (2030.5 DeviceCategoryType,
                                 # hex, bits 0-25) in an in-band registration; default: one
                                 # bit per kind of DER in the site (EVSE 17, PV 21, storage 25)

    [sep2.notify]                # optional: subscribe, and listen for notifications (mTLS)
    listen = "0.0.0.0"           # address to bind
    port = 8444
    host = "gateway.example"     # the name the utility reaches us by (the notificationURI)
    require_certificate = true   # false: also take notifications from a sender without a
                                 # client certificate (TLS still); their content is not used,
                                 # only a GET of what they name (docs/sep2.md)

    [[sep2.end_device]]          # aggregator mode: one per EndDevice (site); omitted = one
    lfdi = "..."                 # EndDevice, the certificate's own LFDI
    sfdi = 123456789012
    pin = 111115

The table's shape (keys, types) is checked by the site file's JSON Schema first
(``gateway.runtime.site_schema``); this checks what it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gateway.north.sep2.der_resources import DEVICE_CATEGORY_MAX
from gateway.north.sep2.identity import certificate_der, parse_lfdi, sfdi_from_lfdi
from gateway.north.sep2.identity import lfdi as lfdi_of
from gateway.north.sep2.metering import DECIMAL_PEN_MAX

__all__ = ["EndDeviceConfig", "NotifyConfig", "Sep2Config", "parse"]


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
    require_certificate: bool = True


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
    device_category: str | None = None  # HexBinary32, 8 hex digits; None: from the site's DER

    @property
    def base_url(self) -> str:
        url = self.dcap or self.server
        assert url is not None
        return url

    @property
    def aggregator(self) -> bool:
        return len(self.end_devices) > 1


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
            self.problems.append(
                f"{where}.{key}: {path} does not exist (relative paths start at the site "
                "file's folder; 'gateway certs init DIR' mints a test PKI)"
            )
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
    elif pen is not None and profile != "csip" and pen > DECIMAL_PEN_MAX:
        r.problems.append(
            f"sep2.pen: CSIP-AUS writes the PEN as 8 decimal digits in mRIDs (SA TS 5573 "
            f"§4.2), so at most {DECIMAL_PEN_MAX}; got {pen}"
        )
    category = _device_category(r, r.get(sep2, "device_category", str, "sep2", None))
    notify = None
    raw_notify = sep2.get("notify")
    if raw_notify is not None:
        if not isinstance(raw_notify, dict):
            r.problems.append("sep2.notify: expected a [sep2.notify] table")
        else:
            listen = r.get(raw_notify, "listen", str, "sep2.notify", "127.0.0.1")
            port = r.get(raw_notify, "port", int, "sep2.notify", 0)
            host = r.get(raw_notify, "host", str, "sep2.notify", None)
            required = r.get(raw_notify, "require_certificate", bool, "sep2.notify", True)
            if port is not None and not 0 <= port <= 65535:
                r.problems.append(f"sep2.notify.port: expected 0..65535, got {port}")
            notify = NotifyConfig(str(listen), int(port or 0), host, required is not False)
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
        device_category=category,
    )


def _device_category(r: _Reader, text: str | None) -> str | None:
    """``device_category`` as 8 upper-case hex digits, or None (absent or wrong, said)."""
    if text is None:
        return None
    digits = text.strip().removeprefix("0x").removeprefix("0X")
    try:
        value = int(digits, 16) if 0 < len(digits) <= 8 else -1
    except ValueError:
        value = -1
    if not 0 <= value <= DEVICE_CATEGORY_MAX:
        r.problems.append(
            f"sep2.device_category: 2030.5 DeviceCategoryType, up to 8 hex digits with only bits "
            f'0-25 set (e.g. "00220000": EVSE and PV), got {text!r}'
        )
        return None
    return f"{value:08X}"


def parse(table: Any, base: Path) -> tuple[Sep2Config | None, list[str]]:
    """The ``[sep2]`` table as a config, or None and every problem found (with its key)."""
    r = _Reader(base)
    config = _sep2(r, table)
    return (config if not r.problems else None), r.problems
