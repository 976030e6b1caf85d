"""The gateway's control loop over real devices: observe, decide, persist, act, confirm.

One cycle reads a telemetry snapshot from the south side, hands it to the engine, stores the
engine's write-ahead records, then carries out its device commands one at a time, feeding each
confirmation (or failure) straight back, so a multi-step sequence such as "relay open, confirmed,
then form" runs within one cycle when the devices are quick and across cycles when they are not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from gateway.core import ratings
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import ChargerMode, Phase
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    DerLimit,
    DerRated,
    Direction,
    Input,
    Note,
    Observed,
    RelayCommand,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.ports import Jobs, Ratings, SitePort, Stop
from gateway.core.schedule import EventRecord
from gateway.core.site import SiteConfig
from gateway.core.units import MRID, Timestamp
from gateway.runtime.requests import answer_requests
from gateway.runtime.south import South
from gateway.runtime.supervise import supervise
from gateway.runtime.wiring import persist
from gateway.south.device import WriteRecord
from gateway.store.api import AuditEntry, Store

log = logging.getLogger(__name__)

RATINGS_EVERY_S = 600.0  # the DERs' own ratings are re-read this often (and at start)
# One feed's turn at the engine: at most this many engine steps (each with the device commands
# it sends), or this long, before the inputs waiting for their turn (the north side's events,
# the next control cycle) go first; then it carries on where it stopped. An islanding sequence
# takes about eight steps; a feed past these is device work that would starve the north side.
TURN_STEPS = 32
TURN_S = 1.0

Listener = Callable[[Action], None]


class AuditTrail:
    """The drivers' audit sink, backed by the store's append-only audit table.

    Outside a runner step each record is its own commit. While the runner carries out the
    engine's commands it *defers* them, and they are committed with the write-ahead transaction
    of the engine step that the outcome feeds (or at the end of the feed): one fsync per device
    step instead of two or three per register write. Nothing goes on the wire undocumented:
    the engine's own ``commanded`` record of each command is committed before the command is
    carried out, so a crash between the wire and the deferred commit leaves "commanded, outcome
    unknown" in the trail, which is the truth (docs/south.md).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.deferring = False
        self._pending: list[AuditEntry] = []

    def __call__(self, r: WriteRecord) -> None:
        # Field by field: dataclasses.asdict deep-copies, a third of a verified write's overhead.
        entry = AuditEntry(r.at, r.device, r.point, r.value, r.reason, r.outcome, r.correlation_id)
        if self.deferring:
            self._pending.append(entry)
        else:
            self.store.append_audit(entry)

    def flush(self) -> None:
        """Append the deferred records (call inside the transaction they should join)."""
        pending, self._pending = self._pending, []
        for entry in pending:
            self.store.append_audit(entry)

    @property
    def pending(self) -> int:
        return len(self._pending)


def audit_to(store: Store) -> AuditTrail:
    return AuditTrail(store)


def _is_command(a: Action) -> bool:
    return isinstance(a, RelayCommand | ChargerCommand | DerLimit)


def _device(cmd: RelayCommand | ChargerCommand | DerLimit) -> str:
    match cmd:
        case RelayCommand():
            return "relay"
        case ChargerCommand():
            return "charger"
        case DerLimit():
            return f"der:{cmd.der_id}"


def _said(cmd: RelayCommand | ChargerCommand) -> str:
    if isinstance(cmd, RelayCommand):
        return f"relay -> {cmd.position.value}"
    return f"charger -> {cmd.mode.value.replace('_', '-')}"


class _Turn:
    """One feed's turn at the engine: how many steps it took, and when it is over."""

    __slots__ = ("deadline", "steps")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.steps = 0

    @property
    def over(self) -> bool:
        return self.steps >= TURN_STEPS or asyncio.get_running_loop().time() >= self.deadline


TIMINGS_KEPT = 1000


@dataclass(slots=True)
class Timings:
    """How long the device reads of each cycle and each command's write took (s), since the
    last :meth:`take`; the metrics' histograms observe them."""

    # Bounded: with nobody taking them (no [api]), they must not grow for the life of the run.
    polls: deque[float] = field(default_factory=lambda: deque(maxlen=TIMINGS_KEPT))
    writes: deque[float] = field(default_factory=lambda: deque(maxlen=TIMINGS_KEPT))
    write_failures: int = 0  # commands that failed, since start

    def take(self) -> tuple[list[float], list[float]]:
        polls, writes = list(self.polls), list(self.writes)
        self.polls.clear()
        self.writes.clear()
        return polls, writes


