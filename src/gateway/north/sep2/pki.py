"""A test PKI for IEEE 2030.5: SERCA -> MCA -> MICA -> device certificates, with ``cryptography``.

This is for tests, the utility simulator and bench set-ups: real devices get their certificate
from the manufacturer's MICA, and a real server from the utility's. ``gateway certs init DIR``
writes one; ``init_pki`` is the same from Python (the tests mint theirs into ``tmp_path``).

**Device certificates** follow the CSIP profile (``shared/domain/sep2.md`` §1.9):

- ECDSA P-256 key, signed ecdsa-with-SHA256;
- notAfter ``99991231235959Z`` (GeneralizedTime: "no well-defined expiration"); notBefore is a
  day before issue, so that a peer whose clock lags a little still accepts it;
- **empty Subject**; a critical subjectAltName with exactly one ``otherName``
  ``id-on-hardwareModuleName`` (1.3.6.1.5.5.7.8.4, RFC 4108) holding
  ``HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }``,
  DER-encoded here by hand; ``hwType`` is :data:`TEST_HW_TYPE`, the serial is the device name;
- critical keyUsage digitalSignature + keyAgreement; basicConstraints cA=FALSE (critical);
- critical certificatePolicies: ``1.3.6.1.4.1.40732.1.1`` (IEEE 2030.5 device type "generic")
  and ``1.3.6.1.4.1.40732.2.1`` (IEEE 2030.5 "test certificate", so that no production server
  mistakes these for real ones);
- authorityKeyIdentifier (non-critical), no subjectKeyIdentifier.

**CA certificates** (SERCA self-signed, MCA, MICA): P-256, critical basicConstraints cA=TRUE
(pathLen: SERCA unconstrained, MCA 1, MICA 0), critical keyUsage keyCertSign + cRLSign,
subjectKeyIdentifier (and authorityKeyIdentifier below the SERCA), critical certificatePolicies:
anyPolicy on the SERCA, the two policies above on the MCA and MICA. Subjects are named
(``CN=... Test SERCA`` etc.). All notAfter 9999-12-31.

**The server certificate** (for the utility simulator) is issued like a device certificate, on
the same chain (``chain=``), because a 2030.5 server is a device with an LFDI too. *Deviation from
the profile:* its subjectAltName carries, besides the hardwareModuleName, a ``dNSName`` or
``iPAddress`` per ``server_names`` (default ``localhost`` and ``127.0.0.1``), so that ordinary
hostname verification (``check_hostname``) works against it. The Subject stays empty.

**Negative fixtures** (``shared/domain/sep2.md`` §2.2, COMM-004): a *rogue* SERCA with the same
Subject as the real one (a look-alike, not merely "some other CA"), and a device and a server
certificate issued directly by it. **Chain-depth fixtures**: ``comm-004a`` (SERCA -> device),
``comm-004b`` (SERCA -> MICA -> device, the MICA being ``mica-direct.pem``) and ``comm-004c``
(SERCA -> MCA -> MICA -> device).

Files (all PEM; ``*.key`` are unencrypted PKCS#8, mode 0600; CA keys are not written):

==========================  ===============================================================
``serca.pem``               the trust anchor: what a peer loads to verify the others
``mca.pem``, ``mica.pem``   the intermediates (MICA issued by the MCA)
``mica-direct.pem``         a MICA issued directly by the SERCA (``comm-004b``, ``serca-mica``)
``<name>.pem`` / ``.key``   a device's certificate (leaf only) and private key
``<name>-chain.pem``        leaf followed by its intermediates, nearest first, no SERCA: what
                            the device presents in the handshake (``load_cert_chain``)
``server.*``                the same three for the utility simulator
``rogue-serca.pem``         the look-alike SERCA; ``rogue-device.*``, ``rogue-server.*``
``comm-004[abc].*``         chain-depth fixtures, as above
==========================  ===============================================================
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from gateway.core import errors
from gateway.north.sep2 import identity

ID_ON_HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
POLICY_DEVICE_GENERIC = ObjectIdentifier("1.3.6.1.4.1.40732.1.1")
POLICY_TEST_CERTIFICATE = ObjectIdentifier("1.3.6.1.4.1.40732.2.1")
ANY_POLICY = ObjectIdentifier("2.5.29.32.0")
# hwType should be an OID of the manufacturer's arc; we have none, so this one is minted under
# 2.25 (UUID-derived OIDs, ITU-T X.667), which needs no registration. Fixed, so it is recognisable.
TEST_HW_TYPE = ObjectIdentifier("2.25.319988042617922318653639691040259745209")
NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
DEVICE_POLICIES = (POLICY_DEVICE_GENERIC, POLICY_TEST_CERTIFICATE)

CHAINS = ("serca-mca-mica", "serca-mica", "serca")
"""Which CA issues the devices and the server: the MICA under the MCA, a MICA directly under
the SERCA, or the SERCA itself (COMM-004 C, B, A)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RESERVED = frozenset(
    {"serca", "mca", "mica", "mica-direct", "server", "rogue-serca", "rogue-device",
     "rogue-server", "comm-004a", "comm-004b", "comm-004c"}
)  # fmt: skip


