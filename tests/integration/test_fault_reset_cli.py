"""``gateway fault-reset`` as a person runs it: a separate process, against a running gateway
(engine, drivers and store on a real SQLite file) driving the simulated home over Modbus.

The home is put into FAULT (the relay fails to open in an outage), then the relay's auxiliary
contact is made to lie "open" with the grid back, so the home side is live: a reset is refused
while that persists, with the reason; then while the relay still reports its own fault; once
that is cleared at the relay it is accepted, and all three are in the audit log. A reset asked
while no gateway is running is withdrawn and never acted on.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.core.island import Phase
from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.sim.physics import RelayFault
from gateway.south.drivers.base import Confirmation
from gateway.store.sqlite import SqliteStore

GATEWAY = Path(sys.executable).with_name("gateway")


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "fault-reset",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _ask_while_running(site: ModbusSite, *args: str) -> tuple[int, str, str]:
    """Run the command while the gateway's control loop keeps cycling (1 simulated s each)."""
    proc = await _cli(*args)
    talk = asyncio.ensure_future(proc.communicate())
    while not talk.done():
        await site.run_for(1.0, step_s=1.0)
        await asyncio.sleep(0.02)
    out, err = talk.result()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _scenario(db: Path) -> None:
    with SqliteStore(db) as store:
        site = ModbusSite(
            store, demo_site(), start=START, confirm=Confirmation(timeout_s=0.3, poll_s=0.02)
        )
        async with site:
            await site.run_for(10)
            assert site.engine.phase is Phase.GRID_CONNECTED
            home = site.home
            home.physics.relay.fail_to_open = True
            home.physics.grid.fail()
            await site.run_for(30)
            assert site.engine.phase is Phase.FAULT
            # The grid returns; the relay is closed but its contact reads open: the home side
            # is live with the charger stopped.
            home.physics.grid.restore()
            home.device("relay").lie("relay_state", "OPEN")
            await site.run_for(10)

            args = ("--store", str(db), "--by", "installer Ana", "--wait", "30")
            rc, out, err = await _ask_while_running(site, *args)
            assert rc == 1, (out, err)
            assert "fault reset refused:" in out
            assert "the relay reads open but the home side is live" in out
            assert "Traceback" not in out + err
            assert site.engine.phase is Phase.FAULT

            # The contact tells the truth again, but the relay still reports its own fault
            # (it failed to open): that persists too.
            home.device("relay").heal()
            home.physics.relay.fail_to_open = False
            await site.run_for(10)
            rc, out, err = await _ask_while_running(site, *args)
            assert rc == 1, (out, err)
            assert "the relay reads neither open nor closed (moving, or faulted)" in out
            # The installer clears the fault at the relay.
            home.physics.relay.faults.discard(RelayFault.FAIL_TO_OPEN)
            await site.run_for(10)
            rc, out, err = await _ask_while_running(site, *args)
            assert rc == 0, (out, err)
            assert "fault reset accepted: relay read back closed" in out
            assert site.engine.phase is not Phase.FAULT
            await site.run_for(10)
            assert site.engine.phase is Phase.GRID_CONNECTED
            assert home.violations == []

            resets = [r for r in store.audit() if r.point == "fault_reset"]
            assert [(r.value, r.outcome.split(":")[0], r.correlation_id) for r in resets] == [
                ("installer Ana", "refused", "request-1"),
                ("installer Ana", "refused", "request-2"),
                ("installer Ana", "accepted", "request-3"),
            ]
            assert "welded" in resets[0].outcome
            assert "fault: relay: command" in resets[2].reason  # which fault it cleared
            statuses = [store.request(i) for i in (1, 2, 3)]
            assert [(r.status, r.by) for r in statuses if r is not None] == [
                ("refused", "installer Ana"),
                ("refused", "installer Ana"),
                ("accepted", "installer Ana"),
            ]


def test_a_reset_is_refused_while_the_relay_lies_and_accepted_once_it_is_healed(
    tmp_path: Path,
) -> None:
    asyncio.run(_scenario(tmp_path / "gateway.db"))


async def _nobody_home(db: Path) -> None:
    with SqliteStore(db) as store:
        site = ModbusSite(
            store, demo_site(), start=START, confirm=Confirmation(timeout_s=0.3, poll_s=0.02)
        )
        async with site:
            site.home.physics.relay.fail_to_open = True
            site.home.physics.grid.fail()
            await site.run_for(30)
            assert site.engine.phase is Phase.FAULT
            site.home.physics.relay.fail_to_open = False
            site.home.physics.grid.restore()
            # The gateway's loop is not cycling while the command waits: no answer.
            proc = await _cli("--store", str(db), "--wait", "1")
            out, err = await proc.communicate()
            assert proc.returncode == 2, (out, err)
            assert b"no gateway answered within 1 s" in err
            assert b"withdrawn" in err
            # When the loop runs again, the withdrawn request is not acted on.
            await site.run_for(30)
            assert site.engine.phase is Phase.FAULT
            r = store.request(1)
            assert r is not None
            assert r.status == "withdrawn"
            assert not [a for a in store.audit() if a.point == "fault_reset"]


def test_a_reset_no_gateway_answered_is_withdrawn_and_never_acted_on(tmp_path: Path) -> None:
    asyncio.run(_nobody_home(tmp_path / "gateway.db"))


def test_no_store_no_traceback(tmp_path: Path) -> None:
    async def go() -> tuple[int | None, bytes, bytes]:
        proc = await _cli("--store", str(tmp_path / "missing.db"))
        out, err = await proc.communicate()
        return proc.returncode, out, err

    rc, out, err = asyncio.run(go())
    assert rc == 2
    assert b"no gateway store at" in err
    assert b"Traceback" not in out + err
    assert not (tmp_path / "missing.db").exists()  # never created by the command
