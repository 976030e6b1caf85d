"""2030.5 device identity: LFDI, SFDI and the registration PIN (IEEE 2030.5-2018 §6.3).

Sans-I/O: bytes in, values out. ``cryptography`` is used only to parse certificates.

- **Fingerprint**: SHA-256 over the whole DER-encoded certificate (§6.3.4).
- **LFDI**: the fingerprint left-truncated to 160 bits, i.e. its first 40 hex digits. The XSD
  type ``HexBinary160`` is case-insensitive; this module writes upper case, as the standard's
  examples do, and accepts either.
- **SFDI**: the fingerprint left-truncated to 36 bits (the first 9 hex digits), in decimal, with a
  sum-of-digits check digit appended (§6.3.3). The XSD bound is 687194767359; ``sFDI`` always
  includes the check digit (some tools show the 36-bit value without it: ``parse_sfdi`` says so).
- **Registration PIN**: six decimal digits, the last one the same check digit (``PINType``).

Both identifiers are defined over the *certificate*, not the key: a certificate re-issued for the
same key pair has a new LFDI. So there is no ``from_public_key``, deliberately.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core import errors

LFDI_HEX_DIGITS = 40  # 160 bits
SFDI_HEX_DIGITS = 9  # 36 bits
SFDI_MAX = 687194767359  # XSD SFDIType: 2**36 - 1 with a check digit appended (the XSD's bound)
PIN_MAX = 999999  # XSD PINType: "6 digit unsigned decimal integer (0 - 999999)"

_HEX = frozenset(string.hexdigits)
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
# What cryptography's PEM loader takes as a certificate block.
_CERT_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})


class IdentityError(errors.ConfigError, ValueError):
    """An LFDI, SFDI, PIN or certificate that is not what 2030.5 says it must be."""


def fingerprint(der: bytes) -> bytes:
    """SHA-256 of a whole DER-encoded certificate (32 bytes). The bytes are not parsed."""
    return hashlib.sha256(der).digest()


def lfdi(der: bytes) -> str:
    """The LFDI of a DER-encoded certificate: 40 upper-case hex digits."""
    return fingerprint(der)[: LFDI_HEX_DIGITS // 2].hex().upper()


def check_digit(n: int) -> int:
    """The digit that makes the decimal digit sum of ``n`` followed by it a multiple of 10."""
    _require_natural(n, "check_digit")
    return (10 - sum(map(int, str(n))) % 10) % 10


def with_check_digit(n: int) -> int:
    """``n`` with its check digit appended (``11111`` -> ``111115``)."""
    return n * 10 + check_digit(n)


def sfdi_from_lfdi(lfdi: str) -> int:
    """The SFDI (with check digit) of an LFDI, in either case. Raises ``IdentityError``."""
    canonical = parse_lfdi(lfdi)
    return with_check_digit(int(canonical[:SFDI_HEX_DIGITS], 16))


def pin_valid(pin: int) -> bool:
    """True if ``pin`` is a 2030.5 PIN: 0..999999, its last digit the check digit of the rest."""
    if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= PIN_MAX:
        return False
    return check_digit(pin // 10) == pin % 10


def pin_with_check(five_digit: int) -> int:
    """The 6-digit PIN for a 5-digit one (``11111`` -> ``111115``): the form ``pIN`` carries."""
    _require_natural(five_digit, "a 5-digit PIN")
    if five_digit > PIN_MAX // 10:
        raise IdentityError(
            f"a 5-digit PIN is 0..99999; got {five_digit} (already with its check digit?)"
        )
    return with_check_digit(five_digit)


def parse_lfdi(text: str) -> str:
    """Check an LFDI and return it in upper case. Surrounding whitespace is ignored."""
    value = text.strip()
    if len(value) != LFDI_HEX_DIGITS:
        hint = ""
        if len(value) == 64:
            hint = " (that looks like a whole SHA-256 fingerprint; the LFDI is its first 40)"
        elif ":" in value or "-" in value:
            hint = " (write it without separators)"
        raise IdentityError(
            f"an LFDI is {LFDI_HEX_DIGITS} hex digits (160 bits); "
            f"got {len(value)} characters: {value!r}{hint}"
        )
    for position, char in enumerate(value):
        if char not in _HEX:
            raise IdentityError(
                f"an LFDI is hexadecimal; {char!r} at position {position} of {value!r} is not"
            )
    return value.upper()


def parse_sfdi(value: int) -> int:
    """Check an SFDI (range and check digit) and return it."""
    _require_natural(value, "an SFDI")
    if value > SFDI_MAX:
        raise IdentityError(f"an SFDI is at most {SFDI_MAX}; got {value}")
    expected = check_digit(value // 10)
    if value % 10 != expected:
        hint = ""
        # The commonest mistake: the bare 36-bit value (cactus ALL-01 prints one).
        if (checked := with_check_digit(value)) <= SFDI_MAX:
            hint = f"; if {value} is the 36-bit value without it, the SFDI is {checked}"
        raise IdentityError(
            f"SFDI {value} fails its check digit: the last digit should be {expected}{hint}"
        )
    return value


@dataclass(frozen=True)
class Identity:
    """A device's LFDI (upper-case hex) and SFDI, always consistent with each other."""

    lfdi: str
    sfdi: int

    def __post_init__(self) -> None:
        canonical = parse_lfdi(self.lfdi)
        if canonical != self.lfdi:
            raise IdentityError(
                f"Identity takes the canonical LFDI {canonical!r}; use Identity.from_lfdi"
            )
        if self.sfdi != sfdi_from_lfdi(self.lfdi):
            raise IdentityError(
                f"SFDI {self.sfdi} does not belong to LFDI {self.lfdi} "
                f"(its SFDI is {sfdi_from_lfdi(self.lfdi)})"
            )

    @classmethod
    def from_lfdi(cls, text: str) -> Identity:
        """The identity of an LFDI given as text (either case), e.g. from configuration."""
        canonical = parse_lfdi(text)
        return cls(canonical, sfdi_from_lfdi(canonical))

    @classmethod
    def from_der(cls, der: bytes) -> Identity:
        """The identity of a DER certificate's bytes, as a TLS peer presents them; not parsed."""
        return cls.from_lfdi(lfdi(der))

    @classmethod
    def from_certificate(cls, data: bytes) -> Identity:
        """The identity of a certificate, PEM or DER.

        For PEM, the first CERTIFICATE block counts (the leaf in a ``fullchain.pem``); other
        blocks such as a private key are skipped. Raises ``IdentityError`` for anything else.
        """
        return cls.from_der(certificate_der(data))


