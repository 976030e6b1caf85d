"""Found against a hostile 2030.5 server: what the gateway does, and what its log says.

* a bad body during the very first walk is retried within seconds (the first-walk back-off),
  not after the schema's 900 s default poll rate;
* controls refused with 253 / 254 are logged at WARNING, with the mRID and the reason;
* a server with an RSA certificate, and a server that never answers, are named as such in the
  log, over real TLS sockets (not "Cannot connect to host ... [None]" and an empty message).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sep2_rig import export_limit, gateway_rig, run, utility_server

from gateway.north.sep2.pki import PkiFiles

EDEV_LIST = "/edev"
WARNING_ABOUT_THE_WALK = "walking again from DeviceCapability in"


def test_a_bad_body_in_the_first_walk_is_retried_within_seconds_not_the_default_poll_rate(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before any walk completed the server's pollRate is unknown; the first-walk back-off (1 s
    doubling, +-20 %) applies, so the walk is tried again about a second later."""

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            # The EndDeviceList cut in half, once: not well-formed, so the walk refuses it.
            u.state.tamper([EDEV_LIST], lambda b: b[: len(b) // 2], count=1)
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                client = r.gateway.client
                await r.until(lambda: client.session.walked, "a completed walk", timeout=10)
                gets = r.recorder.requests("GET", path=EDEV_LIST)
                assert len(gets) >= 2, gets
                gap = gets[1].at - gets[0].at
                assert gap < 5, f"the walk was retried {gap:.1f} s after the bad body"
                assert any(WARNING_ABOUT_THE_WALK in e for e in client.errors), client.errors

    with caplog.at_level(logging.WARNING, logger="gateway.north.sep2.client"):
        run(body)
    walk_warnings = [rec for rec in caplog.records if WARNING_ABOUT_THE_WALK in rec.getMessage()]
    assert walk_warnings, caplog.text
    assert walk_warnings[0].levelno == logging.WARNING
    assert EDEV_LIST in walk_warnings[0].getMessage()


def test_a_control_refused_with_253_is_logged_at_warning_with_its_mrid_and_reason(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.gateway.client.session.walked, "a completed walk")
            now = r.server_now()
            # A negative export limit: it does not decode (a limit is a magnitude): 253.
            r.state.tamper(["/derp/*/derc"], lambda b: b.replace(b">777<", b">-777<"))
            bad = r.state.add_control(r.program, start=now, duration=600, base=export_limit(777))
            await r.until(lambda: r.codes(bad) == [253], "253 for the negative limit")
            # A control whose end is already past when the gateway first sees it: 254.
            over = r.state.add_control(
                r.program, start=now - 900, duration=60, base=export_limit(3000)
            )
            await r.until(lambda: r.codes(over) == [254], "254 for a control already over")
            refused[:] = [bad, over]

    refused: list[str] = []
    with caplog.at_level(logging.INFO):
        run(body)
    for mrid, code in zip(refused, (253, 254), strict=True):
        lines = [rec for rec in caplog.records if mrid in rec.getMessage()]
        warned = [rec for rec in lines if rec.levelno >= logging.WARNING]
        assert warned, f"{mrid} ({code}) never logged at WARNING: {[r.getMessage() for r in lines]}"
        text = warned[0].getMessage()
        assert str(code) in text, text
        assert "refused" in text, text
