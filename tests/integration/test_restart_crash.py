"""SIGKILL the gateway at random moments of the scripted evening, on a real SQLite file, then
start again from what it persisted: it must resume in the right phase, re-send nothing that was
already reported, and never take a safety step out of order."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import NorthReport
from gateway.demo.evening import Demo
from gateway.sim.home import HomeModel
from gateway.store.sqlite import SqliteStore

CHILD = """
import io, sys, time
from gateway.demo import evening as demo
from gateway.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
d = demo.Demo(io.StringIO(), store=store, ack_reports=False)
feed = d.feed
def paced(inp):  # ~2 s for the evening, so that kills land in every phase
    time.sleep(0.0002)
    feed(inp)
d.feed = paced
print("ready", flush=True)
demo.evening(d)
print("done", flush=True)
"""


def _resumed_home(store: SqliteStore) -> HomeModel:
    """The devices as the dead gateway left them: the last command each one received."""
    audit = store.audit()
    island = store.get_state("island") or {}
    # The clock goes on from the last thing the dead gateway recorded.
    at = max([r.at for r in audit] + [float(island.get("since") or 0.0)])
    home = HomeModel(now=at + 1)
    for r in audit:
        if r.outcome != "commanded":
            continue
        if r.device == "relay":
            home.relay.position = RelayPosition(r.value)
        elif r.device == "charger":
            home.charger.mode = ChargerMode(str(r.value).split("/")[0])
    if home.charger.mode is ChargerMode.GRID_FORMING and home.relay.position is not (
        RelayPosition.OPEN
    ):
        home.charger.mode = ChargerMode.STOPPED  # a real charger would have tripped
    return home


# Kill moments spread over the ~2 s run: before the event, during the limit, mid-islanding,
# while islanded, in the enter-service wait and after reconnection.
@pytest.mark.parametrize("kill_after_s", [0.05, 0.6, 1.3, 1.33, 1.36, 1.5, 2.0, 2.2, 2.6])
def test_sigkill_then_resume(tmp_path: Path, kill_after_s: float) -> None:
    db = tmp_path / "state.db"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(kill_after_s)
        child.kill()
        child.wait(timeout=10)

    with SqliteStore(db, create=False) as store:
        before = {item.key for item in store.pending()}
        phase_before = Phase(store.get_state("island")["phase"])  # type: ignore[index]
        home = _resumed_home(store)
        home.grid.restore()
        demo = Demo(io.StringIO(), store=store, home=home, ack_reports=False)
        assert demo.engine.phase is phase_before  # resumed in the persisted phase
        print(f"killed after {kill_after_s} s in {phase_before.value}")
        reports: list[NorthReport] = []
        original = demo.engine.handle

        def spy(inp):  # type: ignore[no-untyped-def]
            actions = original(inp)
            reports.extend(a for a in actions if isinstance(a, NorthReport))
            return actions

        demo.engine.handle = spy  # type: ignore[method-assign]
        demo.run_until(home.now + 700)
        assert home.violations == [], home.violations
        assert demo.engine.phase is Phase.GRID_CONNECTED
        # Nothing already in the outbox was reported again.
        assert not [r.key for r in reports if r.key in before]
        keys = [item.key for item in store.pending()]
        assert len(keys) == len(set(keys))
