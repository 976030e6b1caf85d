"""The post rate set on the MirrorUsagePoint (ALL-10 against the reference server).

The reference CSIP-AUS server sets ``postRate`` on each MirrorUsagePoint, not on the EndDevice
(``UtilityState.mup_post_rate``, the EndDevice without ``postRate``). The gateway GETs each
mirror it created (its Location) and again with every walk, and posts that mirror's readings,
and DERStatus with them, at that rate instead of the 900 s default.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from sep2_rig import GatewayRig, gateway_rig, run, utility_server

from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.session import POST


def _posts(r: GatewayRig, path: str) -> list[float]:
    return [x.at for x in r.recorder.requests("POST", path=path)]


def test_ALL_10_readings_follow_the_post_rate_of_their_mirror(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            gw = sep2_pki.device("gateway")
            u.state.end_device(gw.lfdi).post_rate = None  # on the mirrors only
            u.state.mup_post_rate = 1
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                await r.until(lambda: len(r.state.mups) == 2, "both mirrors created")
                await r.until(
                    lambda: all(len(_posts(r, f"/mup/{n}")) >= 4 for n in (1, 2)),
                    "four posts of readings to each mirror at its 1 s postRate",
                    timeout=12,
                )
                assert r.recorder.requests("GET", path="/mup/1")  # its postRate was read
                statuses = [x for x in r.recorder.requests("PUT") if x.path.endswith("/ders")]
                assert len(statuses) >= 4, "DERStatus goes with the readings"
                assert r.gateway.client.session.rate(POST) == 1

                # The server slows the mirrors down: the next walk reads it.
                u.state.mup_post_rate = 4
                changed = r.server_now()
                await r.until(
                    lambda: any(
                        x.at > changed + 1 for x in r.recorder.requests("GET", path="/mup/1")
                    ),
                    "the mirror read again",
                )
                since = r.server_now()
                await r.until(
                    lambda: len([t for t in _posts(r, "/mup/1") if t > since]) >= 3,
                    "three posts at the new rate",
                    timeout=20,
                )
                later = [t for t in _posts(r, "/mup/1") if t > since]
                gaps = [b - a for a, b in itertools.pairwise(later)]
                assert all(g >= 3 for g in gaps), gaps

    run(body)
