"""``gateway demo`` with no scenario name (``make demo``), run as a person runs it: the
installed command in a subprocess, its stdout a pipe (so rich writes plain lines).

The built-in evening at ``--speed max`` must end with every check held; a scenario that
does something unsafe must fail them; a bad scenario or ``--speed`` is one line and exit 2; a
demo stopped by SIGTERM or killed by SIGKILL leaves nothing that confuses the next run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

GATEWAY = Path(sys.executable).with_name("gateway")
OUTAGE = Path(__file__).parents[2] / "docs" / "demo" / "outage.toml"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
SHORT = """
[[step]]
at = 0
kind = "export_limit"
watts = 1500
for = 5
"""


def _demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(GATEWAY), "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the demo ended early:\n" + "".join(seen)
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n" + "".join(seen))


def _folder(lines: list[str]) -> Path:
    site = next(line.split("site file ", 1)[1].strip() for line in lines if "site file " in line)
    return Path(site).parent


def _summary(out: str) -> list[str]:
    return out.split("\nsummary\n", 1)[1].splitlines()


def _status(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url + "api/status", timeout=10) as r:
        doc: dict[str, object] = json.load(r)
        return doc


@pytest.mark.timeout(180)
def test_the_evening_at_max_speed_ends_with_every_check_held() -> None:
    started = time.monotonic()
    proc = _start("--speed", "max")
    try:
        seen = _read_until(proc, r"dashboard: http")
        url = seen[-1].split("dashboard: ", 1)[1].strip()
        assert _status(url)["site"] == "demo"
        # The dashboard's API follows the evening live: islanded on the utility's request.
        seen += _read_until(proc, r"home\s+EV forming the home grid")
        islanded = _status(url)
        deadline = time.monotonic() + 5  # the API shows the last reading: a period behind
        while islanded["relay"] != "open" and time.monotonic() < deadline:
            time.sleep(0.1)
            islanded = _status(url)
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    wall = time.monotonic() - started
    out = "".join(seen) + rest
    assert proc.returncode == 0, out[-4000:]
    assert islanded["relay"] == "open", islanded
    assert "\x1b[" not in out, "a pipe gets plain lines, no terminal codes"
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", out)
    # The story: each step, and the gateway's reasons and register writes.
    for line in (
        "utility   DERControl",
        "grid      the feeder is de-energised",
        "grid      the feeder is back",
        "vtn       event",
        "gateway   relay open, because islanding",
        "gateway   charger grid_forming, because V2H",
        "reconnect_wait -> stopping_forming: grid in window",
        "write     pv.704.WMaxLimPct",
        "write     relay.relay_command",
    ):
        assert line in out, line
    summary = _summary(out)
    text = "\n".join(summary)
    assert not [s for s in summary if "FAIL" in s], text
    energy = re.search(r"energy served from the EV: (\d+\.\d+) kWh", text)
    assert energy is not None, text
    assert float(energy.group(1)) > 0.05, text
    assert "dark time at the outage: 0.00 s (the home was already on the EV)" in text
    assert re.search(r"peak backfeed at the meter: \d+\.\d+ kW against \d+\.\d+ kW", text)
    for check in (
        "ok    the home rode through the outage on the EV's battery",
        "ok    the enter-service delay was held",
        "ok    backfeed stayed within its allowance",
        "ok    the export limit of 1500 W was followed",
        "ok    the island request was followed",
        "ok    the charge limit of 2000 W was followed",
        "ok    interlock violations at the home: 0",
        "ok    the home ended on the grid",
        "ok    the evening played to its end",
        "ok    the gateway stopped cleanly (exit 0)",
    ):
        assert check in text, (check, text)
    assert summary[-1] == "every check held"
    assert wall < 90, f"{wall:.0f} s"


@pytest.mark.timeout(120)
def test_a_scenario_that_closes_the_relay_on_the_island_fails_the_checks(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "unsafe.toml"
    scenario.write_text(
        '[[step]]\nat = 0\nkind = "island"\nfor = 5\n\n[[step]]\nat = 1\nkind = "close_relay"\n',
        encoding="utf-8",
    )
    done = _demo("--speed", "max", "--scenario", str(scenario))
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    text = "\n".join(_summary(done.stdout))
    assert re.search(r"FAIL  interlock violations at the home: [1-9]", text), text
    assert "relay closed onto a forming charger" in text, text
    assert text.endswith("a check FAILED")


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--scenario", "{dir}/nope.toml"], None, "nope.toml: cannot read it"),
        (["--scenario", "{dir}/s.toml"], "[[step]]\nat = 1\nkind = 'meteor'\n", "kind 'meteor'"),
        (["--scenario", "{dir}/s.json"], '{"step": [', "not valid JSON"),
        (["--scenario", "{dir}/s.toml"], "[[step]]\nat = -1\nkind = 'grid_fail'\n", "at = -1"),
        (
            ["--scenario", "{dir}/s.toml"],
            "[[step]]\nat = 1\nkind = 'island'\n",
            "for must be a number",
        ),
        (["--scenario", "{dir}/s.toml"], "title = 'x'\n", "needs a non-empty list of steps"),
        (["--speed", "fast"], None, "--speed 'fast': a number such as 2, or max"),
        (["--speed", "0"], None, "--speed 0: must be above 0"),
        (["--duration", "-3"], None, "--duration -3: must be above 0"),
        (["site", "--speed", "2"], None, "--speed is for the embedded demo"),
    ],
)
def test_a_bad_scenario_or_option_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], content: str | None, message: str
) -> None:
    argv = [a.format(dir=tmp_path) for a in args]
    if content is not None:
        Path(argv[1]).write_text(content, encoding="utf-8")
    done = _demo(*argv, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert message in done.stderr.strip().splitlines()[-1], done.stderr  # after usage, if any
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def _short_run_completes(tmp_path: Path) -> str:
    scenario = tmp_path / "short.toml"
    scenario.write_text(SHORT, encoding="utf-8")
    done = _demo("--speed", "max", "--scenario", str(scenario))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert _summary(done.stdout)[-1] == "every check held"
    return done.stdout


@pytest.mark.timeout(150)
def test_sigterm_stops_the_demo_cleanly_and_the_next_run_completes(tmp_path: Path) -> None:
    proc = _start("--speed", "max")
    try:
        seen = _read_until(proc, r"script\s+island")
        folder = _folder(seen)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 128 + signal.SIGTERM, "".join(seen) + rest
    assert "interrupted by signal 15: the evening did not finish" in rest
    assert "Traceback" not in rest
    assert not folder.exists(), "the temporary folder (PKI, store) is removed"
    _short_run_completes(tmp_path)


@pytest.mark.timeout(150)
def test_after_sigkill_the_next_run_is_not_confused_by_what_it_left(tmp_path: Path) -> None:
    proc = _start("--speed", "max")
    try:
        seen = _read_until(proc, r"dashboard: http")
        folder = _folder(seen)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert folder.exists()  # what the killed run left: its PKI, its store
    assert (folder / "demo.db").exists()
    assert folder.parent == Path(tempfile.gettempdir())
    # The next run: the documented outage scenario (no warning, so some dark time).
    done = _demo("--speed", "max", "--scenario", str(OUTAGE))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = done.stdout
    text = "\n".join(_summary(out))
    assert text.endswith("every check held"), text
    dark = re.search(r"dark time at the outage: (\d+\.\d+) s\n", text)
    assert dark is not None, text
    assert 0 < float(dark.group(1)) < 2, text
    assert "ok    the export limit of 1000 W was followed" in text
    assert str(folder) not in out, "a new folder, a new store, new ports"
    assert not folder.exists(), "the killed run's folder is cleaned up by the next run"


@pytest.mark.timeout(60)
def test_duration_bounds_the_demo_and_an_unfinished_evening_fails() -> None:
    started = time.monotonic()
    done = _demo("--speed", "max", "--duration", "3")
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    assert "--duration 3 s is up: stopping" in done.stdout
    text = "\n".join(_summary(done.stdout))
    assert "FAIL  the evening played to its end" in text, text
