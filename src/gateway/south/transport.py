"""One owned Modbus connection per physical endpoint; the only module that touches pymodbus.

Everything above this module speaks in tables, addresses and lists of 16-bit words; everything
that can go wrong on the wire comes out as a :class:`~gateway.south.errors.DeviceError` naming
the device, the point and why. The rules, each one a lesson from evcc or from measuring
pymodbus 3.16 (``shared/domain/devices.md`` §1, §5):

* **One connection per endpoint, shared by every unit id behind it.** Many devices accept only
  one Modbus TCP client, and an RS-485 bus has exactly one master. :class:`Transports` hands out
  one :class:`Endpoint` per URL.
* **One request at a time.** A lock serialises requests on an endpoint: an RTU bus allows one
  outstanding request and many TCP devices misbehave when requests are pipelined. The profile's
  ``Pacing.delay_s`` is slept inside the lock before every request.
* **Commands go first.** Requests made inside :func:`urgent` (the runner carrying out the
  engine's commands) are served before queued ordinary ones (the control loop's telemetry
  reads), FIFO within each class: an islanding step waits for at most the one request already
  on the wire, not for a whole telemetry sweep.
* **Nothing is ever resent.** pymodbus runs with ``retries=0``: a resent "start discharging"
  or relay command is not harmless. Retrying is the caller's decision, with read-back.
* **A timeout or transport error drops the connection.** Otherwise a late answer could be
  matched to the next request (RTU frames carry no transaction id). The next call reconnects,
  but only after a backoff (exponential, full jitter); inside the backoff window calls fail fast
  with :class:`~gateway.south.errors.DeviceUnreachable` instead of sleeping.
* **A Modbus exception response is an answer**, not a link failure:
  :class:`~gateway.south.errors.DeviceRejected`, and the connection stays up.

pymodbus's own timeout is only a backstop: ours (per request, from the caller's ``Pacing``)
always fires first, so pymodbus never reaches its error path, which appends a dump of the last
frames to its log record. We leave logging configuration to the application and never call
``pymodbus_apply_logging_config`` (it sets the ``pymodbus`` logger to DEBUG).

``rtu+tcp://`` (RTU frames over a TCP socket, as serial-to-Ethernet gateways speak it) uses
pymodbus's TCP client with the RTU framer, not pyserial's ``socket://`` URL: pyserial's socket
handler connects with a blocking ``socket.create_connection`` (up to 5 s) and sleeps 0.3 s in
``close()``, both on the event loop. pyserial is used for real serial ports (``rtu://``) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import random
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum, unique
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.south.errors import DeviceError, DeviceRejected, DeviceTimeout, DeviceUnreachable
from gateway.south.registers import Pacing, Table

_log = logging.getLogger(__name__)

# pymodbus's own response/connect timeout. Ours fires first; this only stops a request from
# hanging forever should ours ever be bypassed. One client serves callers with different pacing,
# so it cannot be any one caller's timeout.
_LIBRARY_TIMEOUT_S: Final = 60.0

# Modbus Application Protocol v1.1b3 §6: the most one request may carry.
_MAX_READ = {Table.HOLDING: 125, Table.INPUT: 125, Table.COIL: 2000, Table.DISCRETE: 2000}
_MAX_WRITE = {Table.HOLDING: 123, Table.COIL: 1968}
_FC_READ = {Table.HOLDING: 3, Table.INPUT: 4, Table.COIL: 1, Table.DISCRETE: 2}

# What opening a connection can raise past pymodbus: it catches OSError (pyserial's
# SerialException is one) but not termios.error, raised when a port rejects its settings.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (ModbusException, OSError)
if sys.platform != "win32":
    import termios

    _CONNECT_ERRORS = (*_CONNECT_ERRORS, termios.error)

_ANOTHER_CLIENT_HINT: Final = (
    "many devices accept only one Modbus TCP client, so another client may be holding it"
)


@unique
class Scheme(StrEnum):
    TCP = "tcp"  # Modbus TCP (MBAP framing)
    RTU_TCP = "rtu+tcp"  # RTU frames over TCP (serial-to-Ethernet gateways)
    RTU = "rtu"  # RTU on a local serial port

    @property
    def rtu_framing(self) -> bool:
        return self is not Scheme.TCP


_SERIAL_DEFAULTS: Final = {"baudrate": "9600", "parity": "N", "stopbits": "1", "bytesize": "8"}


_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("modbus_urgent", default=False)


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Requests made in this context (and in tasks it starts) jump the endpoint's queue."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class _Gate:
    """A mutex with two FIFO queues, urgent before ordinary, and reservations: while an
    endpoint is reserved (a command's steps are under way on it), ordinary requests wait even
    between the command's requests, so a telemetry read cannot slip into every gap."""

    def __init__(self) -> None:
        self._busy = False
        self._reserved = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def held(self, *, first: bool) -> AsyncIterator[None]:
        await self.acquire(first)
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        self._busy = False
        self._wake()

    @contextlib.contextmanager
    def reserved(self) -> Iterator[None]:
        self._reserved += 1
        try:
            yield
        finally:
            self._reserved -= 1
            self._wake()

    def _free_for(self, first: bool) -> bool:
        if self._busy:
            return False
        return not self._urgent if first else not (self._urgent or self._reserved)

    async def acquire(self, first: bool) -> None:
        """Wait for the gate (``first``: in the urgent queue); pair with :meth:`release`.
        The request path calls these directly: the generator behind ``held`` costs more than
        the gate itself, twice per verified write."""
        if self._free_for(first) and not (self._ordinary and not first):
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if first else self._ordinary
        queue.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._busy = False  # handed over just as we were cancelled: pass it on
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise

    def _wake(self) -> None:
        if self._busy:
            return
        queues = (self._urgent,) if self._reserved else (self._urgent, self._ordinary)
        for queue in queues:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    self._busy = True  # ownership passes to the waiter
                    fut.set_result(None)
                    return


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A parsed, validated endpoint URL. Build it with :meth:`parse` (or the constructor, which
    parses ``url`` too); an invalid URL raises ``ValueError`` saying what is wrong.

    * ``tcp://host[:port]`` (port 502 by default)
    * ``rtu+tcp://host:port``
    * ``rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1&bytesize=8`` (those are the
      defaults; parity is N, E or O)
    """

    url: str
    reconnect_min_s: float = 0.1
    # A relay or charger out of reach for long is blind time in an outage: retry at least this
    # often (a connection attempt to a dead device costs one SYN). It was 30 s; the islanding
    # step, which retries a command failed on the link, lasts 10 s.
    reconnect_max_s: float = 5.0
    scheme: Scheme = field(init=False)
    host: str = field(init=False)  # the serial device path for ``rtu``
    port: int = field(init=False)  # 0 for ``rtu``
    baudrate: int = field(init=False)
    parity: str = field(init=False)
    stopbits: int = field(init=False)
    bytesize: int = field(init=False)

    def __post_init__(self) -> None:
        if not (
            math.isfinite(self.reconnect_min_s)
            and math.isfinite(self.reconnect_max_s)
            and 0 < self.reconnect_min_s <= self.reconnect_max_s
        ):
            raise ValueError(
                f"endpoint {self.url!r}: need 0 < reconnect_min_s <= reconnect_max_s, got "
                f"{self.reconnect_min_s!r} and {self.reconnect_max_s!r}"
            )
        for name, value in _parse_url(self.url).items():
            object.__setattr__(self, name, value)

    @classmethod
    def parse(
        cls, url: str, *, reconnect_min_s: float = 0.1, reconnect_max_s: float = 5.0
    ) -> EndpointConfig:
        return cls(url, reconnect_min_s=reconnect_min_s, reconnect_max_s=reconnect_max_s)

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies the physical endpoint: one socket address or one serial device."""
        if self.scheme is Scheme.RTU:
            return ("serial", self.host, 0)
        return ("tcp", self.host.lower(), self.port)


def _settings(config: EndpointConfig) -> tuple[object, ...]:
    """Everything but the URL's spelling."""
    return (
        config.key,
        config.scheme,
        config.baudrate,
        config.parity,
        config.stopbits,
        config.bytesize,
        config.reconnect_min_s,
        config.reconnect_max_s,
    )


def parse_endpoint(url: str) -> EndpointConfig:
    """``EndpointConfig.parse`` with the default reconnect settings."""
    return EndpointConfig.parse(url)


def _parse_url(url: str) -> dict[str, Any]:
    def bad(why: str) -> ValueError:
        return ValueError(f"endpoint URL {url!r}: {why}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a non-numeric or out-of-range port
        raise bad(str(exc)) from exc
    schemes = ", ".join(f"{s.value}://" for s in Scheme)
    try:
        scheme = Scheme(parts.scheme.lower())
    except ValueError:
        raise bad(f"unknown scheme {parts.scheme!r}; expected one of {schemes}") from None
    if parts.fragment or parts.username or parts.password:
        raise bad("user info and fragments are not allowed")
    serial = dict(_SERIAL_DEFAULTS)
    if scheme is Scheme.RTU:
        if parts.netloc:
            raise bad("a serial URL has no host: write rtu:///dev/ttyUSB0 (three slashes)")
        if not parts.path or parts.path == "/":
            raise bad("no serial device path, e.g. rtu:///dev/ttyUSB0")
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if key not in serial:
                raise bad(f"unknown serial option {key!r}; expected {', '.join(serial)}")
            serial[key] = value
        return {
            "scheme": scheme,
            "host": parts.path,
            "port": 0,
            **_parse_serial(serial, bad),
        }
    if parts.path not in ("", "/") or parts.query:
        raise bad("a TCP endpoint has no path or query; write tcp://host:port")
    if not parts.hostname:
        raise bad("no host")
    if port is None:
        if scheme is Scheme.RTU_TCP:
            raise bad("rtu+tcp:// needs an explicit port (there is no standard one)")
        port = 502
    if port == 0:
        raise bad("port 0 is not a port one can connect to")
    return {"scheme": scheme, "host": parts.hostname, "port": port, **_parse_serial(serial, bad)}


def _parse_serial(
    options: dict[str, str], bad: Callable[[str], ValueError]
) -> dict[str, int | str]:
    try:
        baudrate = int(options["baudrate"])
        stopbits = int(options["stopbits"])
        bytesize = int(options["bytesize"])
    except ValueError as exc:
        raise bad(f"serial options must be integers: {exc}") from None
    parity = options["parity"].upper()
    if baudrate <= 0:
        raise bad(f"baudrate must be positive, got {baudrate}")
    if parity not in ("N", "E", "O"):
        raise bad(f"parity must be N, E or O, got {options['parity']!r}")
    if stopbits not in (1, 2):
        raise bad(f"stopbits must be 1 or 2, got {stopbits}")
    if bytesize not in (7, 8):
        raise bad(f"bytesize must be 7 or 8, got {bytesize}")
    return {"baudrate": baudrate, "parity": parity, "stopbits": stopbits, "bytesize": bytesize}


@dataclass(slots=True)
class Backoff:
    """Reconnect delays: the n-th consecutive failure waits ``uniform(min_s, ceiling(n))`` with
    ``ceiling(n) = min(max_s, min_s * 2**n)`` -- exponential, capped, and fully jittered above the
    floor so that gateways restarted together do not reconnect in step."""

    min_s: float
    max_s: float
    rng: random.Random
    failures: int = 0

    def ceiling(self, failures: int) -> float:
        return min(self.max_s, self.min_s * 2.0 ** min(failures, 64))

    def next_delay(self) -> float:
        self.failures += 1
        return self.rng.uniform(self.min_s, self.ceiling(self.failures))

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class EndpointStats:
    """Counters for metrics. ``errors`` counts every failed request, including rejections."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    connects: int = 0  # connections established
    reconnects: int = 0  # connections established after the first one
    fast_fails: int = 0  # requests refused inside the backoff window


@dataclass(slots=True)
class _Link:
    """One live pymodbus client and the future that resolves when the peer drops it.

    pymodbus never fails a pending request when the peer drops the connection, so ``lost``
    cancels the task of the request in flight (``waiter``; the gate lets one at a time), as
    its deadline does (``expire``), and ``stopped`` says which, to tell either from the
    caller's own cancellation. One callback per connection, not one added and removed per
    request.
    """

    client: Any  # AsyncModbusTcpClient | AsyncModbusSerialClient
    lost: asyncio.Future[None]
    waiter: asyncio.Task[Any] | None = None
    stopped: Literal["lost", "deadline"] | None = None

    def __post_init__(self) -> None:
        self.lost.add_done_callback(lambda _: self._stop("lost"))

    def begin(self, task: asyncio.Task[Any]) -> None:
        """``task``'s request is now the one in flight."""
        self.waiter, self.stopped = task, None

    def expire(self) -> None:
        self._stop("deadline")

    def _stop(self, why: Literal["lost", "deadline"]) -> None:
        # One cancellation per request: a drop after the deadline is seen below it.
        if self.waiter is not None and self.stopped is None:
            self.stopped = why
            self.waiter.cancel()


class Endpoint:
    """One owned connection to one physical endpoint, shared by every device (unit id) behind
    it. Connects lazily on the first request."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stats = EndpointStats()
        self._clock = clock
        self._backoff = Backoff(
            config.reconnect_min_s,
            config.reconnect_max_s,
            rng or random.Random(),  # noqa: S311 -- jitter, not crypto
        )
        self._lock = _Gate()
        self._link: _Link | None = None
        self._next_attempt_at: float | None = None
        self._last_failure = ""
        self._closed = False

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def connected(self) -> bool:
        return self._link is not None and bool(self._link.client.connected)

    @property
    def next_attempt_at(self) -> float | None:
        """When (on the injected clock) the next connection attempt is allowed, if in backoff."""
        return self._next_attempt_at

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"Endpoint({self.url!r}, {state})"

    # -- public requests ---------------------------------------------------------------------

    async def read(
        self,
        device_id: int,
        table: Table,
        address: int,
        count: int,
        *,
        pacing: Pacing,
        device: str,
        point: str,
    ) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) from ``table`` (FC03/FC04/FC01/FC02)."""
        self._check_unit(device_id)
        _check_address(address, count)
        if not 1 <= count <= _MAX_READ[table]:
            raise ValueError(f"{device}: {point}: read count {count} not in 1..{_MAX_READ[table]}")
        what = f"FC{function_code(table):02d} read of {count} at {address}"

        def call(client: Any) -> Any:
            kw = {"count": count, "device_id": device_id}
            if table is Table.HOLDING:
                return client.read_holding_registers(address, **kw)
            if table is Table.INPUT:
                return client.read_input_registers(address, **kw)
            if table is Table.COIL:
                return client.read_coils(address, **kw)
            return client.read_discrete_inputs(address, **kw)

        response = await self._request(call, pacing=pacing, device=device, point=point, what=what)
        values = list(response.bits)[:count] if table.bits else list(response.registers)
        if len(values) != count:
            self.stats.errors += 1
            raise DeviceError(device, point, f"{what}: the device answered {len(values)} values")
        return [int(v) for v in values]

    async def write(
        self,
        device_id: int,
        table: Table,
        address: int,
        values: Sequence[int],
        *,
        pacing: Pacing,
        device: str,
        point: str,
        single: bool | None = None,
    ) -> None:
        """Write holding registers (FC06 for one unless ``single=False``, else FC16) or coils
        (FC05 / FC15). ``single=True`` insists on the single-write function code."""
        if not table.writable:
            raise ValueError(f"{device}: {point}: the {table.value} table is read-only")
        self._check_unit(device_id)
        words = list(values)
        _check_address(address, len(words))
        limit = _MAX_WRITE[table]
        if not 1 <= len(words) <= limit:
            raise ValueError(f"{device}: {point}: write of {len(words)} values, need 1..{limit}")
        top = 1 if table is Table.COIL else 0xFFFF
        if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top for v in words):
            raise ValueError(f"{device}: {point}: values {words!r} not all integers in 0..{top}")
        if single and len(words) != 1:
            raise ValueError(f"{device}: {point}: single=True with {len(words)} values")
        fc = function_code(table, write=len(words), single=single)
        what = f"FC{fc:02d} write of {words} at {address}"

        def call(client: Any) -> Any:
            if fc == 5:
                return client.write_coil(address, bool(words[0]), device_id=device_id)
            if fc == 15:
                bits = [bool(v) for v in words]
                return client.write_coils(address, bits, device_id=device_id)
            if fc == 6:
                return client.write_register(address, words[0], device_id=device_id)
            return client.write_registers(address, words, device_id=device_id)

        await self._request(call, pacing=pacing, device=device, point=point, what=what)

    def reserved(self) -> contextlib.AbstractContextManager[None]:
        """Hold off ordinary requests for the duration (a command's steps; see :func:`urgent`)."""
        return self._lock.reserved()

    async def close(self) -> None:
        """Close the connection; later requests raise ``DeviceUnreachable``. In-flight requests
        end at once with ``DeviceUnreachable`` rather than waiting for their timeout."""
        self._closed = True
        self._drop()

    # -- internals ---------------------------------------------------------------------------

    def _check_unit(self, device_id: int) -> None:
        # RTU addresses 1..247 (0 is broadcast, which never answers); Modbus TCP carries 0..255.
        low, high = (1, 247) if self.config.scheme.rtu_framing else (0, 255)
        if not low <= device_id <= high:
            raise ValueError(f"{self.url}: unit id {device_id} not in {low}..{high}")

    async def _request(
        self,
        call: Callable[[Any], Any],
        *,
        pacing: Pacing,
        device: str,
        point: str,
        what: str,
    ) -> Any:
        await self._lock.acquire(_URGENT.get())
        try:
            self.stats.requests += 1
            try:
                link = await self._ensure_link(device, point, pacing)
                if pacing.delay_s > 0:
                    await asyncio.sleep(pacing.delay_s)
                response = await self._exchange(link, call, pacing, device, point, what)
            except DeviceError as exc:
                self.stats.errors += 1
                if isinstance(exc, DeviceTimeout):
                    self.stats.timeouts += 1
                raise
            # An answer, even a Modbus exception, proves the link works.
            self._backoff.reset()
            self._next_attempt_at = None
            if response.isError():
                self.stats.errors += 1
                self.stats.rejected += 1
                raise DeviceRejected(device, point, int(response.exception_code))
            return response
        finally:
            self._lock.release()

    async def _ensure_link(self, device: str, point: str, pacing: Pacing) -> _Link:
        if self._closed:
            raise DeviceUnreachable(device, point, f"endpoint {self.url} is closed")
        link = self._link
        if link is not None:
            if link.client.connected:
                return link
            # Dropped by the peer while idle (devices close idle connections): reconnect now,
            # without backoff, as no request has failed.
            _log.info("%s: connection dropped while idle; reconnecting", self.url)
            self._drop()
        now = self._clock()
        if self._next_attempt_at is not None and now < self._next_attempt_at:
            self.stats.fast_fails += 1
            wait = self._next_attempt_at - now
            raise DeviceUnreachable(
                device,
                point,
                f"{self.url} is in reconnect backoff after {self._backoff.failures} failure(s)"
                f" (last: {self._last_failure}); next attempt in {wait:.2f} s",
            )
        return await self._connect(device, point, pacing)

    def _new_client(self, lost: asyncio.Future[None]) -> Any:
        def on_connect(up: bool) -> None:
            if not up and not lost.done():
                lost.set_result(None)

        cfg = self.config
        # retries=0: never resend; reconnect_delay=0: we reconnect ourselves, with backoff.
        common: dict[str, Any] = {
            "name": cfg.url,
            "timeout": _LIBRARY_TIMEOUT_S,
            "retries": 0,
            "reconnect_delay": 0,
            "trace_connect": on_connect,
        }
        if cfg.scheme is Scheme.RTU:
            return AsyncModbusSerialClient(
                cfg.host,
                framer=FramerType.RTU,
                baudrate=cfg.baudrate,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                bytesize=cfg.bytesize,
                **common,
            )
        framer = FramerType.RTU if cfg.scheme is Scheme.RTU_TCP else FramerType.SOCKET
        return AsyncModbusTcpClient(cfg.host, port=cfg.port, framer=framer, **common)

    async def _connect(self, device: str, point: str, pacing: Pacing) -> _Link:
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client = self._new_client(lost)
        serial = self.config.scheme is Scheme.RTU
        target = (
            f"cannot open serial port {self.config.host}"
            if serial
            else f"cannot connect to {self.url}"
        )
        why = ""
        try:
            async with asyncio.timeout(pacing.timeout_s):
                ok = bool(await client.connect())
        except TimeoutError:
            why = f"{target}: no answer within {pacing.timeout_s:g} s"
        except _CONNECT_ERRORS as exc:  # pymodbus catches OSError itself; termios.error it does not
            why = f"{target}: {exc}"
        else:
            if not ok:  # pymodbus swallowed the OSError and logged it as a warning
                cause = (
                    "missing, busy or no permission"
                    if serial
                    else "connection refused or host unreachable"
                )
                why = f"{target}: {cause}"
        if why:
            client.close()
            raise self._failed(DeviceUnreachable, device, point, why)
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        _log.info("%s: connected", self.url)
        self._link = _Link(client, lost)
        return self._link

    async def _exchange(
        self,
        link: _Link,
        call: Callable[[Any], Any],
        pacing: Pacing,
        device: str,
        point: str,
        what: str,
    ) -> Any:
        # The request runs in the caller's own task (no extra task and asyncio.wait per
        # request: that doubled the stack's overhead over bare pymodbus). If the peer drops
        # the connection, the link cancels this task (``_Link``); clearing ``waiter`` after
        # keeps a late drop from cancelling whatever the caller awaits next.
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always awaited from a coroutine
            raise RuntimeError("Endpoint requests must run inside an asyncio task")
        if link.lost.done():  # dropped between the check for a link and now
            raise self._gone(device, point, what)
        link.begin(task)
        # The deadline is a timer that cancels this task through the link, like a drop: the
        # same as asyncio.timeout, for half its cost (twice per verified write).
        loop = task.get_loop()
        timer = loop.call_at(loop.time() + pacing.timeout_s, link.expire)
        try:
            return await call(link.client)
        except TimeoutError:
            pass  # handled below, with the peer-gone case
        except asyncio.CancelledError:
            if link.stopped is None or task.uncancel() > 0:
                # Our caller was cancelled mid-request (perhaps as well): the answer may still
                # arrive, for nobody.
                self._drop()
                raise
            if link.stopped == "lost":
                raise self._gone(device, point, what) from None
            # Past the deadline: handled below, with the peer-gone case.
        except ConnectionException:  # the peer closed before the request could be sent
            raise self._gone(device, point, what) from None
        except ModbusIOException as exc:
            # pymodbus's own (backstop) timeout, or an answer for another unit/transaction:
            # either way the stream can no longer be trusted.
            kind = DeviceTimeout if "No response" in str(exc) else DeviceUnreachable
            raise self._failed(kind, device, point, f"{what}: {exc}") from None
        except (ModbusException, OSError) as exc:
            raise self._failed(DeviceUnreachable, device, point, f"{what}: {exc}") from None
        finally:
            timer.cancel()
            link.waiter = None
        # Timed out: an answer may still come and must find no request waiting for it, so the
        # connection goes too.
        if link.lost.done() or self._closed:
            raise self._gone(device, point, what)
        self._drop()
        why = f"{what}: no answer within {pacing.timeout_s:g} s; connection dropped"
        raise self._failed(DeviceTimeout, device, point, why)

    def _gone(self, device: str, point: str, what: str) -> DeviceError:
        """The connection went away mid-request: closed by us (no backoff), or by the peer."""
        if self._closed:
            return DeviceUnreachable(device, point, f"{what}: endpoint {self.url} was closed")
        return self._lost(device, point, what)

    def _lost(self, device: str, point: str, what: str) -> DeviceError:
        if self.config.scheme is Scheme.RTU:
            why = f"{what}: serial port {self.config.host} went away"
        else:
            why = f"{what}: the device closed the connection; {_ANOTHER_CLIENT_HINT}"
        return self._failed(DeviceUnreachable, device, point, why)

    def _failed(
        self, kind: type[DeviceUnreachable | DeviceTimeout], device: str, point: str, why: str
    ) -> DeviceError:
        """Drop the link and start (or lengthen) the backoff window; return the error to raise."""
        self._drop()
        delay = self._backoff.next_delay()
        self._next_attempt_at = self._clock() + delay
        self._last_failure = why
        _log.warning("%s: %s: %s (next attempt in %.2f s)", device, point, why, delay)
        return kind(device, point, why)

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            if not link.lost.done():
                link.lost.set_result(None)
            link.client.close()


def function_code(table: Table, *, write: int = 0, single: bool | None = None) -> int:
    """The function code of a read of ``table``, or of a write of ``write`` values: FC06 or
    FC05 for one (unless ``single=False``), else FC16 or FC15."""
    if not write:
        return _FC_READ[table]
    one = write == 1 and single is not False
    return (5 if one else 15) if table is Table.COIL else (6 if one else 16)


def _check_address(address: int, count: int) -> None:
    if not (0 <= address <= 0xFFFF and address + count - 1 <= 0xFFFF):
        raise ValueError(f"addresses {address}..{address + count - 1} outside 0..65535")


class Transports:
    """Registry: one :class:`Endpoint` per physical endpoint, shared (evcc's lesson: many devices
    accept only one client). Asking twice for the same endpoint with different settings (say
    ``tcp://`` and ``rtu+tcp://`` to one host and port) is a configuration error."""

    def __init__(
        self, *, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._endpoints: dict[tuple[str, str, int], Endpoint] = {}

    def endpoint(self, url_or_config: str | EndpointConfig) -> Endpoint:
        config = (
            url_or_config
            if isinstance(url_or_config, EndpointConfig)
            else EndpointConfig.parse(url_or_config)
        )
        existing = self._endpoints.get(config.key)
        if existing is None:
            existing = Endpoint(config, rng=self._rng, clock=self._clock)
            self._endpoints[config.key] = existing
        elif _settings(existing.config) != _settings(config):
            raise ValueError(
                f"endpoint {config.url!r} is the same device as {existing.url!r} but with "
                f"different settings ({config} vs {existing.config})"
            )
        return existing

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(list(self._endpoints.values()))

    async def close(self) -> None:
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            await endpoint.close()
