"""[log]: JSON lines and human lines carry the site, and the device and event mRID where known."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway.runtime.logs import about, configure


@pytest.fixture
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_name_the_site_device_and_mrid(restore_root: object) -> None:
    out = io.StringIO()
    configure("home-17", "json", "info", out)
    log = logging.getLogger("gateway.test")
    log.info("plain")
    with about(device="relay", mrid="ABC123"):
        log.warning("inside %s", "a step")
    log.info("told", extra={"device": "ev"})
    log.debug("below the level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["site"], x["device"], x["mrid"], x["msg"]) for x in lines] == [
        ("home-17", None, None, "plain"),
        ("home-17", "relay", "ABC123", "inside a step"),
        ("home-17", "ev", None, "told"),
    ]
    assert lines[1]["level"] == "warning"
    assert lines[0]["ts"].endswith("+00:00")


def test_human_lines_are_one_line_each(restore_root: object) -> None:
    out = io.StringIO()
    configure("home-17", "human", "warning", out)
    log = logging.getLogger("gateway.test")
    log.info("not shown")
    with about(device="ev"):
        log.warning("charger did not confirm")
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" WARNING home-17 ev: charger did not confirm")
