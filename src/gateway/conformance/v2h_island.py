"""V2H-06: a utility island request with the grid up, over IEEE 2030.5.

The V2H home of every case, plus a 2030.5 link: the suite serves the simulated utility (mutual
TLS, a fresh test PKI in the case's folder; the site file's ``[sep2]`` names the server, the
certificates and the PIN, so a command target reads them where it reads the devices). With the
grid healthy, the utility's DERProgram gets a DERControl ``opModConnect=false`` for
:data:`REQUEST_FOR` seconds. Judged from the devices alone, as every V2H case: the home opens
the relay and the EV forms the island, in the safety order, while the grid stays up; the house
is dark no longer than at an outage; when the control ends, the home goes back on the grid,
charger stopped first, no sooner than the enter-service delay.
"""

from __future__ import annotations

import time
from pathlib import Path

from gateway.conformance import v2h
from gateway.conformance.cases import Case, Criterion, Result, judged
from gateway.conformance.csip_aus import play as csip
from gateway.conformance.target import Target
from gateway.north.sep2.model import DERControlBase
from gateway.north.sep2.pki import init_pki
from gateway.sim.utility import UtilityServer, UtilityState

REQUEST_AT = v2h.WARM_UP_S + 2.0  # after first contact: discovery and registration are done
REQUEST_FOR = 10.0
POLL_S = 1  # every resource's pollRate: the request is seen within a second
ISLAND_WITHIN_S = POLL_S + 5.0  # the request's poll, then stopping export and the relay's travel


def dark_after(run: v2h.Run, since: float) -> Criterion:
    """How long the house went unserved after ``since`` (a planned island may be seamless)."""
    went = run.first(since, lambda s: s.served_w <= 0)
    back = run.first(went.t, lambda s: s.served_w > 0) if went else None
    dark = 0.0 if went is None else (back.t - went.t if back else None)
    seen = f"{dark:.2f} s" if dark is not None else "never powered again"
    ok = dark is not None and dark <= v2h.DARK_MAX_S
    return Criterion("dark time at the island request", ok, f"<= {v2h.DARK_MAX_S} s", seen)


def islanded_on_request(run: v2h.Run) -> Criterion:
    late = REQUEST_AT + ISLAND_WITHIN_S
    s = run.first(REQUEST_AT, lambda s: s.relay == "open" and s.charger == "forming")
    seen = f"at {s.t:.1f} s" if s else "never"
    ok = s is not None and s.t <= late
    return Criterion(
        "the home islands on the request", ok, f"relay open, EV forming by {late:.1f} s", seen
    )


def grid_up_throughout(run: v2h.Run) -> Criterion:
    down = run.first(0.0, lambda s: not s.grid_up)
    seen = f"down at {down.t:.1f} s" if down else "up"
    return Criterion("the grid stayed up (the case plays no outage)", down is None, "up", seen)


async def run(case: Case, target: Target, folder: Path) -> Result:
    t0 = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    pki = init_pki(folder / "pki", devices=("gateway",))
    state = UtilityState(clock=time.time, registration_pin=csip.PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, POLL_S)
    program = state.add_program("v2h island request", primacy=1)

    def request() -> None:
        state.add_control(
            program,
            start=int(state.now()),
            duration=int(REQUEST_FOR),
            base=DERControlBase(opModConnect=False),
            description="V2H-06: island the home",
        )

    s = pki.server
    server = UtilityServer(state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca)
    ended = REQUEST_AT + REQUEST_FOR
    script = v2h.Script(
        duration_s=ended + v2h.DELAY_S + 8.0, events=[(REQUEST_AT, "island-request")]
    )
    async with server:
        site = csip.write_site(folder, server.url("/dcap"), pki)
        played = await v2h.play(script, target, folder, site=site, acts={"island-request": request})
    criteria = [
        v2h.no_violation(played),
        grid_up_throughout(played),
        v2h.never_forming_unless_open(played),
        islanded_on_request(played),
        dark_after(played, REQUEST_AT),
        v2h.relay_open_between(played, REQUEST_AT + ISLAND_WITHIN_S, ended - v2h.TOLERANCE_S),
        *v2h.reconnected(played, ended),
    ]
    return judged(case, criteria, time.monotonic() - t0, played.evidence())