class Runner:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        south: South,
        *,
        now: Callable[[], float],
        listener: Listener | None = None,
        trail: AuditTrail | None = None,
        ratings_every_s: float = RATINGS_EVERY_S,
    ) -> None:
        self.engine = engine
        self.ratings_every_s = ratings_every_s
        # Each DER's own ratings as last fed (DerRated), by (DER id, direction).
        self._rated: dict[tuple[str, Direction], float] = {}
        self.trail = trail
        self.store = store
        self.south = south
        self.now = now
        self.listener = listener
        self.last_cycle: float | None = None  # loop time of the last completed cycle
        self.last_observed: Observed | None = None  # for the north side's telemetry
        self.cycles = 0
        self.timings = Timings()  # for the metrics: taken (and emptied) by whoever shows them
        self._said: dict[str, str] = {}  # the last relay / charger command logged at info
        self.turns_cut = 0  # feeds whose turn ran out (TURN_STEPS, TURN_S) and let others go
        # Called with each cycle's snapshot once the engine has handled it (the north side's
        # alarm edges are seen at the cycle rate, not only at its telemetry rate).
        self.on_cycle: list[Callable[[Observed], None]] = []
        # North adapters feed events from their own tasks; one input (and the device steps it
        # causes) at a time keeps a multi-step sequence from interleaving with another's.
        self._lock = asyncio.Lock()
        self._waiting = 0  # feeds waiting for the lock
        # Device follow-ups (confirmations) of feeds whose turn ran out while others waited:
        # carried on in turns by one background task, so that no caller of feed() waits for
        # device work its input did not need (a north adapter's task, say, for a flood).
        self._backlog: deque[Input] = deque()
        self._drainer: asyncio.Task[None] | None = None

    @cached_property
    def port(self) -> SitePort:
        """This runner as the north adapters see it (typed as the port: mypy checks here that
        :class:`RunnerPort` has its shape)."""
        return RunnerPort(self)

    async def feed(self, first: Input, *more: Input) -> None:
        """Hand inputs to the engine, each with the device steps it causes. ``more`` are fed
        right after ``first`` in the same turn: no control cycle or other input comes between
        them (one ratings read is one change, not one per rating), unless the turn runs out
        (TURN_STEPS, TURN_S). Then the inputs waiting go first, and this feed's device steps
        still to come go on in the background, in turns (``_drain``), while the call carries on
        with its own inputs and returns: no input waits for more than the turns ahead of it,
        and no caller waits for device work it did not cause. Uncontended, a feed carries its
        steps on itself, so a caller alone sees them done when the call returns."""
        work: deque[Input] = deque((first, *more))
        carried: deque[Input] = deque()  # this feed's confirmations still to handle
        while True:
            await self._acquire()
            try:
                turn = _Turn(asyncio.get_running_loop().time() + TURN_S)
                while (carried or work) and not turn.over:
                    carried = await self._feed(carried or deque([work.popleft()]), turn)
                if carried and self._waiting:
                    self._hand_over(carried)
                    carried = deque()
            finally:
                self._lock.release()
            if not (carried or work):
                return
            self.turns_cut += 1
            log.debug("a feed's turn ran out after %d engine steps: others go first", turn.steps)
            await asyncio.sleep(0)  # asyncio.Lock is fair: every waiter goes before us

    async def _acquire(self) -> None:
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1

    def _hand_over(self, carried: deque[Input]) -> None:
        """Leave ``carried`` (called holding the lock) to the background task."""
        self.turns_cut += 1
        log.debug("a feed's turn ran out with others waiting: %d steps go on behind", len(carried))
        self._backlog.extend(carried)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="runner-backlog")

    async def _drain(self) -> None:
        """Carry on the handed-over device steps, a turn at a time, others going first."""
        try:
            while self._backlog:
                await asyncio.sleep(0)
                await self._acquire()
                try:
                    turn = _Turn(asyncio.get_running_loop().time() + TURN_S)
                    self._backlog = await self._feed(self._backlog, turn)
                finally:
                    self._lock.release()
        except Exception:
            # Nobody awaits this task: say so. The commands whose confirmations are lost
            # time out in the engine (step_timeout_s) and are sent again.
            log.exception("carrying on a feed's device steps failed")

    async def _feed(self, queue: deque[Input], turn: _Turn) -> deque[Input]:
        try:
            return await self._steps(queue, turn)
        finally:
            if self.trail is not None and self.trail.pending:
                with self.store.transaction():
                    self.trail.flush()

    def _persist(self, actions: list[Action]) -> None:
        """Write-ahead: stored before anything is acted on, with the audit records of the
        device steps that led here (one commit)."""
        if self.trail is None or not self.trail.pending:
            persist(self.store, actions)
            return
        with self.store.transaction():
            self.trail.flush()
            persist(self.store, actions)

    async def _execute(
        self, commands: list[RelayCommand | ChargerCommand | DerLimit]
    ) -> list[Input]:
        if self.trail is not None:
            self.trail.deferring = True
        try:
            # One batch holds at most one command per device, and the engine sequences
            # dependent steps by waiting for confirmations (the relay opens only after the
            # charger's stop is read back), so a batch's devices are written concurrently:
            # "stop the charger" and "PV to 0 W" no longer wait for each other.
            if len({_device(c) for c in commands}) == len(commands) > 1:
                return list(await asyncio.gather(*(self._timed(c) for c in commands)))
            return [await self._timed(c) for c in commands]
        finally:
            if self.trail is not None:
                self.trail.deferring = False

    async def _timed(
        self, cmd: RelayCommand | ChargerCommand | DerLimit
    ) -> WriteConfirmed | WriteFailed:
        t0 = time.perf_counter()
        result = await self.south.execute(cmd)
        self.timings.writes.append(time.perf_counter() - t0)
        if isinstance(result, WriteFailed):
            self.timings.write_failures += 1
        return result

    async def _steps(self, queue: deque[Input], turn: _Turn) -> deque[Input]:
        """Run the engine on ``queue`` and on the confirmations its commands bring back, until
        none is left or the turn is over; what is left (confirmations of commands already
        carried out) is returned, for the next turn."""
        # A step that sends nothing (a confirmation while the engine waits for the other device
        # of a batch) is stored with the next step instead of paying for a commit of its own,
        # and acted on (listener, log) only once stored, as every step is. Its records are still
        # durable before anything further goes on the wire, and the feed ends with a commit. On
        # the islanding path: one fsync fewer between "charger stopped, PV at 0 W" and the
        # relay's open.
        waiting: list[Action] = []
        try:
            while queue and not turn.over:
                actions = self.engine.handle(queue.popleft())
                turn.steps += 1
                waiting += actions
                if queue and not any(_is_command(a) for a in actions):
                    continue
                stored, waiting = waiting, []
                self._persist(stored)
                commands = self._act(stored)
                if commands:
                    queue.extend(await self._execute(commands))
        finally:
            if waiting:
                self._persist(waiting)
                self._act(waiting)
        return queue

    def _act(self, actions: list[Action]) -> list[RelayCommand | ChargerCommand | DerLimit]:
        """Hand each stored action to the listener and the log; the device commands, in order."""
        commands: list[RelayCommand | ChargerCommand | DerLimit] = []
        for a in actions:
            if self.listener is not None:
                self.listener(a)
            match a:
                case RelayCommand() | ChargerCommand():
                    self._say(a)
                    commands.append(a)
                case DerLimit():
                    # A ramp writes these once a second: a person follows the phase and the
                    # safety commands; the limits are in the audit log (and at debug).
                    log.debug("%s", a, extra={"device": _device(a)})
                    commands.append(a)
                case Alarm():
                    log.warning("%s: %s", a.code, a.message)
                case Note():
                    log.info("%s", a.message)
                case _:
                    pass  # Persist is done; NorthReports wait in the outbox for the north side
        return commands

    def _say(self, cmd: RelayCommand | ChargerCommand) -> None:
        """One line at info when the relay or the charger's mode changes; a new setpoint in
        the same mode (a ramp) only at debug."""
        device = _device(cmd)
        said = _said(cmd)
        level = logging.DEBUG if said == self._said.get(device) else logging.INFO
        self._said[device] = said
        following = isinstance(cmd, ChargerCommand) and cmd.mode is ChargerMode.GRID_FOLLOWING
        setpoint = (
            f" {cmd.setpoint_w:.0f} W" if isinstance(cmd, ChargerCommand) and following else ""
        )
        log.log(level, "%s%s: %s", said, setpoint, cmd.reason, extra={"device": device})

    async def cycle(self) -> None:
        t0 = time.perf_counter()
        observed = await self.south.observe()
        self.timings.polls.append(time.perf_counter() - t0)
        self.last_observed = observed
        await self.feed(observed)
        await answer_requests(self.store, self.engine, self.feed, self.now)  # gateway fault-reset
        for hook in self.on_cycle:
            hook(observed)
        self.last_cycle = asyncio.get_running_loop().time()
        self.cycles += 1

    async def read_ratings(self) -> None:
        """Read the DERs' own ratings and feed each that changed since the last read as one
        ``DerRated`` (the engine keeps min(configured, device's): ``core.ratings``)."""
        read = await self.south.read_ratings()
        fed: list[Input] = []
        for (der_id, direction), rated_w in ratings.changed(self._rated, read).items():
            self._rated[(der_id, direction)] = rated_w
            log.info("%s: the device reports a %s rating of %g W", der_id, direction, rated_w)
            fed.append(DerRated(self.now(), der_id, rated_w, direction))
        if fed:
            # All together: the north side sees the ratings of one read at once (one
            # DERCapability/DERSettings pair, not one per rating).
            await self.feed(*fed)

    async def _ratings(self, stop: asyncio.Event) -> None:
        """The ratings at start, then every ``ratings_every_s``, off the control loop's path
        (its commands go ahead of these reads on a shared link: ``transport.urgent``)."""
        while not stop.is_set():
            await self.read_ratings()
            try:
                await asyncio.wait_for(stop.wait(), self.ratings_every_s)
            except TimeoutError:
                continue

    def healthy(self, max_age_s: float) -> bool:
        """True while cycles keep completing; the watchdog keep-alive stops when this is false,
        so a hung loop lets every device fall back to its own safe state."""
        if self.last_cycle is None:
            return False
        return asyncio.get_running_loop().time() - self.last_cycle <= max_age_s

    async def run(self, period_s: float, stop: asyncio.Event) -> None:
        # The keep-alive and the ratings reads end with this loop (its own event), not with
        # the gateway: a crashed loop is restarted by the supervisor, and until then no
        # keep-alive goes out, so each device's watchdog takes it to its safe state.
        done = asyncio.Event()
        keep = asyncio.create_task(self.south.keepalive(lambda: self.healthy(3 * period_s), done))
        rated = asyncio.create_task(self._ratings(done))
        try:
            while not stop.is_set():
                await self.cycle()
                try:
                    await asyncio.wait_for(stop.wait(), period_s)
                except TimeoutError:
                    continue
        finally:
            done.set()
            drainer = self._drainer
            if drainer is not None and not drainer.done():
                drainer.cancel()
            await asyncio.gather(
                keep, rated, *([drainer] if drainer else []), return_exceptions=True
            )


