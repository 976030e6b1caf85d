"""A relay that reports a fault fails its command at once, with the fault named, instead of
after the confirmation timeout (simulated home over Modbus TCP, the reference collar map)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.core.island import RelayPosition
from gateway.core.messages import RelayCommand, WriteConfirmed, WriteFailed
from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.sim.physics import RelayFault
from gateway.south.drivers.base import Confirmation
from gateway.store.sqlite import SqliteStore

TIMEOUT_S = 3.0


def open_a_failing_relay(tmp_path: Path, *, lie: str | None = None) -> tuple[WriteFailed, float]:
    """Command OPEN on a relay whose contacts fail to open (FAIL_TO_OPEN after its 0.2 s
    travel); ``lie``: what its state register reads instead of FAULT."""

    async def body() -> tuple[WriteFailed, float]:
        with SqliteStore(tmp_path / "gateway.db") as store:
            confirm = Confirmation(timeout_s=TIMEOUT_S, poll_s=0.02)
            async with ModbusSite(store, demo_site(), start=START, confirm=confirm) as site:
                relay = site.south.relay
                assert relay is not None
                site.home.physics.relay.fail_to_open = True
                if lie is not None:
                    site.home.device("relay").lie("relay_state", lie)
                loop = asyncio.get_running_loop()
                began = loop.time()
                done = await relay.execute(RelayCommand("r1", RelayPosition.OPEN, "test"))
                took = loop.time() - began
                assert isinstance(done, WriteFailed), done
                audit = [r.outcome for r in store.audit() if r.correlation_id == "r1"]
                assert audit[-1] == "failed: " + done.error.split("relay_state: ", 1)[1]
                return done, took

    return asyncio.run(body())


def test_a_relay_whose_state_reads_fault_fails_at_once_with_the_fault_named(
    tmp_path: Path,
) -> None:
    failed, took = open_a_failing_relay(tmp_path)
    assert took < 1.0, f"took {took:.2f} s: waited for the timeout"
    assert "the relay reports a fault (relay_state reads fault: relay_faults FAIL_TO_OPEN)" in (
        failed.error
    )


def test_fault_bits_fail_the_command_at_once_even_when_the_state_does_not_say_fault(
    tmp_path: Path,
) -> None:
    failed, took = open_a_failing_relay(tmp_path, lie="MOVING")
    assert took < 1.0, f"took {took:.2f} s: waited for the timeout"
    assert failed.error.endswith("the relay reports a fault: relay_faults FAIL_TO_OPEN")


def test_a_watchdog_flag_is_not_a_relay_fault(tmp_path: Path) -> None:
    """WATCHDOG_EXPIRED says the gateway was quiet, not that the relay failed: the reference
    profile ignores it (and the next heartbeat clears it), so the open goes ahead."""

    async def body() -> WriteConfirmed | WriteFailed:
        with SqliteStore(tmp_path / "gateway.db") as store:
            async with ModbusSite(store, demo_site(), start=START) as site:
                relay = site.south.relay
                assert relay is not None
                site.home.physics.relay.faults.add(RelayFault.WATCHDOG_EXPIRED)
                return await relay.execute(RelayCommand("r1", RelayPosition.OPEN, "test"))

    assert isinstance(asyncio.run(body()), WriteConfirmed)