class PkiError(errors.ConfigError):
    """The PKI cannot be written as asked (files exist, a bad device name, a bad option)."""


@dataclass(frozen=True)
class Issued:
    """A certificate with its key and the intermediates between it and the SERCA, nearest first."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    intermediates: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class DeviceFiles:
    name: str
    cert: Path
    key: Path
    chain: Path
    lfdi: str


@dataclass(frozen=True)
class PkiFiles:
    """Where ``init_pki`` wrote everything; ``devices`` in the order asked."""

    directory: Path
    serca: Path
    mca: Path
    mica: Path
    mica_direct: Path
    devices: Mapping[str, DeviceFiles]
    server: DeviceFiles
    rogue_serca: Path
    rogue_device: DeviceFiles
    rogue_server: DeviceFiles
    depth: Mapping[str, DeviceFiles]
    """The COMM-004 chain-depth fixtures: ``comm-004a``, ``comm-004b``, ``comm-004c``."""

    def device(self, name: str) -> DeviceFiles:
        return self.devices[name]


def lfdi(cert: x509.Certificate) -> str:
    """The certificate's LFDI (``identity.lfdi``: 40 upper-case hex digits)."""
    return identity.lfdi(cert.public_bytes(serialization.Encoding.DER))


# --- DER, by hand: just enough for HardwareModuleName -----------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_oid(oid: ObjectIdentifier) -> bytes:
    arcs = [int(arc) for arc in oid.dotted_string.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]  # base 128, most significant first, bit 8 set on all but the last
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def hardware_module_name(hw_type: ObjectIdentifier, serial: bytes) -> bytes:
    """DER of ``HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }``.

    This is the ``value`` of the ``otherName``; ``cryptography`` adds the ``[0] EXPLICIT`` tag.
    """
    return _der(0x30, _der_oid(hw_type) + _der(0x04, serial))


