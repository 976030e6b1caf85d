"""Control procedures (CSIP-AUS ALL-11 ... ALL-25): events reach the home, responses the server.

Each test runs the whole gateway against the simulated utility (``sep2_rig.py``).
"""

from __future__ import annotations

from pathlib import Path

from sep2_rig import GatewayRig, export_limit, gateway_rig, run

from gateway.core.island import RelayPosition
from gateway.core.schedule import Mode
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import ConnectStatus, DERStatus
from gateway.north.sep2.model import DERControlBase
from gateway.north.sep2.pki import PkiFiles


def test_ALL_18_responses_received_started_completed_cancelled_superseded(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = r.server_now()
            done = r.state.add_control(
                r.program, start=int(now) + 1, duration=2, base=export_limit(3000)
            )
            cancelled = r.state.add_control(
                r.program, start=int(now) + 60, duration=600, base=export_limit(2000)
            )
            old = r.state.add_control(
                r.program, start=int(now) + 120, duration=600, base=export_limit(1000)
            )
            await r.until(lambda: r.codes(cancelled) == [1], "1 for the control to cancel")
            r.state.cancel(cancelled)
            new = r.state.supersede(old, base=export_limit(1500))
            await r.until(lambda: r.codes(done) == [1, 2, 3], "1, 2, 3 for the short control")
            await r.until(lambda: r.codes(cancelled) == [1, 6], "1 then 6 after cancel")
            await r.until(lambda: r.codes(old) == [1, 7], "1 then 7 after supersede")
            await r.until(lambda: r.codes(new) == [1], "1 for the superseding control")
            # Each exactly once, in server time, from our LFDI.
            for mrid in (done, cancelled, old, new):
                for _, response in r.recorder.responses(mrid):
                    assert response.endDeviceLFDI == r.lfdi
                    assert response.createdDateTime is not None
                    assert abs(response.createdDateTime - r.server_now()) < 30

    run(body)


def test_ALL_12_disconnect_opens_the_relay_and_reconnects_after(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "grid-connected at start")
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=4, base=DERControlBase(opModConnect=False)
            )
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            await r.until(
                lambda: _gen_connect(r) is not None and _gen_connect(r) & 0b111 == 0,
                "DERStatus genConnectStatus bits 0-2 clear while disconnected",
            )
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "the relay recloses", 30)
            await r.until(
                lambda: (_gen_connect(r) or 0) & ConnectStatus.CONNECTED != 0,
                "genConnectStatus bit 0 set again after the control",
            )
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3")
            assert r.site.engine.explain(Mode.CONNECT)

    run(body)


def _gen_connect(r: GatewayRig) -> int | None:
    puts = [x for x in r.recorder.requests("PUT", "/edev/") if x.path.endswith("/ders")]
    if not puts:
        return None
    status = codec.decode(puts[-1].body)
    assert isinstance(status, DERStatus)
    return None if status.genConnectStatus is None else int(status.genConnectStatus.value)
