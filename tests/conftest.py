"""Fixtures for every test: processes a test starts are ended when it ends, pass or fail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GATEWAY = Path(sys.executable).with_name("gateway")


class Processes:
    """``gateway`` commands started by one test; whatever still runs at its end is killed, so a
    failing assertion never leaves a simulator listening (one leaked per failure, before)."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []
        self.pids: list[int] = []

    def start(self, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [str(GATEWAY), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own group: a kill reaches anything it started
        )
        self.started.append(proc)
        return proc

    def track(self, proc: asyncio.subprocess.Process) -> asyncio.subprocess.Process:
        """An asyncio subprocess the test started itself, ended the same way."""
        self.pids.append(proc.pid)
        return proc

    def end(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.end()
