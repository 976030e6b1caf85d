"""COMM-002, COMM-003 and COMM-004/004A-G: discovery and the TLS profile, judged from the wire.

IEEE 2030.5-2018 §6.11 (security): TLS 1.2 (RFC 5246) with TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
mutual authentication with certificates that chain to the SERCA (§6.11.8 / §6.11.9 the
certificate profile and path validation, RFC 5280 §6). A client that refuses the server's
chain refuses it in the handshake: the tap sees its ClientHello, the server sees no HTTP
request. §5.2 (resource discovery): a client configured with the DeviceCapability URI starts
there and follows its links.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.conformance.cases import Case, Criterion, Result
from gateway.conformance.csip import certs
from gateway.conformance.csip.session import Session, result, session
from gateway.conformance.csip.tap import CCM8, TLS12
from gateway.conformance.target import Target

ACCEPT_S = 20.0  # time for the client's first request (its start-up included)
HELLO_S = 20.0  # time for the client's first ClientHello
GRACE_S = 3.0  # after a ClientHello, time for a request that would show the chain accepted


def _hellos(s: Session) -> int:
    return sum(c.hello for c in s.tap.connections)


def accepted(s: Session, what: str) -> list[Criterion]:
    reqs = s.requests()
    first = f"{reqs[0].method} {reqs[0].path}" if reqs else "no request"
    mine = [x for x in reqs if x.lfdi == s.lfdi]
    return [
        Criterion(
            f"the client accepted the server's certificate ({what}) and sent a request over it",
            bool(reqs),
            ">= 1 HTTP request at the server",
            f"{len(reqs)} requests (first: {first})",
        ),
        Criterion(
            "the request came with the client's certificate (mutual TLS)",
            bool(mine),
            f"LFDI {s.lfdi}",
            ", ".join(sorted({str(x.lfdi) for x in reqs})) or "none",
        ),
    ]


def refused(s: Session, what: str) -> list[Criterion]:
    reqs = s.requests()
    data = sum(c.application_data for c in s.tap.connections)
    return [
        Criterion(
            "the client tried a TLS handshake (else the case proves nothing)",
            _hellos(s) > 0,
            ">= 1 ClientHello",
            f"{_hellos(s)} ClientHello(s) on {len(s.tap.connections)} connection(s)",
        ),
        Criterion(
            f"the client refused the server's certificate ({what}): no HTTP request reached it",
            not reqs,
            "0 requests",
            f"{len(reqs)} (first: {reqs[0].method} {reqs[0].path})" if reqs else "0",
        ),
        Criterion(
            "the client sent no application data over the refused handshake",
            data == 0,
            "0 connections with application data",
            f"{data}",
        ),
    ]


async def _chain(
    target: Target, folder: Path, kind: str, accept: bool
) -> tuple[list[Criterion], Session, list[str]]:
    out: list[str] = []
    async with session(folder, target, ACCEPT_S + GRACE_S, server_cert=kind, output=out) as s:
        s.note(f"the server presents: {certs.KINDS[kind]}")
        if accept:
            await s.wait(ACCEPT_S, lambda: bool(s.requests()))
            criteria = accepted(s, certs.KINDS[kind])
        else:
            await s.wait(HELLO_S, lambda: _hellos(s) > 0)
            await s.wait(GRACE_S, lambda: bool(s.requests()))
            criteria = refused(s, certs.KINDS[kind])
    return criteria, s, out


def chain_case(kind: str, accept: bool) -> Callable[[Case, Target, Path], Awaitable[Result]]:
    async def run(case: Case, target: Target, folder: Path) -> Result:
        criteria, s, out = await _chain(target, folder, kind, accept)
        return result(case, s, criteria, out)

    return run


async def comm_004(case: Case, target: Target, folder: Path) -> Result:
    """Another CA's chain and an expired certificate, each refused in its own session."""
    t0 = time.monotonic()
    criteria: list[Criterion] = []
    evidence = []
    last: Session | None = None
    outs: list[str] = []
    for kind in ("other-ca", "expired"):
        got, last, out = await _chain(target, folder / kind, kind, accept=False)
        criteria += got
        evidence += last.evidence([])
        outs += out
    assert last is not None
    r = result(case, last, criteria, outs)
    r.evidence = evidence + [{"target": line} for line in outs]
    r.elapsed_s = time.monotonic() - t0
    return r


async def comm_003(case: Case, target: Target, folder: Path) -> Result:
    out: list[str] = []
    async with session(folder, target, ACCEPT_S, output=out) as s:
        await s.wait(ACCEPT_S, lambda: bool(s.requests()))
    hellos = [c for c in s.tap.connections if c.hello]
    offered = sorted({v for c in hellos for v in c.offered_versions})
    chosen = {(c.chosen_version, c.chosen_cipher) for c in hellos if c.chosen_cipher is not None}
    hexes = ", ".join(f"0x{v:04X}" for v in offered) or "none"
    criteria = [
        Criterion("the client sent a ClientHello", bool(hellos), ">= 1", str(len(hellos))),
        Criterion(
            "every ClientHello offers TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE)",
            bool(hellos) and all(CCM8 in c.offered_ciphers for c in hellos),
            "0xC0AE offered",
            "; ".join(" ".join(f"0x{x:04X}" for x in c.offered_ciphers[:12]) for c in hellos[:2])
            or "none",
        ),
        Criterion(
            "every ClientHello offers TLS 1.2 and nothing later (2030.5 §6.11: TLS 1.2)",
            bool(hellos) and offered == [TLS12],
            "0x0303 only",
            hexes,
        ),
        Criterion(
            "negotiated TLS 1.2 with 0xC0AE",
            bool(chosen) and chosen == {(TLS12, CCM8)},
            "(0x0303, 0xC0AE)",
            ", ".join(f"(0x{v or 0:04X}, 0x{c or 0:04X})" for v, c in sorted(chosen, key=str))
            or "no ServerHello",
        ),
        *accepted(s, "on the 2030.5 suite")[1:],
    ]
    return result(case, s, criteria, out)


async def comm_002(case: Case, target: Target, folder: Path) -> Result:
    out: list[str] = []
    async with session(folder, target, ACCEPT_S + 10, output=out) as s:
        await s.wait(ACCEPT_S + 10, lambda: {"/tm", "/edev"} <= {x.path for x in s.requests()})
    reqs = s.requests()
    first = f"{reqs[0].method} {reqs[0].path}" if reqs else "none"
    paths = {x.path for x in reqs}
    criteria = [
        Criterion(
            "the first request is GET of the configured DeviceCapability URI",
            first == "GET /dcap",
            "GET /dcap",
            first,
        ),
        Criterion(
            "the client followed the DeviceCapability's TimeLink and EndDeviceListLink",
            {"/tm", "/edev"} <= paths,
            "GET /tm and GET /edev",
            ", ".join(sorted(paths)[:8]) or "none",
        ),
    ]
    return result(case, s, criteria, out)
