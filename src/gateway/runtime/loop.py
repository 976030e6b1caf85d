"""The event loop ``gateway run`` runs on.

``auto`` (the default) is uvloop where it is installed (a dependency on Linux and macOS), and
asyncio's own loop elsewhere; ``asyncio`` forces the standard loop (for a debugger, or to rule
the loop out when chasing a problem); ``uvloop`` insists on uvloop and fails clearly without
it. Why uvloop: the notification path is a chain of small socket exchanges (mTLS in, Modbus
out and back, five round trips before the relay opens), so the loop's own cost per callback
and per socket operation is a large share of it. Measured with ``bench/sep2_notify.py`` on the
same machine, in the same hour: median 6.3 to 5.4 ms, p99 9.0 to 7.3 ms (docs/sep2.md,
"Measured"). The gateway's TLS checks made in the handshake (``tls.check_chain``) run on
both loops: uvloop wraps its connections with the context's ``sslobject_class`` as asyncio
does, and tests/integration/north/test_event_loops.py shows each check refusing a bad peer
under each loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, get_args

T = TypeVar("T")
LoopName = Literal["auto", "uvloop", "asyncio"]
LOOPS: tuple[str, ...] = get_args(LoopName)


class LoopUnavailableError(RuntimeError):
    pass


def available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve(name: str) -> Literal["uvloop", "asyncio"]:
    """The loop ``name`` means on this machine; raises LoopUnavailableError (with what to do)
    for ``uvloop`` where it is not installed, ValueError for an unknown name."""
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r}: choose one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return "asyncio"
    if available():
        return "uvloop"
    if name == "uvloop":
        raise LoopUnavailableError(
            "the uvloop event loop was asked for but uvloop is not installed "
            "(pip install uvloop; it has no Windows build), or use --event-loop asyncio"
        )
    return "asyncio"


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if resolve(name) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    # The platform's own loop, even where a process installed another loop policy.
    return asyncio.DefaultEventLoopPolicy().new_event_loop


def run(main: Coroutine[Any, Any, T], name: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``name`` resolves to."""
    try:
        make = factory(name)
    except BaseException:
        main.close()  # never awaited: close it, or Python warns about it at exit
        raise
    with asyncio.Runner(loop_factory=make) as runner:
        return runner.run(main)