def certificate_der(data: bytes) -> bytes:
    """The DER encoding of a PEM or DER certificate, after checking that it parses as X.509."""
    if not data.strip():
        raise IdentityError("expected an X.509 certificate (PEM or DER); got no data")
    der_error: ValueError | None = None
    if data[:1] == b"\x30":  # a DER certificate is a SEQUENCE; PEM starts with text
        try:
            certificate = x509.load_der_x509_certificate(data)
        except ValueError as exc:
            der_error = exc
        else:
            # Re-serialising gives back the bytes that were parsed, so the fingerprint is the
            # one a TLS peer computes over the certificate on the wire.
            return certificate.public_bytes(Encoding.DER)
    if der_error is None and b"-----BEGIN " in data:
        labels = _PEM_LABEL.findall(data)
        if not _CERT_LABELS.intersection(labels):
            found = ", ".join(label.decode() for label in labels) or "no readable BEGIN line"
            raise IdentityError(
                f"expected a PEM block '-----BEGIN CERTIFICATE-----'; found {found}"
            )
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise IdentityError(
                f"the PEM CERTIFICATE block is not an X.509 certificate: {exc}"
            ) from exc
        return certificate.public_bytes(Encoding.DER)
    detail = f" (as DER: {der_error})" if der_error else ""
    raise IdentityError(
        "expected an X.509 certificate, PEM ('-----BEGIN CERTIFICATE-----') or DER; "
        f"these {len(data)} bytes are neither{detail}"
    )


def _require_natural(n: int, what: str) -> None:
    # bool is an int subclass; True as an SFDI or PIN is a bug upstream, not the value 1.
    if isinstance(n, bool) or not isinstance(n, int):
        raise IdentityError(f"{what} takes a non-negative int; got {type(n).__name__} {n!r}")
    if n < 0:
        raise IdentityError(f"{what} takes a non-negative int; got {n}")
