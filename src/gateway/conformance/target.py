"""The controller under test: this gateway in-process (the default), or anyone's command.

A command target is started with the case's site file: ``{site}`` in the command is replaced
by its path, and ``CONFORMANCE_SITE`` holds it too, so a controller that reads its own
configuration format can be wrapped by a small script that translates the site file. It is
sent SIGTERM at the end of the case (then SIGKILL after 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from gateway.runtime import cli_run
from gateway.runtime.run_config import load


class Target(Protocol):
    name: str

    async def start(self, site: Path, seconds: float) -> None:
        """Start driving the home ``site`` describes, for at most ``seconds``."""

    async def stop(self) -> list[str]:
        """Stop, and return what the target printed."""


class InProcess:
    """This gateway's ``gateway run SITE.toml``, in the suite's own event loop (so a test can
    patch it: the suite's mutation checks do)."""

    name = "in-process"

    def __init__(self) -> None:
        self._task: asyncio.Task[int] | None = None
        self._out = io.StringIO()

    async def start(self, site: Path, seconds: float) -> None:
        self._out = io.StringIO()
        config = load(site)
        self._task = asyncio.create_task(cli_run.run(config, self._out, seconds=seconds))
        await asyncio.sleep(0)

    async def stop(self) -> list[str]:
        if self._task is not None:
            # The run ends by itself at its deadline; past it, it is cancelled.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self._out.getvalue().splitlines()


class Command:
    """An external controller, started as a process with the site file."""

    def __init__(self, command: str) -> None:
        self.name = command
        self._argv = shlex.split(command)
        if not self._argv:
            raise ValueError("--target: an empty command")
        self._proc: asyncio.subprocess.Process | None = None
        self._lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    async def start(self, site: Path, seconds: float) -> None:
        argv = [a.replace("{site}", str(site)) for a in self._argv]
        if not any("{site}" in a for a in self._argv):
            argv.append(str(site))
        self._lines = []
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "CONFORMANCE_SITE": str(site), "PYTHONUNBUFFERED": "1"},
            cwd=site.parent,
        )
        self._reader = asyncio.create_task(self._read())
        # A controller that outlives its case is stopped, as `gateway run --for` would be.
        # The timer holds its own process: one left from an earlier, shorter case must not
        # stop the next case's controller (it did, when the timer read self._proc).
        proc = self._proc
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._overdue, proc)

    @staticmethod
    def _overdue(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            self._lines.append(line.decode(errors="replace").rstrip("\n"))

    async def stop(self) -> list[str]:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await self._reader
        return self._lines


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ while a command target starts (it copies the environment):
    how a suite tells any controller its server and credentials."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def target_for(spec: str) -> Target:
    return InProcess() if spec == "in-process" else Command(spec)
