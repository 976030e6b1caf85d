"""What a third-party 2030.5 client needs of the utility simulator (issue 17): Responses of
every subtype, ``subscribable`` where (and only where) subscriptions are taken, bodies without
an XML declaration, DER resources served with their href, a MirrorMeterReadingList POSTed
without ``all``/``results``, and an invalid NMI refused. Every body sent and received here is
validated against sep.xsd as CSIP-AUS redefines it (``sep_xsd``; skipped where none is found).
"""

from __future__ import annotations

from typing import Any

import pytest
from sep_xsd import schemas
from utility_rig import SERVER_NOW, Rig, export_limit, run

from gateway.north.sep2 import walk
from gateway.north.sep2.pki import PkiFiles, init_pki

NSDECL = 'xmlns="urn:ieee:std:2030.5:ns"'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway",))


@pytest.fixture(scope="module")
def xsd() -> Any:
    return schemas()


async def ask(
    r: Rig, xsd: Any, method: str, href: str, body: bytes | None = None, *, valid: bool = True
) -> walk.Reply:
    """One request; the body sent (unless ``valid=False``: a body the XSD refuses on purpose)
    and every XML body the server answers are checked against the XSD."""
    if body is not None and valid:
        xsd.assert_valid(body)
    reply = await r.request(method, href, body)
    if reply.body and reply.headers.get("Content-Type", "").startswith("application/sep+xml"):
        xsd.assert_valid(reply.body)
    return reply


def response_body(root: str, lfdi: str, mrid: str, status: int = 1) -> bytes:
    return (
        f"<{root} {NSDECL}><createdDateTime>{SERVER_NOW}</createdDateTime>"
        f"<endDeviceLFDI>{lfdi}</endDeviceLFDI><status>{status}</status>"
        f"<subject>{mrid}</subject></{root}>"
    ).encode()


def test_every_response_subtype_is_accepted(pki: PkiFiles, xsd: Any) -> None:
    """sep.xsd: DERControlResponse, PriceResponse, TextResponse, ... extend Response."""

    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        p = r.state.add_program("p")
        mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
        reply_to = r.state.control(mrid).reply_to
        assert reply_to is not None
        roots = ("DERControlResponse", "Response", "PriceResponse", "TextResponse", "DrResponse")
        for i, root in enumerate(roots, start=1):
            got = await ask(r, xsd, "POST", reply_to, response_body(root, edev.lfdi, mrid, i))
            assert got.status == 201, (root, got.body)
        assert [s for s, _ in r.recorder.responses_for(mrid)] == [1, 2, 3, 4, 5]
        wrong = response_body("DERStatus", edev.lfdi, mrid)
        got = await ask(r, xsd, "POST", reply_to, wrong, valid=False)
        assert got.status == 400
        assert b"expected a Response" in got.body

    run(pki, body)
