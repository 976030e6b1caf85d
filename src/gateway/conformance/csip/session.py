"""One case's world: the simulated 2030.5 utility (behind a TLS tap), the simulated home, and
the client under test, started with the csip-aus suite's site file and environment.

The machinery is the csip-aus interpreter's (``csip_aus.play``: the site file, the PIN, the
environment a command target gets); this module only adds the tap and a loop that keeps the
home's physics moving while a case waits. Everything a case judges is on the wire: the
server's :class:`~gateway.sim.utility.recorder.Recorder`, the tap's connections, the
simulated devices' physics.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.conformance import v2h
from gateway.conformance.cases import Case, Criterion, Result, judged
from gateway.conformance.csip import certs
from gateway.conformance.csip.tap import Tap
from gateway.conformance.csip_aus import play
from gateway.conformance.target import InProcess, Target, environment
from gateway.demo.site_home import home_for
from gateway.north.sep2.pki import init_pki
from gateway.runtime.run_config import load
from gateway.sim.physics import HomePhysics
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.utility.recorder import Exchange

RATE_S = 2  # every pollRate and the postRate: a walk every 2 s
TICK_S = 0.1


@dataclass
class Session:
    state: UtilityState
    recorder: Recorder
    tap: Tap
    physics: HomePhysics
    lfdi: str  # the client's certificate's
    t0: float = field(default_factory=time.monotonic)
    log: list[dict[str, Any]] = field(default_factory=list)
    _home: Any = None

    def note(self, what: str, **more: Any) -> None:
        self.log.append({"t": round(time.monotonic() - self.t0, 2), "note": what, **more})

    async def wait(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Keep the home moving for ``seconds``, or until ``until()`` holds (then True)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._home.sync()
            self._post_rates()
            if until is not None and until():
                return True
            await asyncio.sleep(TICK_S)
        return until is not None and until()

    def _post_rates(self) -> None:
        for e in self.state.end_devices:  # registered in band: the suite's post rate
            if e.post_rate is None:
                self.state.set_post_rate(RATE_S, e.lfdi)

    def requests(self) -> list[Exchange]:
        """The HTTP requests the server answered (Notifications left out)."""
        return [x for x in self.recorder.exchanges if x.method != "NOTIFY"]

    def evidence(self, output: list[str]) -> list[dict[str, Any]]:
        return (
            self.log
            + [c.to_json() for c in self.tap.connections]
            + [x.to_json() for x in self.recorder.exchanges]
            + [{"target": line} for line in output]
        )


def new_state(clock: Callable[[], float] = time.time) -> UtilityState:
    state = UtilityState(clock=clock, registration_pin=play.PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, RATE_S)
    state.mup_post_rate = RATE_S
    return state


@asynccontextmanager
async def session(
    folder: Path,
    target: Target,
    seconds: float,
    *,
    server_cert: str | None = None,
    state: UtilityState | None = None,
    output: list[str] | None = None,
    dcap_path: str = "/dcap",
) -> AsyncIterator[Session]:
    """Serve the utility and the home, start ``target`` for at most ``seconds``, and stop it
    on the way out (what it printed goes to ``output``). ``server_cert``: a kind of
    :data:`certs.KINDS` for the server to present (the gateway's chain then comes from the
    same freshly minted PKI); None: the test PKI of ``gateway certs init``. ``dcap_path``:
    the DeviceCapability URI's path the client is configured with."""
    folder.mkdir(parents=True, exist_ok=True)
    pki: Any
    if server_cert is None:
        pki = init_pki(folder / "pki", devices=("gateway",))
        srv = pki.server
    else:
        pki = certs.mint(folder / "pki", server_cert)
        srv = pki.server
    state = state if state is not None else new_state()
    recorder = Recorder()
    server = UtilityServer(
        state, cert=srv.cert, key=srv.key, chain=srv.chain, serca=pki.serca, recorder=recorder
    )
    async with server, Tap(server.host, server.port) as tap:
        url = f"https://{server.host}:{tap.port}{dcap_path}"
        site = play.write_site(folder, url, pki)
        # US CSIP discovery is out of band (COMM-002): the client is given the DeviceCapability
        # URI itself, not a server to probe for /.well-known/csipaus (CSIP-AUS 1.3).
        text = site.read_text(encoding="utf-8")
        site.write_text(text.replace(f'server = "{url}"', f'dcap = "{url}"', 1), encoding="utf-8")
        home = home_for(load(site), start=v2h.NOON, speed=1.0)
        lfdi = pki.device("gateway").lfdi
        s = Session(state, recorder, tap, home.physics, lfdi)
        s._home = home
        gw = pki.device("gateway")
        values = (url, gw.cert, gw.key, gw.chain, pki.serca, play.PIN, lfdi)
        env = {f"CSIP_AUS_{k}": str(v) for k, v in zip(play.ENV_KEYS, values, strict=True)}
        if not isinstance(target, InProcess):
            print(" ".join(f"{k}={v}" for k, v in env.items()), file=sys.stdout, flush=True)
        async with home:
            with environment(env):
                await target.start(site, seconds)
            try:
                yield s
            finally:
                lines = await target.stop()
                if output is not None:
                    output.extend(lines)


def result(case: Case, s: Session, criteria: list[Criterion], output: list[str]) -> Result:
    return judged(case, criteria, time.monotonic() - s.t0, s.evidence(output))
