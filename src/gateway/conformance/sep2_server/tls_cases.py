"""The TLS cases: the 2030.5 suite is negotiated with a good client certificate, and a client
with none, or with one from a CA the server does not trust, is refused in the handshake
(before any HTTP: a 403 would mean the server let the connection in)."""

from __future__ import annotations

from pathlib import Path

from gateway.conformance.sep2_server.probe import Attempt, Probe, tls_attempt
from gateway.conformance.sep2_server.server import ServerTarget
from gateway.conformance.sep2_server.verdict import Verdict
from gateway.north.sep2 import tls

REFUSED = "refused at the TLS layer: the handshake fails, no HTTP answer"


def _note(probe: Probe, who: str, a: Attempt) -> None:
    probe.note(
        tls=who,
        handshake=a.handshake,
        status=a.status,
        detail=a.detail,
        cipher=a.cipher,
        version=a.version,
    )


def _seen(a: Attempt) -> str:
    return f"accepted, answered {a.detail!r}" if a.status is not None else a.detail


async def suite(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """COMM-003 (as a server meets it): TLS 1.2, ECDHE-ECDSA-AES128-CCM8, mutual."""
    v = Verdict()
    a = await tls_attempt(t.url, t.context(), t.dcap)
    _note(probe, "the client certificate", a)
    seen = "completed" if a.handshake else a.detail
    v.check("TLS handshake with the client certificate", a.handshake, "completed", seen)
    v.check("TLS version", a.version == "TLSv1.2", "TLSv1.2", a.version or "none")
    v.check(
        "cipher suite", a.cipher == tls.TLS_CIPHER, f"{tls.TLS_CIPHER} (0xC0AE)", a.cipher or "none"
    )
    v.check(f"GET {t.dcap} over it", a.status == 200, "HTTP 200", a.detail)
    return v


async def _good_first(t: ServerTarget, probe: Probe, v: Verdict) -> bool:
    """A refusal proves something only if the good certificate gets in: else NOT RUN."""
    a = await tls_attempt(t.url, t.context(), t.dcap)
    _note(probe, "the client certificate", a)
    if a.refused_at_tls:
        v.not_run = (
            f"the server refuses the good client certificate too ({a.detail}; see COMM-003): "
            "a refusal of a bad one would prove nothing"
        )
    return not a.refused_at_tls


async def no_certificate(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    v = Verdict()
    if not await _good_first(t, probe, v):
        return v
    a = await tls_attempt(t.url, tls.anonymous_client_context(t.ca), t.dcap)
    _note(probe, "no client certificate", a)
    v.check(f"GET {t.dcap} with no client certificate", a.refused_at_tls, REFUSED, _seen(a))
    return v


async def foreign_ca(t: ServerTarget, probe: Probe, folder: Path) -> Verdict:
    v = Verdict()
    if not await _good_first(t, probe, v):
        return v
    context, what = t.foreign_context(folder)
    a = await tls_attempt(t.url, context, t.dcap)
    _note(probe, f"a certificate from another CA ({what})", a)
    v.check(
        f"GET {t.dcap} with a certificate from another CA ({what})",
        a.refused_at_tls,
        REFUSED,
        _seen(a),
    )
    return v
