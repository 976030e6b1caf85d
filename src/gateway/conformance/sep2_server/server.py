"""The server under test: its DeviceCapability URL, the client certificate to present, and
what a run learns once and shares between cases (the discovery walk, every body received)."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from gateway.conformance.sep2_server.walk import Walk
from gateway.north.sep2 import identity, pki, tls

DEFAULT_NOTIFY_TIMEOUT_S = 30.0


@dataclass
class ServerTarget:
    """``--target URL`` for the sep2-server suite (it has no process of its own to start:
    ``start``/``stop`` are there for the controllers' Target protocol and do nothing)."""

    url: str  # the DeviceCapability URL
    cert: Path  # PEM: the client certificate, then its intermediates (a -chain.pem file)
    key: Path
    ca: Path  # the SERCA the server's certificate chains to
    foreign_cert: Path | None = None  # a certificate under another CA (default: minted)
    foreign_key: Path | None = None
    change: str | None = None  # a command that changes a DERControl, or "wait"
    listen: str = "127.0.0.1"  # where the notification listener binds (and the URI names)
    notify_timeout: float = DEFAULT_NOTIFY_TIMEOUT_S
    walked: Walk | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (request, body)
    name: str = field(init=False, default="")

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"--target {self.url!r}: the sep2-server suite needs the server's "
                "DeviceCapability URL, https://HOST:PORT/dcap"
            )
        for what, path in (
            ("--cert", self.cert),
            ("--key", self.key),
            ("--ca", self.ca),
            ("--foreign-cert", self.foreign_cert),
            ("--foreign-key", self.foreign_key),
        ):
            if path is None and what in ("--cert", "--key", "--ca"):
                raise ValueError(f"the sep2-server suite needs {what}")
            if path is not None and not path.is_file():
                raise ValueError(f"{what} {path}: no such file")
        if (self.foreign_cert is None) != (self.foreign_key is None):
            raise ValueError("--foreign-cert and --foreign-key go together")
        self.context()  # a wrong file is said now, in one line
        self.name = self.url

    async def start(self, site: Path, seconds: float) -> None:
        """Nothing to start: the server is already running at ``url``."""

    async def stop(self) -> list[str]:
        return []

    @property
    def dcap(self) -> str:
        return urlsplit(self.url).path or "/dcap"

    @property
    def lfdi(self) -> str:
        return identity.Identity.from_certificate(self.cert.read_bytes()).lfdi

    @property
    def sfdi(self) -> int:
        return identity.Identity.from_certificate(self.cert.read_bytes()).sfdi

    def context(self) -> ssl.SSLContext:
        """Mutual TLS as 2030.5 has it (TLS 1.2, CCM8, P-256); servers are known by their
        chain to the SERCA, not by a host name."""
        return tls.client_context(self.cert, self.key, None, self.ca, check_hostname=False)

    def foreign_context(self, folder: Path) -> tuple[ssl.SSLContext, str]:
        """A context presenting a certificate from another CA, and which one."""
        if self.foreign_cert is not None and self.foreign_key is not None:
            cert, key, what = self.foreign_cert, self.foreign_key, str(self.foreign_cert)
        else:
            cert, key = mint_foreign(folder)
            what = "one the suite minted under its own SERCA"
        return tls.client_context(cert, key, None, self.ca, check_hostname=False), what


def mint_foreign(folder: Path) -> tuple[Path, Path]:
    """A CSIP-profile device certificate under a fresh SERCA no server trusts."""
    folder.mkdir(parents=True, exist_ok=True)
    device = pki.make_device(pki.make_serca("sep2-server suite: a foreign SERCA"), "foreign-1")
    cert, key = folder / "foreign.pem", folder / "foreign.key"
    cert.write_bytes(device.cert.public_bytes(serialization.Encoding.PEM))
    key.touch(mode=0o600)
    key.write_bytes(
        device.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def add_options(parser: argparse.ArgumentParser) -> None:
    """The sep2-server suite's options (one group, for `gateway conformance run`)."""
    g = parser.add_argument_group("sep2-server (the suite is a 2030.5 client; --target URL)")
    g.add_argument(
        "--cert",
        type=Path,
        metavar="CERT",
        help="sep2-server: the client certificate (PEM), followed by its intermediates "
        "(e.g. gateway-chain.pem of gateway certs init)",
    )
    g.add_argument("--key", type=Path, metavar="KEY", help="sep2-server: its private key")
    g.add_argument(
        "--ca", type=Path, metavar="CA", help="sep2-server: the SERCA the server chains to"
    )
    g.add_argument(
        "--foreign-cert",
        type=Path,
        metavar="CERT",
        help="sep2-server: a certificate from another CA, which the server must refuse "
        "(default: one minted by the suite); with --foreign-key",
    )
    g.add_argument("--foreign-key", type=Path, metavar="KEY", help="sep2-server: its key")
    g.add_argument(
        "--change",
        metavar="CMD|wait",
        help="sep2-server: a command that makes the server change a DERControl or a "
        "DefaultDERControl (run once subscribed), or 'wait' if the server changes one by "
        "itself; without it the notification case is NOT RUN",
    )
    g.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="HOST",
        help="sep2-server: the address the notification listener binds and gives in "
        "notificationURI (default 127.0.0.1)",
    )
    g.add_argument(
        "--notify-timeout",
        type=float,
        default=DEFAULT_NOTIFY_TIMEOUT_S,
        metavar="S",
        help=f"sep2-server: how long to wait for a notification (default "
        f"{DEFAULT_NOTIFY_TIMEOUT_S:g} s)",
    )


#: The option destinations add_options adds (the CLI refuses them for another suite).
OPTIONS = (
    "cert", "key", "ca", "foreign_cert", "foreign_key", "change", "listen", "notify_timeout",
)  # fmt: skip


def target_from(args: argparse.Namespace) -> ServerTarget:
    """The target the options describe; ValueError (one line) if they do not."""
    try:
        return ServerTarget(
            url=args.target,
            cert=args.cert,
            key=args.key,
            ca=args.ca,
            foreign_cert=args.foreign_cert,
            foreign_key=args.foreign_key,
            change=args.change,
            listen=args.listen,
            notify_timeout=args.notify_timeout,
        )
    except tls.TlsConfigError as e:
        raise ValueError(str(e)) from None
