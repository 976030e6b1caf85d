"""What ``gateway run`` logs: ``[log] format`` (human lines or JSON lines) and ``level``.

Every line carries the site's name; a line about a device or an event carries its name or mRID
too. Code that knows them says so with ``extra={"device": ..., "mrid": ...}`` on the log call,
or runs inside :func:`about` (a context variable, so concurrent tasks do not mix them up).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

_DEVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("device", default=None)
_MRID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mrid", default=None)
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR


@contextlib.contextmanager
def about(*, device: str | None = None, mrid: str | None = None) -> Iterator[None]:
    """Lines logged inside name this device and/or event mRID."""
    tokens = []
    if device is not None:
        tokens.append((_DEVICE, _DEVICE.set(device)))
    if mrid is not None:
        tokens.append((_MRID, _MRID.set(mrid)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class _Context(logging.Filter):
    """Stamps every record with the site and, where known, the device and event mRID."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def filter(self, record: logging.LogRecord) -> bool:
        record.site = self.site
        if getattr(record, "device", None) is None:
            record.device = _DEVICE.get()
        if getattr(record, "mrid", None) is None:
            record.mrid = _MRID.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, site, device, mrid, logger, msg."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "site": getattr(record, "site", None),
            "device": getattr(record, "device", None),
            "mrid": getattr(record, "mrid", None),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


class Human(logging.Formatter):
    """``15:22:19 WARNING site ev: message [mRID]``: one line a person can follow."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        device = getattr(record, "device", None)
        mrid = getattr(record, "mrid", None)
        who = f"{getattr(record, 'site', '')}{' ' + device if device else ''}"
        tail = f" [{mrid}]" if mrid else ""
        text = f"{at} {record.levelname} {who}: {record.getMessage()}{tail}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(site: str, fmt: str, level: str, stream: TextIO | None = None) -> None:
    """Send the process's log records to ``stream`` (stderr) in ``fmt``, from ``level`` up."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else Human())
    handler.addFilter(_Context(site))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # pymodbus logs every failed connect itself ("Failed to connect [Errno 111] ..."), without
    # the device; our transport says the same with the device and the next attempt.
    logging.getLogger("pymodbus").setLevel(max(LEVELS[level], logging.ERROR))
