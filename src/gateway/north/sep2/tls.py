"""TLS for IEEE 2030.5: TLS 1.2 only, ECDHE-ECDSA-AES128-CCM8 on P-256, mutual authentication.

``client_context`` and ``server_context`` return ready ``ssl.SSLContext`` objects (the
transport seam takes a context, as httpx's does). What they enforce:

- TLS 1.2 and nothing else (minimum = maximum = TLSv1_2), so TLS 1.3's suites never apply;
- the one cipher suite of the 2030.5 profile, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE),
  named explicitly because OpenSSL leaves it out of ``DEFAULT`` (see :func:`cipher_string` for
  the security level);
- ECDHE on P-256 only (``set_ecdh_curve("prime256v1")``);
- the peer's certificate is **required** on both sides and verified against the configured
  SERCA file *only*: no system CAs, no partial chains (an intermediate is never an anchor);
- compression and renegotiation off;
- the files are checked as they are loaded: a missing file, a key file that holds a
  certificate, an encrypted key or a key of another certificate is a :class:`TlsConfigError`
  naming the file and the ``[sep2]`` setting, not OpenSSL's "[SSL] PEM lib";
- a chain holding a CA whose nameConstraints are not marked critical is refused in the
  handshake (:func:`check_chain`), on both sides: OpenSSL applies the constraints but not
  that rule of RFC 5280 (COMM-004E).

Identity. A 2030.5 peer is known by its LFDI (:func:`peer_lfdi`: SHA-256 of the peer's DER
certificate, first 40 hex digits), not by a name. The client can additionally pin the server's
LFDI. ``client_context(..., pinned_lfdi=X)`` enforces the pin *inside* the handshake: the
context's ``sslobject_class`` / ``sslsocket_class`` run :func:`check_pinned` as soon as OpenSSL
reports the handshake done, so ``asyncio.open_connection`` / ``loop.create_connection``
(and so aiohttp) fail with :class:`TlsIdentityError`, and no request is ever written to an
impostor. :func:`check_pinned` is also public, for a shell that pins later (after reading the
expected LFDI from configuration, say): it must then call it right after the handshake and
before sending anything.

Hostname verification is on by default on the client (``check_hostname=True``; the test PKI's
server certificate carries DNS/IP names for it). A production 2030.5 server certificate usually
has no DNS name (the device profile has only a hardwareModuleName); then pass
``check_hostname=False`` and pin the LFDI instead.

Verified here (Python 3.11.7, OpenSSL 3.0.19; ``tests/integration/north/test_tls_handshake.py``):
the pair negotiates ``('ECDHE-ECDSA-AES128-CCM8', 'TLSv1.2', 128)``; chains of depth 2, 3 and 4
are accepted. When the *server* refuses a handshake (unknown CA, no client certificate, missing
MICA, no shared cipher), asyncio aborts the connection without sending the TLS alert, and in
non-debug mode logs nothing: the client sees a bare ``ConnectionResetError`` and the server's
reason is lost. A server that must explain refusals (the utility simulator) has to record them
itself, e.g. from its own ``sslobject_class`` as the test does.
"""

from __future__ import annotations

import functools
import logging
import platform
import re
import ssl
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from gateway.core import errors
from gateway.north.sep2 import identity

log = logging.getLogger(__name__)

TLS_CIPHER = "ECDHE-ECDSA-AES128-CCM8"
TLS_CURVE = "prime256v1"
_HEX40 = re.compile(r"[0-9A-F]{40}")


class TlsConfigError(errors.ConfigError, ValueError):
    """A TLS file that cannot be used (missing, the wrong kind, a key for another certificate).
    The message names the file, what is wrong with it and what to do; a ``ValueError`` as the
    chain check's always was."""


class TlsIdentityError(ssl.SSLCertVerificationError, errors.TransportError):
    """The peer's certificate chains to the SERCA but is not the one expected (LFDI pin).

    A subclass of ``ssl.SSLCertVerificationError`` (so of ``ssl.SSLError``), so that asyncio
    treats it as a failed handshake (it aborts the transport) and callers that catch
    certificate errors catch this one too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.strerror = message  # what str() of an SSLError shows
        self.reason = "PINNED_LFDI_MISMATCH"
        self.verify_message = message


class TlsChainError(ssl.SSLCertVerificationError, errors.TransportError):
    """The peer's chain verified, but breaks a rule of RFC 5280 that OpenSSL does not enforce
    (COMM-004E: a CA whose nameConstraints are not marked critical). A subclass of
    ``ssl.SSLCertVerificationError`` for the same reasons as :class:`TlsIdentityError`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.strerror = message
        self.reason = "NON_CRITICAL_NAME_CONSTRAINTS"
        self.verify_message = message


