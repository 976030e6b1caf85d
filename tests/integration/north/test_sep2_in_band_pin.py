"""The registration PIN after in-band registration (ALL-02 against the reference server).

The reference CSIP-AUS server (envoy) gives an EndDevice registered in band a random PIN. The
PIN is an out-of-band check (2030.5 §6.11, CSIP registration): it proves that the utility
registered *this* device, so it is held against a Registration the utility made out of band
only. A Registration the server made in answer to our own POST /edev carries the server's PIN:
the gateway reports it (ERROR, once) and carries on, and it remembers in its store that it
registered in band, so that a restart does not turn it into an out-of-band mismatch.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sep2_rig import PIN, GatewayRig, gateway_rig, run, utility_server

from gateway.core.controls import Mode
from gateway.north.sep2.client import IN_BAND_KEY
from gateway.north.sep2.identity import pin_with_check
from gateway.north.sep2.pki import PkiFiles
from gateway.store.sqlite import SqliteStore


def _default_export_limit(r: GatewayRig) -> float | None:
    in_force = r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now())
    return None if in_force.value is None else float(in_force.value)


def _assigned_pin(r: GatewayRig) -> int:
    pin = r.state.end_device(r.lfdi).pin
    assert pin is not None
    return pin


def test_ALL_02_a_random_pin_assigned_in_band_is_reported_and_the_client_carries_on(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "gw.db"

    async def body() -> None:
        async with utility_server(sep2_pki, register_in_band=True) as u:
            u.state.random_registration_pin = True  # envoy's habit
            async with gateway_rig(sep2_pki, db, utility=u, register_in_band=True) as r:
                await r.until(lambda: _default_export_limit(r) == 5000, "the default in force")
                await r.until(
                    lambda: r.state.der_status(r.lfdi) is not None, "DERStatus PUT", timeout=10
                )
                assigned = _assigned_pin(r)
                if assigned == PIN:  # 1 in 100000: nothing to tell apart
                    pytest.skip("the random PIN happened to be the configured one")
                await asyncio.sleep(2.0)  # a few more walks: reported once, not each walk
                said = [
                    x
                    for x in caplog.records
                    if x.levelno == logging.ERROR and f"{assigned:06d}" in x.getMessage()
                ]
                assert len(said) == 1, [x.getMessage() for x in said]
                message = said[0].getMessage()
                assert f"{PIN:06d}" in message
                assert "[sep2] pin" in message
                assert not any("not trusting" in e for e in r.gateway.client.errors)
                found = r.gateway.client.session.discovery
                assert found is not None
                assert found.registration is not None
                assert found.registration.pIN == assigned
                assert len(r.recorder.requests("POST", path="/edev")) == 1
                assert r.recorder.requests("GET", path="/edev/1/fsa")
            with SqliteStore(db) as store:
                remembered = store.get_state(f"{IN_BAND_KEY}.{r.lfdi.upper()}")
            assert remembered is not None
            assert remembered["href"] == "/edev/1"

            # A restart: the EndDevice is now in the list, yet it is still ours from in band.
            caplog.clear()
            async with gateway_rig(sep2_pki, db, utility=u, register_in_band=True) as again:
                await again.until(
                    lambda: again.gateway.client.session.discovery is not None, "a walk"
                )
                await again.until(lambda: _default_export_limit(again) == 5000, "the default")
                assert not any("not trusting" in e for e in again.gateway.client.errors)
                assert len(u.recorder.requests("POST", path="/edev")) == 1  # not POSTed again

    run(body)


def test_ALL_03_REJ_an_out_of_band_registration_with_another_pin_is_still_refused(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """``register = true`` only allows a POST when the server does not know us: an EndDevice
    the utility registered out of band is checked against the configured PIN as before."""
    wrong = pin_with_check(22222)

    async def body() -> None:
        async with utility_server(sep2_pki, server_pin=wrong) as u:
            async with gateway_rig(
                sep2_pki, tmp_path / "gw.db", utility=u, register_in_band=True
            ) as r:
                await r.until(
                    lambda: any("not trusting" in e for e in r.gateway.client.errors),
                    "the PIN refused",
                )
                await asyncio.sleep(1.5)
                assert r.recorder.requests("POST", path="/edev") == []
                assert r.recorder.requests("GET", path="/edev/1/fsa") == []
                assert r.gateway.client.session.discovery is None
                assert _default_export_limit(r) is None

    run(body)