# --- issuing ----------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _not_before() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def _ski(key: ec.EllipticCurvePrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gateway test PKI (not for production)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _policies(oids: Iterable[ObjectIdentifier]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None) for oid in oids])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _device_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def make_serca(common_name: str = "IEEE 2030.5 Test SERCA") -> Issued:
    """A self-signed SERCA (the trust anchor of a 2030.5 PKI)."""
    key = _key()
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_not_before())
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_ski(key), critical=False)
        .add_extension(_policies([ANY_POLICY]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _authority(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def _below(issuer: Issued) -> tuple[x509.Certificate, ...]:
    """The intermediates of something ``issuer`` signs: the issuer itself unless it is the root."""
    if issuer.cert.issuer == issuer.cert.subject and not issuer.intermediates:
        return ()
    return (issuer.cert, *issuer.intermediates)


def make_ca(issuer: Issued, common_name: str, *, path_length: int) -> Issued:
    """An intermediate CA (MCA or MICA) signed by ``issuer``."""
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_not_before())
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_ski(key), critical=False)
        .add_extension(_authority(issuer), critical=False)
        .add_extension(_policies(DEVICE_POLICIES), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key, _below(issuer))


def _general_name(server_name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        return x509.DNSName(server_name)


def make_device(
    issuer: Issued,
    serial: str,
    *,
    server_names: Sequence[str] = (),
    hw_type: ObjectIdentifier = TEST_HW_TYPE,
) -> Issued:
    """A device certificate per the CSIP profile; ``server_names`` adds DNS/IP SANs (servers)."""
    key = _key()
    names: list[x509.GeneralName] = [
        x509.OtherName(ID_ON_HARDWARE_MODULE_NAME, hardware_module_name(hw_type, serial.encode()))
    ]
    names += [_general_name(n) for n in server_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_not_before())
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_device_usage(), critical=True)
        .add_extension(_authority(issuer), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(_policies(DEVICE_POLICIES), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key, _below(issuer))


# --- writing ----------------------------------------------------------------------------------


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an overwritten file (force=True) keeps its old mode otherwise
        os.write(fd, data)
    finally:
        os.close(fd)


def _check_names(devices: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in devices:
        if not _NAME.fullmatch(name) or name.endswith("-chain"):
            raise PkiError(
                f"bad device name {name!r}: use letters, digits, '.', '_' and '-' "
                "(at most 64, not ending in '-chain')"
            )
        if name in _RESERVED:
            raise PkiError(f"device name {name!r} is taken by a file of the PKI itself")
        if name in seen:
            raise PkiError(f"device {name!r} is named twice")
        seen.add(name)


def init_pki(
    directory: Path,
    *,
    devices: Sequence[str] = ("gateway",),
    server_names: Sequence[str] = ("localhost", "127.0.0.1"),
    chain: str = "serca-mca-mica",
    force: bool = False,
) -> PkiFiles:
    """Mint a test PKI into ``directory`` (created 0700 if missing); see the module docstring.

    Refuses (``PkiError``) to overwrite any file it would write unless ``force``; with ``force``
    those files are replaced and any other file in ``directory`` is left alone.
    """
    if chain not in CHAINS:
        raise PkiError(f"unknown chain {chain!r}; one of {', '.join(CHAINS)}")
    if not devices:
        raise PkiError("at least one device is needed")
    _check_names(devices)
    if not server_names:
        raise PkiError("the server certificate needs at least one DNS name or IP address")

    serca = make_serca()
    mca = make_ca(serca, "IEEE 2030.5 Test MCA", path_length=1)
    mica = make_ca(mca, "IEEE 2030.5 Test MICA", path_length=0)
    mica_direct = make_ca(serca, "IEEE 2030.5 Test MICA (direct)", path_length=0)
    issuer = {"serca-mca-mica": mica, "serca-mica": mica_direct, "serca": serca}[chain]
    rogue = make_serca()  # the same Subject as the real SERCA, another key

    leaves: dict[str, Issued] = {name: make_device(issuer, name) for name in devices}
    leaves["server"] = make_device(issuer, "server", server_names=server_names)
    leaves["rogue-device"] = make_device(rogue, "rogue-device")
    leaves["rogue-server"] = make_device(rogue, "rogue-server", server_names=server_names)
    leaves["comm-004a"] = make_device(serca, "comm-004a")
    leaves["comm-004b"] = make_device(mica_direct, "comm-004b")
    leaves["comm-004c"] = make_device(mica, "comm-004c")

    files: dict[str, bytes] = {
        "serca.pem": _pem(serca.cert),
        "mca.pem": _pem(mca.cert),
        "mica.pem": _pem(mica.cert),
        "mica-direct.pem": _pem(mica_direct.cert),
        "rogue-serca.pem": _pem(rogue.cert),
    }
    keys: dict[str, bytes] = {}
    for name, leaf in leaves.items():
        files[f"{name}.pem"] = _pem(leaf.cert)
        files[f"{name}-chain.pem"] = _pem(leaf.cert, *leaf.intermediates)
        keys[f"{name}.key"] = _key_pem(leaf.key)

    existing = [f for f in [*files, *keys] if (directory / f).exists()]
    if existing and not force:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise PkiError(
            f"{directory} already holds a PKI ({shown}); use --force (force=True) to replace it"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for file_name, data in files.items():
        _write(directory / file_name, data, 0o644)
    for file_name, data in keys.items():
        _write(directory / file_name, data, 0o600)

    def entry(name: str) -> DeviceFiles:
        return DeviceFiles(
            name=name,
            cert=directory / f"{name}.pem",
            key=directory / f"{name}.key",
            chain=directory / f"{name}-chain.pem",
            lfdi=lfdi(leaves[name].cert),
        )

    return PkiFiles(
        directory=directory,
        serca=directory / "serca.pem",
        mca=directory / "mca.pem",
        mica=directory / "mica.pem",
        mica_direct=directory / "mica-direct.pem",
        devices={name: entry(name) for name in devices},
        server=entry("server"),
        rogue_serca=directory / "rogue-serca.pem",
        rogue_device=entry("rogue-device"),
        rogue_server=entry("rogue-server"),
        depth={name: entry(name) for name in ("comm-004a", "comm-004b", "comm-004c")},
    )


# --- gateway certs init DIR ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``init DIR [--device NAME ...] [--server-name NAME ...] [--chain C] [--force]``."""
    actions = parser.add_subparsers(dest="certs_action", required=True)
    init = actions.add_parser(
        "init", help="mint a 2030.5 test PKI (SERCA, MCA, MICA, devices, server) into DIR"
    )
    init.add_argument("directory", type=Path, metavar="DIR", help="where the PKI is written")
    init.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="NAME",
        help="a device certificate to issue (repeatable; default: gateway)",
    )
    init.add_argument(
        "--server-name",
        action="append",
        dest="server_names",
        metavar="NAME",
        help="a DNS name or IP address for the server certificate "
        "(repeatable; default: localhost and 127.0.0.1)",
    )
    init.add_argument(
        "--chain",
        choices=CHAINS,
        default="serca-mca-mica",
        help="the CAs between the SERCA and the devices and server (default: %(default)s)",
    )
    init.add_argument("--force", action="store_true", help="replace the files of an existing PKI")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Carry out ``gateway certs init``; 1 (with the reason on ``err``) if it refused."""
    try:
        pki = init_pki(
            args.directory,
            devices=args.devices or ("gateway",),
            server_names=args.server_names or ("localhost", "127.0.0.1"),
            chain=args.chain,
            force=args.force,
        )
    except (PkiError, OSError) as exc:
        err.write(f"gateway certs init: {exc}\n")
        return 1
    d = pki.directory
    out.write(f"test PKI in {d} (chain {args.chain}; not for production)\n")
    out.write(f"  trust anchor   {pki.serca.name}\n")
    out.write(f"  intermediates  {pki.mca.name} {pki.mica.name} {pki.mica_direct.name}\n")
    out.write("  LFDI                                      certificate, key, chain\n")
    listed = [*pki.devices.values(), pki.server]
    for dev in listed:
        out.write(f"  {dev.lfdi}  {dev.cert.name} {dev.key.name} {dev.chain.name}\n")
    out.write(
        f"  negative tests: {pki.rogue_serca.name}, rogue-device.*, rogue-server.*, "
        "comm-004a/b/c.* (chain depth 2/3/4)\n"
    )
    out.write("  *.key are private keys (mode 0600): never commit them\n")
    return 0