def certificate_problem(der: bytes) -> str | None:
    """What makes a peer's certificate unusable for 2030.5, in words; None when its key is
    ECDSA P-256 (the only kind the suite can use).

    An RSA (or P-384, ...) server certificate cannot be used with ECDHE-ECDSA-AES128-CCM8, so
    the handshake fails before the certificate reaches our checks, and OpenSSL only says
    "handshake failure" (or the server resets the connection): the shell fetches the
    certificate apart (``client._peer_certificate``) and asks this what was wrong.
    """
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as e:
        return f"the server's certificate does not parse ({e})"
    wanted = f"2030.5 requires ECDSA P-256 (TLS {TLS_CIPHER})"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return None
        return f"the server's certificate is ECDSA on {key.curve.name}; {wanted}"
    kinds: tuple[tuple[type, str], ...] = (
        (rsa.RSAPublicKey, "RSA"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PublicKey, "Ed448"),
    )
    kind = next((name for cls, name in kinds if isinstance(key, cls)), type(key).__name__)
    return f"the server's certificate is {kind}; {wanted}"


PeerConnection = ssl.SSLObject | ssl.SSLSocket
"""Either side of a TLS connection: asyncio's ``get_extra_info("ssl_object")``, or a socket."""


def verified_chain(ssl_object: PeerConnection) -> list[x509.Certificate]:
    """The chain OpenSSL verified, peer first, anchor last; empty where Python cannot say.

    Python 3.13 has ``get_verified_chain()``; 3.11 and 3.12 have it on the private ``_sslobj``
    (the same C method). Without either the checks that need it are skipped, and the log says
    so once: the handshake's own verification still holds, but a non-critical
    nameConstraints (COMM-004E) would then pass.
    """
    get = getattr(ssl_object, "get_verified_chain", None)
    if get is None:
        get = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if get is None:
        _warn_no_chain()
        return []
    out = []
    for c in get() or ():  # None: the peer presented no certificate (CERT_OPTIONAL)
        if isinstance(c, bytes):  # 3.13: DER
            out.append(x509.load_der_x509_certificate(c))
        else:  # 3.11, 3.12: _ssl.Certificate, PEM text by default
            out.append(x509.load_pem_x509_certificate(c.public_bytes().encode()))
    return out


@functools.cache
def _warn_no_chain() -> None:
    log.warning(
        "this Python (%s) does not expose the verified TLS chain: the check that every "
        "nameConstraints extension is critical (2030.5 COMM-004E) is skipped; use CPython "
        "3.11 or later",
        platform.python_implementation() + " " + platform.python_version(),
    )


def check_chain(ssl_object: PeerConnection) -> None:
    """Raise :class:`TlsChainError` if a certificate of the verified chain carries
    nameConstraints not marked critical. RFC 5280 §4.2.1.10: "Conforming CAs MUST mark this
    extension as critical"; OpenSSL applies the constraints but never looks at the flag, so a
    peer whose names satisfy them (or that has none to check, a 2030.5 device certificate
    with only its hardwareModuleName) would pass under an invalid MICA (COMM-004E)."""
    for cert in verified_chain(ssl_object):
        try:
            ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            continue
        if not ext.critical:
            who = cert.subject.rfc4514_string() or "a certificate"
            raise TlsChainError(
                f"{who} in the peer's chain carries nameConstraints not marked critical "
                "(RFC 5280 4.2.1.10 requires it; 2030.5 COMM-004E): refused"
            )


class _CheckedObject(ssl.SSLObject):
    """asyncio's side of a connection: the chain rules OpenSSL skips, checked in the
    handshake, so nothing is sent to (or taken from) such a peer."""

    def do_handshake(self) -> None:
        super().do_handshake()
        check_chain(self)


class _CheckedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        check_chain(self)


_X509_V_FLAG_POLICY_CHECK: Final = 0x80


def cipher_string(openssl_version: tuple[int, ...] = ssl.OPENSSL_VERSION_INFO) -> str:
    """The OpenSSL cipher string for the 2030.5 suite on this OpenSSL.

    OpenSSL 3.0 and 3.1 allow CCM8 at the default security level 1 (verified here with 3.0.19,
    with and without ``@SECLEVEL=0``). OpenSSL 3.2 "downgraded [CCM8 cipher suites in TLS] to
    security level zero because they use a short authentication tag" (its CHANGES.md; it also
    raised the default level to 2), so from 3.2 on the suite is only offered with
    ``@SECLEVEL=0``, which this appends there and only there. Level 0 also admits weak keys and
    SHA-1 signatures in general; the single suite, the single curve and a P-256 SERCA as the only
    trust anchor keep most of that out of reach.
    """
    if tuple(openssl_version[:2]) >= (3, 2):
        return f"{TLS_CIPHER}:@SECLEVEL=0"
    return TLS_CIPHER