class RunnerPort:
    """A :class:`Runner` as a :class:`~gateway.core.ports.SitePort`: the one interface every
    north adapter receives. A view, no state of its own: every call reads the runner (and its
    engine) at that moment, so a test that wraps ``runner.feed`` still sees what is fed."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def feed(self, first: Input, *more: Input) -> None:
        await self._runner.feed(first, *more)

    def now(self) -> Timestamp:
        return self._runner.now()

    @property
    def config(self) -> SiteConfig:
        return self._runner.engine.config

    def observed(self) -> Observed | None:
        return self._runner.last_observed

    def phase(self) -> Phase | None:
        engine = self._runner.engine
        return None if engine.island is None else engine.phase

    def controls(self) -> ControlSet:
        return self._runner.engine.resolved.controls

    def ratings(self) -> Ratings:
        engine = self._runner.engine
        return engine.der_ratings, engine.der_charge_ratings

    def scheduled(self, mrid: MRID) -> EventRecord | None:
        return self._runner.engine.schedule.get(mrid)

    @property
    def cycles(self) -> int:
        return self._runner.cycles

    def on_cycle(self, hook: Callable[[Observed], None]) -> None:
        self._runner.on_cycle.append(hook)

    def assess(self, controls: ControlSet, now: Timestamp) -> list[str]:
        return self._runner.engine.assess(controls, now)

    async def run(self, stop: Stop, jobs: Jobs, *, period_s: float) -> None:
        # The port names the stop signal structurally (core has no asyncio); the control loop
        # and the supervisor need the real event.
        if not isinstance(stop, asyncio.Event):
            raise TypeError(f"stop must be an asyncio.Event, not {type(stop).__name__}")
        loop = {"control-loop": lambda: self._runner.run(period_s, stop)}
        await supervise(stop, {**loop, **jobs})
