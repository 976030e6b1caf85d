"""Security and hostile input (QualityLogic G1_4010 and the issue's hostile cases): TLS with
ECDSA XML signatures, a wrong VTN fingerprint, a tampered signature, malformed XML at the poll.
Each gets a clear log line and no change to what is in force."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from oadr2_rig import (  # noqa: F401 - oadr2_pki is a fixture
    BILLION_LAUGHS,
    XXE,
    minutes,
    oadr2_pki,
    oadr2_rig,
    run,
    scripted_vtn,
    soon,
    ven_config,
)

from gateway.core.island import RelayPosition
from gateway.core.messages import EventCancelled, EventReceived, NorthLinkLost
from gateway.sim.vtn2.pki import Oadr2Pki

CAPACITY = ("LOAD_CONTROL", "x-loadControlCapacity")


def test_G1_4010_signed_island_event_over_tls(tmp_path: Path, oadr2_pki: Oadr2Pki) -> None:  # noqa: F811
    async def body() -> None:
        async with (
            scripted_vtn(oadr2_pki) as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn, oadr2_pki)) as r,
        ):
            ven_id = await r.registered()
            eid = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.0)])
            r.poll()
            await r.until(lambda: r.opts(eid) == [(0, "optIn", 200)], "optIn, signed")
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")

    run(body)


def test_G1_4010_wrong_vtn_fingerprint_is_refused_and_nothing_is_in_force(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, vtn_fingerprint=oadr2_pki.other.fingerprint)
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=config) as r:
                await r.until(
                    lambda: any(isinstance(i, NorthLinkLost) for i in r.inputs), "link lost"
                )
                await asyncio.sleep(0.5)
                assert vtn.registrations == []
                assert not any(isinstance(i, EventReceived) for i in r.inputs)
                assert r.relay() is RelayPosition.CLOSED

    with caplog.at_level(logging.WARNING):
        run(body)
    assert "fingerprint" in caplog.text


def test_tampered_signature_is_ignored_then_the_good_copy_is_followed(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with (
            scripted_vtn(oadr2_pki) as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn, oadr2_pki)) as r,
        ):
            ven_id = await r.registered()
            seen = r.gateway.ven.distributions
            vtn.tamper_next()
            eid = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.0)])
            polls = vtn.polls
            r.poll()
            await r.until(lambda: vtn.polls > polls, "the tampered answer was fetched")
            await asyncio.sleep(0.2)
            assert r.gateway.ven.distributions == seen
            assert r.opts(eid) == []
            assert r.relay() is RelayPosition.CLOSED
            vtn.touch(ven_id)  # the VTN sends the list again, intact
            r.poll()
            await r.until(lambda: r.opts(eid) == [(0, "optIn", 200)], "the intact copy")

    with caplog.at_level(logging.WARNING):
        run(body)
    assert "invalid signature" in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        b"<oadr:oadrPayload xmlns:oadr='http://openadr.org/oadr-2.0b/2012/07'><broken",
        b"<oadrPayload><oadrSignedObject/></oadrPayload>",
        BILLION_LAUGHS,
        XXE,
        b"\x00\xff garbage",
    ],
    ids=["truncated", "schema-invalid", "billion-laughs", "xxe", "binary"],
)
def test_malformed_xml_at_the_poll_changes_nothing(
    raw: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            seen = r.gateway.ven.distributions
            vtn.send_raw(raw)
            r.poll()
            await r.until(lambda: vtn.raw_served == 1, "the hostile answer was fetched")
            await asyncio.sleep(0.1)
            assert r.gateway.ven.distributions == seen
            assert not any(isinstance(i, EventReceived | EventCancelled) for i in r.inputs)
            # The VEN keeps polling and follows the next good message.
            eid = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 1.0)])
            r.poll()
            await r.until(lambda: r.opts(eid) == [(0, "optIn", 200)], "the next good message")

    with caplog.at_level(logging.WARNING):
        run(body)
    assert any(w in caplog.text for w in ("refused", "schema validation", "could not be parsed"))