def normalise_lfdi(lfdi: str) -> str:
    """40 upper-case hex digits (as ``identity.lfdi``); accepts lower case and 4-digit groups
    (``-``, `` ``, ``:``)."""
    flat = re.sub(r"[\s:-]", "", lfdi).upper()
    if not _HEX40.fullmatch(flat):
        raise ValueError(f"an LFDI is 40 hex digits (160 bits), not {lfdi!r}")
    return flat


def peer_lfdi(ssl_object: PeerConnection) -> str:
    """The peer's LFDI: SHA-256 of its DER certificate, left-truncated to 160 bits (40 hex)."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise TlsIdentityError("the peer presented no certificate (is the handshake done?)")
    return identity.lfdi(der)


def check_pinned(ssl_object: PeerConnection, lfdi: str) -> None:
    """Raise :class:`TlsIdentityError` unless the peer's LFDI is ``lfdi`` (any case, grouped)."""
    expected = normalise_lfdi(lfdi)
    actual = peer_lfdi(ssl_object)
    if actual != expected:
        raise TlsIdentityError(
            f"peer LFDI {actual} is not the pinned {expected}: its certificate chains to the "
            "SERCA but belongs to another device"
        )


def _base_context(
    protocol: int, cert: Path, key: Path, chain: Path | None, serca: Path
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher_string())
    ctx.set_ecdh_curve(TLS_CURVE)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN  # an intermediate is never an anchor
    # Evaluate certificate policies and policy mappings (COMM-004F): without this flag OpenSSL
    # never looks at them, and a MICA mapping anyPolicy would be accepted. The ssl module has
    # no name for X509_V_FLAG_POLICY_CHECK.
    ctx.verify_flags |= ssl.VerifyFlags(_X509_V_FLAG_POLICY_CHECK)
    _load(ctx, cert, key, chain, serca)
    ctx.sslobject_class = _CheckedObject
    ctx.sslsocket_class = _CheckedSocket
    return ctx


# The run file's keys for each TLS file, so that a message says which setting to change.
_ROLES: Final = {
    "cert": "the device certificate ([sep2] cert)",
    "key": "the device's private key ([sep2] key)",
    "chain": "the certificate chain ([sep2] chain)",
    "serca": "the SERCA certificate ([sep2] serca)",
}
_PEM_CERT: Final = b"-----BEGIN CERTIFICATE-----"
# A PEM private key's header (PKCS#8, SEC1 EC, PKCS#1 RSA, encrypted PKCS#8). Spelled with a
# character class so that no committed file reads like a key (the repository's key check).
_PEM_KEY: Final = re.compile(rb"-----BEGIN (?:EC |RSA |ENCRYPTED )?PRIVATE[ ]KEY-----")


