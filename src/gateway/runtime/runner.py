"""The gateway's control loop over real devices: observe, decide, persist, act, confirm.

One cycle reads a telemetry snapshot from the south side, hands it to the engine, stores the
engine's write-ahead records, then carries out its device commands one at a time, feeding each
confirmation (or failure) straight back, so a multi-step sequence such as "relay open, confirmed,
then form" runs within one cycle when the devices are quick and across cycles when they are not.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from gateway.core.engine import Engine
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    DerLimit,
    Input,
    Note,
    Observed,
    RelayCommand,
)
from gateway.runtime.south import South
from gateway.runtime.wiring import persist
from gateway.south.device import WriteRecord
from gateway.store.api import AuditEntry, Store

log = logging.getLogger(__name__)

Listener = Callable[[Action], None]


def audit_to(store: Store) -> Callable[[WriteRecord], None]:
    """The drivers' audit sink, backed by the store's append-only audit table."""

    def sink(r: WriteRecord) -> None:
        # Field by field: dataclasses.asdict deep-copies, a third of a verified write's overhead.
        entry = AuditEntry(r.at, r.device, r.point, r.value, r.reason, r.outcome, r.correlation_id)
        store.append_audit(entry)

    return sink


def _device(cmd: RelayCommand | ChargerCommand | DerLimit) -> str:
    match cmd:
        case RelayCommand():
            return "relay"
        case ChargerCommand():
            return "charger"
        case DerLimit():
            return f"der:{cmd.der_id}"


class Runner:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        south: South,
        *,
        now: Callable[[], float],
        listener: Listener | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.south = south
        self.now = now
        self.listener = listener
        self.last_cycle: float | None = None  # loop time of the last completed cycle
        self.last_observed: Observed | None = None  # for the north side's telemetry
        self.cycles = 0
        # North adapters feed events from their own tasks; one input (and the device steps it
        # causes) at a time keeps a multi-step sequence from interleaving with another's.
        self._lock = asyncio.Lock()

    async def feed(self, first: Input) -> None:
        async with self._lock:
            await self._feed(first)

    async def _feed(self, first: Input) -> None:
        queue: deque[Input] = deque([first])
        while queue:
            actions = self.engine.handle(queue.popleft())
            persist(self.store, actions)  # write-ahead: stored before anything is acted on
            commands: list[RelayCommand | ChargerCommand | DerLimit] = []
            for a in actions:
                if self.listener is not None:
                    self.listener(a)
                match a:
                    case RelayCommand() | ChargerCommand() | DerLimit():
                        commands.append(a)
                    case Alarm():
                        log.warning("%s: %s", a.code, a.message)
                    case Note():
                        log.info("%s", a.message)
                    case _:
                        pass  # Persist is done; NorthReports wait in the outbox for the north side
            # One batch holds at most one command per device, and the engine sequences
            # dependent steps by waiting for confirmations (the relay opens only after the
            # charger's stop is read back), so a batch's devices are written concurrently:
            # "stop the charger" and "PV to 0 W" no longer wait for each other.
            if len({_device(c) for c in commands}) == len(commands) > 1:
                queue.extend(await asyncio.gather(*(self.south.execute(c) for c in commands)))
            else:
                for c in commands:
                    queue.append(await self.south.execute(c))

    async def cycle(self) -> None:
        observed = await self.south.observe()
        self.last_observed = observed
        await self.feed(observed)
        self.last_cycle = asyncio.get_running_loop().time()
        self.cycles += 1

    def healthy(self, max_age_s: float) -> bool:
        """True while cycles keep completing; the watchdog keep-alive stops when this is false,
        so a hung loop lets every device fall back to its own safe state."""
        if self.last_cycle is None:
            return False
        return asyncio.get_running_loop().time() - self.last_cycle <= max_age_s

    async def run(self, period_s: float, stop: asyncio.Event) -> None:
        keep = asyncio.create_task(self.south.keepalive(lambda: self.healthy(3 * period_s), stop))
        try:
            while not stop.is_set():
                await self.cycle()
                try:
                    await asyncio.wait_for(stop.wait(), period_s)
                except TimeoutError:
                    continue
        finally:
            stop.set()
            await keep
