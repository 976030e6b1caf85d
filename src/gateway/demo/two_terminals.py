"""``gateway demo site``: a real installation in miniature, through the paths a user takes.

It writes a site file, serves the simulated home that file describes at the file's loopback
addresses (``gateway simulate home SITE.toml``), and runs the gateway on it exactly as
``gateway run SITE.toml`` does, with no utility link: the grid fails, the home islands on the
EV, the grid returns and the home reconnects after the enter-service delay, all on the wall
clock. It prints the two commands that repeat it in two terminals, and ends with a summary:
the dark time at the outage, how long the home ran on the EV, and the safety checks. Exit
status 1 if the simulated home recorded a violation or the home did not end on the grid.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import TextIO

from gateway.core.island import ChargerMode
from gateway.core.messages import Action, ChargerCommand, Note, RelayCommand
from gateway.demo.site_home import free_ports, home_for
from gateway.runtime.cli_run import run
from gateway.runtime.run_config import load
from gateway.sim.physics import GridStep

OUTAGE_AT_S = 3.0
OUTAGE_FOR_S = 8.0
DELAY_S = 4.0
SITE = """#:schema ../schemas/site.schema.json
# Written by 'gateway demo site': the simulated home's devices on loopback, no utility link.
[site]
name = "demo"
nominal_voltage_v = 240
frequency_hz = 60
phases = "split"
main_breaker_a = 200
busbar_a = 200
backfeed = {{ rule = "705.13" }}
export_limit_w = 5000
backup_reserve_pct = 20
period_s = 0.25

[site.enter_service]
delay_s = {delay_s}     # IEEE 1547 allows 0-600 s; short here so the demo ends soon

[[device]]
name = "relay"
role = "meter_relay"
profile = "meter-collar-relay"
transport = "tcp://127.0.0.1:{ports[0]}"

[[device]]
name = "ev"
role = "charger"
profile = "wallbox-quasar"
transport = "tcp://127.0.0.1:{ports[1]}"
max_discharge_w = 7400
max_charge_w = 7400
capacity_wh = 60000

[[device]]
name = "pv"
role = "pv_inverter"
profile = "sunspec-der"
transport = "tcp://127.0.0.1:{ports[2]}"
max_discharge_w = 7000

[store]
path = "demo.db"
"""


async def run_site_demo(out: TextIO, *, folder: Path | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base = folder or Path(tmp)
        path = base / "site.toml"
        path.write_text(SITE.format(ports=free_ports(3), delay_s=DELAY_S), encoding="utf-8")
        return await _play(path, out)


async def _play(path: Path, out: TextIO) -> int:
    config = load(path)
    start = time.time()
    home = home_for(config, start=start, speed=1.0)
    home.physics.grid.play(
        [
            GridStep(start + OUTAGE_AT_S, 0.0, 0.0),
            GridStep(start + OUTAGE_AT_S + OUTAGE_FOR_S, 240.0, 60.0),
        ]
    )
    out.write(f"site file: {path}\n")
    out.write("the same in two terminals:\n")
    out.write(f"  gateway simulate home {path} --outage-at {OUTAGE_AT_S:g} ")
    out.write(f"--outage-for {OUTAGE_FOR_S:g}\n  gateway run {path} -v\n\n")
    marks: dict[str, float] = {}
    order: list[str] = []  # what happened, in order: the safety checks read it

    def watch(a: Action) -> None:
        t = time.time() - start
        match a:
            case RelayCommand():
                out.write(f"{t:6.2f} s  relay {a.position.value}  because {a.reason}\n")
                order.append(f"relay {a.position.value}")
            case ChargerCommand():
                out.write(f"{t:6.2f} s  charger {a.mode.value}  because {a.reason}\n")
                order.append(f"charger {a.mode.value}")
                if a.mode is ChargerMode.GRID_FORMING:
                    marks.setdefault("forming", t)
            case Note() if "->" in a.message:
                out.write(f"{t:6.2f} s  {a.message}\n")
                order.append(a.message.split(":")[0])
                if a.message.startswith("closing_relay -> grid_connected"):
                    marks["reconnected"] = t

    async with home:
        stop_at = OUTAGE_AT_S + OUTAGE_FOR_S + DELAY_S + 6.0
        quiet = io.StringIO()  # the gateway's own start-up lines; the story is printed above
        code = await run(config, quiet, seconds=stop_at, listener=watch)
    violations = home.violations
    islanded = "forming" in marks
    back = "reconnected" in marks
    out.write("\nsummary\n")
    if islanded:
        out.write(f"  dark time at the outage: {marks['forming'] - OUTAGE_AT_S:.2f} s\n")
    if islanded and back:
        out.write(f"  on the EV: {marks['reconnected'] - marks['forming']:.1f} s\n")
    open_first = _before(order, "opening_relay -> forming", "charger grid_forming")
    stop_first = _before(order, "stopping_forming -> closing_relay", "relay closed")
    out.write(f"  relay confirmed open before the charger formed: {open_first}\n")
    out.write(f"  charger confirmed stopped before the relay reclosed: {stop_first}\n")
    out.write(f"  violations recorded by the simulated home: {len(violations)}\n")
    for v in violations:
        out.write(f"    {v}\n")
    ok = code == 0 and islanded and back and open_first and stop_first and not violations
    out.write(f"  ended on the grid: {back}\n")
    return 0 if ok else 1


def _before(order: list[str], confirmed: str, then: str) -> bool:
    """Every ``then`` in ``order`` comes after a ``confirmed``, and there is at least one."""
    seen = False
    found = False
    for item in order:
        seen = seen or item == confirmed
        if item == then:
            if not seen:
                return False
            found, seen = True, False
    return found