def _read(path: Path, role: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{path}: no such file; {_ROLES[role]} must name one") from None
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise TlsConfigError(f"{path}: cannot be read ({why}); it is {_ROLES[role]}") from None


def _load(ctx: ssl.SSLContext, cert: Path, key: Path, chain: Path | None, serca: Path) -> None:
    """Load the SERCA and our certificate and key, or raise :class:`TlsConfigError` saying which
    file is wrong and how: OpenSSL's own "[SSL] PEM lib (_ssl.c:...)" names neither."""
    key_pem, cert_pem = _read(key, "key"), _read(cert, "cert")
    if not _PEM_KEY.search(key_pem):
        if _PEM_CERT in key_pem:
            what = "holds a certificate, not a private key"
        else:
            what = "holds no PEM private key"
        swapped = " (are cert and key swapped?)" if _PEM_KEY.search(cert_pem) else ""
        raise TlsConfigError(
            f"{key} {what}{swapped}: [sep2] key must name the device's private key, the PEM "
            "file whose header names a PRIVATE KEY (PKCS#8) or an EC PRIVATE KEY "
            "(gateway certs init writes it as <device>.key)"
        )
    if b"ENCRYPTED" in key_pem:
        raise TlsConfigError(
            f"{key} is encrypted: the gateway starts unattended, so {_ROLES['key']} must be an "
            "unencrypted PEM key (readable by the gateway's user only)"
        )
    if _PEM_CERT not in cert_pem:
        raise TlsConfigError(f"{cert} holds no PEM certificate; it is {_ROLES['cert']}")
    if _PEM_CERT not in _read(serca, "serca"):
        raise TlsConfigError(f"{serca} holds no PEM certificate; it is {_ROLES['serca']}")
    presented = _chain_file(cert, chain)
    try:
        ctx.load_verify_locations(cafile=str(serca))  # the SERCA only: never load_default_certs()
    except ssl.SSLError as e:
        raise TlsConfigError(
            f"{serca} cannot be used as {_ROLES['serca']}: {e.reason or e}"
        ) from None
    try:
        # An empty password, so that an encrypted key we did not spot fails here instead of
        # OpenSSL prompting on a terminal nobody watches.
        ctx.load_cert_chain(str(presented), str(key), password=lambda: b"")
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise TlsConfigError(
                f"{key} is not the private key of the certificate in {cert}: {_ROLES['key']} "
                f"and {_ROLES['cert']} must be one device's pair"
            ) from None
        raise TlsConfigError(
            f"{presented} and {key} cannot be loaded as our certificate and key: {e.reason or e}"
        ) from None


def _chain_file(cert: Path, chain: Path | None) -> Path:
    """The file to present: ``chain`` (leaf then intermediates) if given, else the bare leaf.

    ``chain`` must begin with ``cert`` (as ``<name>-chain.pem`` of the test PKI does); a chain
    for another device is a configuration error, raised here rather than in a handshake.
    """
    if chain is None:
        return cert
    leaf = _first_pem(cert, "cert")
    if _first_pem(chain, "chain") != leaf:
        raise TlsConfigError(
            f"{chain} does not begin with the certificate in {cert}: {_ROLES['chain']} must "
            "be this device's certificate followed by its intermediates (<device>-chain.pem)"
        )
    return chain


def _first_pem(path: Path, role: str) -> bytes:
    text = _read(path, role)
    begin = text.find(_PEM_CERT)
    end = text.find(b"-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        raise TlsConfigError(f"{path} holds no PEM certificate; it is {_ROLES[role]}")
    return b"".join(text[begin:end].split())


def client_context(
    cert: Path,
    key: Path,
    chain: Path | None,
    serca: Path,
    *,
    check_hostname: bool = True,
    pinned_lfdi: str | None = None,
) -> ssl.SSLContext:
    """A client context: presents ``chain`` (or ``cert``), accepts servers under ``serca`` only.

    With ``pinned_lfdi`` the handshake itself fails (:class:`TlsIdentityError`) unless the
    server's certificate has that LFDI (see the module docstring).
    """
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT, cert, key, chain, serca)
    ctx.check_hostname = check_hostname
    if pinned_lfdi is not None:
        pin = normalise_lfdi(pinned_lfdi)

        class PinnedObject(_CheckedObject):
            def do_handshake(self) -> None:
                super().do_handshake()
                check_pinned(self, pin)

        class PinnedSocket(_CheckedSocket):
            def do_handshake(self, block: bool = False) -> None:
                super().do_handshake(block)
                check_pinned(self, pin)

        ctx.sslobject_class = PinnedObject
        ctx.sslsocket_class = PinnedSocket
    return ctx


def server_context(
    cert: Path,
    key: Path,
    chain: Path | None,
    serca: Path,
    *,
    require_client_certificate: bool = True,
) -> ssl.SSLContext:
    """A server context: presents ``chain`` (or ``cert``), requires a client certificate under
    ``serca`` (mutual TLS). Who the client is comes from :func:`peer_lfdi` after the handshake.

    ``require_client_certificate=False`` lets a client without one in (still TLS 1.2, the
    2030.5 suite, our certificate presented); one that presents a certificate must still chain
    to ``serca``. Who then sent a request is unknown: the caller must not trust its content.
    """
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER, cert, key, chain, serca)
    if not require_client_certificate:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def anonymous_client_context(serca: Path, *, check_hostname: bool = False) -> ssl.SSLContext:
    """A client context that presents no certificate and accepts servers under ``serca`` only:
    how a utility server that does not use mutual TLS for notifications connects (the
    simulated utility's ``notify_with_certificate=False``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher_string())
    ctx.set_ecdh_curve(TLS_CURVE)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = check_hostname
    try:
        ctx.load_verify_locations(cadata=_read(serca, "serca").decode("ascii", "replace"))
    except ssl.SSLError as e:
        raise TlsConfigError(f"{serca}: cannot be used as {_ROLES['serca']}: {e}") from None
    return ctx
