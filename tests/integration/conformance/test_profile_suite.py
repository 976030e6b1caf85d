"""The device profile suite against the simulated devices, for every shipped profile, and
against broken devices and a broken profile layer: each fails the case it should.

Each shipped profile is served by the simulator (its pymodbus server, over a loopback socket)
and checked by the suite exactly as a vendor's device would be. The only change to a shipped
profile is its watchdog's timeout (60 s) shortened to the least its timeout register takes (3 s
where there is no minimum, else 10 s), in a copy, so that PRF-05 fits in the test budget.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.conformance import profile, suites
from gateway.conformance.cases import Outcome, Result
from gateway.conformance.profile import device as profile_device
from gateway.sim.modbus import DeviceSim, SimulatedHome, _ChargerBinder
from gateway.south.profile import Point
from gateway.south.profiles import find, shipped

pytestmark = pytest.mark.timeout(120)
GATEWAY = str(Path(sys.executable).with_name("gateway"))
NOON = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()  # the PV generates: a DER can revert
SLOT = {"charger": "charger", "meter_relay": "relay", "der": "der", "meter": "meter"}
#: The watchdog timeout of each bench copy: the least its timeout register accepts.
SHORT_S = {"meter-collar-relay": 10, "dc-v2h-backup": 10}
#: Which cases a simulated device cannot run, by profile, and the words of the reason.
NOT_RUN = {
    "eastron-sdm630": {
        "PRF-03": "no writable point",
        "PRF-04": "no writable point",
        "PRF-05": "claims no watchdog",
        "PRF-06": "has no relay",
    },
    "sigenergy-dc": {"PRF-05": "claims no watchdog", "PRF-06": "has no relay"},
    "sunspec-legacy-der": {
        "PRF-04": "no writable point claims",
        "PRF-05": "claims no watchdog",
        "PRF-06": "has no relay",
    },
    "sunspec-der": {"PRF-04": "no writable point claims", "PRF-06": "has no relay"},
    "wallbox-quasar": {"PRF-06": "has no relay"},
    "dc-v2h-backup": {"PRF-06": "has no relay"},
    "meter-collar-relay": {},
}


def bench_copy(name: str, folder: Path, extra: str = "") -> Path:
    """The shipped profile with its watchdog shortened (and the relay's timeout register's
    init write with it), plus ``extra`` TOML."""
    text = shipped()[name].read_text(encoding="utf-8")
    short = SHORT_S.get(name, 3)
    text = re.sub(r"(?m)^timeout_s = 60\b", f"timeout_s = {short}", text)
    text = re.sub(r"(?m)^refresh_s = 20\b", "refresh_s = 1", text)
    text = text.replace(
        'point = "watchdog_timeout"\nvalue = 60', f'point = "watchdog_timeout"\nvalue = {short}'
    )
    text = text.replace("#:schema ../../../../schemas/", "#:schema ")
    path = folder / f"{name}.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


async def _serve_and_run(
    served: Path | str,
    claimed: Path | str,
    ids: list[str],
    work: Path,
    lie: tuple[str, int] | None = None,
) -> dict[str, Result]:
    kind = find(served).kind.value
    slots: dict[str, Path | str | None] = dict.fromkeys(("relay", "charger", "der", "meter"))
    slots[SLOT[kind]] = served
    async with SimulatedHome(**slots, start=NOON) as home:  # type: ignore[arg-type]
        if lie is not None:
            home.device(SLOT[kind]).lie(*lie)
        url = home.endpoints[SLOT[kind]]
        options = profile.Options(allow_relay=True, allow_charge_w=500)
        target = profile.target_from(url, str(claimed), None, options)
        results = await suites.run(suites.select("profile", ids), target, work, lambda _l: None)
        await target.stop()
    return {r.case_id: r for r in results}


def run(
    served: Path | str, claimed: Path | str, ids: list[str], work: Path, **kw: object
) -> dict[str, Result]:
    return asyncio.run(_serve_and_run(served, claimed, ids, work, **kw))  # type: ignore[arg-type]


def _explain(r: Result) -> str:
    rows = "\n".join(f"{c.ok} {c.name}: expected {c.expected}, saw {c.seen}" for c in r.criteria)
    return f"{r.case_id} {r.outcome.value}: {r.reason}\n{rows}"


@pytest.mark.parametrize("name", sorted(NOT_RUN))
def test_every_shipped_profile_passes_on_the_simulator_or_is_not_run_with_the_reason(
    name: str, tmp_path: Path
) -> None:
    assert set(NOT_RUN) == set(shipped()), "a profile was added or removed: list it here"
    path = bench_copy(name, tmp_path)
    results = run(path, path, [], tmp_path / "work")
    for case_id, r in results.items():
        why = NOT_RUN[name].get(case_id)
        if why is None:
            assert r.outcome is Outcome.PASS, _explain(r)
            assert r.criteria, _explain(r)
            assert all(c.ok for c in r.criteria), _explain(r)
        else:
            assert r.outcome is Outcome.NOT_RUN, _explain(r)
            assert why in r.reason, _explain(r)
    # Every Modbus request is evidence, with its answer.
    rows = [row for r in results.values() for row in r.evidence if row.get("kind") == "modbus"]
    assert rows
    assert all("response" in row or "error" in row for row in rows)


def test_a_device_with_a_wrong_scale_factor_fails_the_reading_case(tmp_path: Path) -> None:
    # The inverter's 701.W_SF register says 10^3: its 7 kW of PV reads as 7 MW.
    path = bench_copy("sunspec-der", tmp_path)
    results = run(path, path, ["PRF-02"], tmp_path / "work", lie=("701.W_SF", 3))
    r = results["PRF-02"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    failed = [c for c in r.criteria if not c.ok]
    assert [c.name.split(" ")[0] for c in failed] == ["701.W"], _explain(r)
    assert "rating" in failed[0].expected
    assert "holding 4" in failed[0].name


def test_a_device_that_ignores_its_watchdog_fails_the_watchdog_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The charger takes the keep-alive write and never arms its timer: it charges on, forever.
    monkeypatch.setattr(DeviceSim, "_plan_watchdog", lambda _self, _p, _w: lambda: True)
    path = bench_copy("wallbox-quasar", tmp_path)
    results = run(path, path, ["PRF-02", "PRF-05"], tmp_path / "work")
    assert results["PRF-02"].outcome is Outcome.PASS, _explain(results["PRF-02"])
    r = results["PRF-05"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    assert r.criteria[0].name == "idle_timeout: falls back", _explain(r)
    assert "still charging" in r.criteria[0].seen, _explain(r)


def test_a_device_that_clamps_a_write_fails_the_write_case_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The charger takes a 5 % SoC reserve, says nothing, and keeps 2 %.
    original = _ChargerBinder.set

    def clamping(self: _ChargerBinder, role: str, value: float) -> None:
        original(self, role, min(value, 2.0) if role == "soc_floor" else value)

    monkeypatch.setattr(_ChargerBinder, "set", clamping)
    path = bench_copy("dc-v2h-backup", tmp_path)
    r = run(path, path, ["PRF-03"], tmp_path / "work")["PRF-03"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    failed = [c for c in r.criteria if not c.ok]
    assert [c.name for c in failed] == ["soc_reserve (holding 104)"], _explain(r)
    assert failed[0].seen == "2 %: the device clamped or ignored it", _explain(r)


def test_a_profile_claiming_a_register_the_device_lacks_fails_naming_it(tmp_path: Path) -> None:
    extra = (
        '\n[points.phantom]\naddress = 600\ntype = "uint16"\ndescription = "not on the device"\n'
    )
    served = bench_copy("wallbox-quasar", tmp_path)
    (tmp_path / "claimed").mkdir()
    claimed = bench_copy("wallbox-quasar", tmp_path / "claimed", extra)
    results = run(served, claimed, ["PRF-02"], tmp_path / "work")
    r = results["PRF-02"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    failed = [c for c in r.criteria if not c.ok]
    assert [c.name for c in failed] == ["phantom (holding 600)"], _explain(r)
    assert "Modbus exception 2" in failed[0].seen


def test_a_sunspec_profile_claiming_models_the_device_lacks_fails_the_first_case(
    tmp_path: Path,
) -> None:
    # A legacy inverter (models 103, 121, 123) checked against the 7xx profile.
    results = run("sunspec-legacy-der", "sunspec-der", ["PRF-01", "PRF-02"], tmp_path / "work")
    for r in results.values():
        assert r.outcome is Outcome.FAIL, _explain(r)
        assert "lacks required SunSpec model(s) 701, 702, 704" in r.reason, _explain(r)


def test_a_profile_layer_that_lets_an_out_of_range_setpoint_through_fails_the_limits_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Point, "admits", lambda _self, _v: True)
    path = bench_copy("wallbox-quasar", tmp_path)
    r = run(path, path, ["PRF-04"], tmp_path / "work")["PRF-04"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    assert all(not c.ok for c in r.criteria), _explain(r)
    assert "reached the link" in r.criteria[0].seen
    # The suite's own link refused it: nothing reached the device.
    assert all("not sent" in row["error"] for row in r.evidence if row.get("op") == "write")


def test_the_cli_runs_the_suite_on_a_simulated_home_over_rtu_framing(tmp_path: Path) -> None:
    # `gateway simulate home` as a peer process, RTU frames over TCP, as a site file names a
    # device behind a serial-to-Ethernet gateway.
    sim = subprocess.Popen(
        [GATEWAY, "simulate", "home", "--profile", "sigenergy-dc", "--port-base", "0",
         "--speed", "1", "--rtu"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        lines = [sim.stdout.readline() for _ in range(3)]
        charger = next(line.split() for line in lines if line.startswith("charger"))
        url = f"{charger[2]}/{charger[4]}"
        assert url.startswith("rtu+tcp://127.0.0.1:")
        report = tmp_path / "report"
        done = subprocess.run(
            [GATEWAY, "conformance", "run", "--suite", "profile", "--profile", "sigenergy-dc",
             "--target", url, "--report", str(report)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    finally:
        sim.terminate()
        sim.wait(10)
        if sim.stdout is not None:
            sim.stdout.close()
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    outcomes = {c["id"]: c["outcome"] for c in summary["cases"]}
    assert outcomes == {
        "PRF-01": "PASS", "PRF-02": "PASS", "PRF-03": "PASS", "PRF-04": "PASS",
        "PRF-05": "NOT RUN", "PRF-06": "NOT RUN",
    }  # fmt: skip
    rows = [json.loads(line) for line in (report / "evidence.jsonl").read_text().splitlines()]
    writes = [r for r in rows if r.get("op") == "write"]
    assert {w["address"] for w in writes} >= {41000, 41002, 41004, 41100}
    assert all(r["response"] == "ok" for r in writes)


def test_the_cli_says_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    bad = subprocess.run(
        [GATEWAY, "conformance", "run", "--suite", "profile", "--target", "127.0.0.1:1502"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "gateway conformance: --suite profile needs --profile NAME_OR_FILE (the device's profile)"
    ]
    help_text = subprocess.run(
        [GATEWAY, "conformance", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "bench device, not a live home" in " ".join(help_text.split())


@pytest.mark.parametrize(
    ("spec", "url", "unit"),
    [
        ("127.0.0.1:1502", "tcp://127.0.0.1:1502", None),
        ("127.0.0.1:1502/3", "tcp://127.0.0.1:1502", 3),
        ("rtu+tcp://10.0.0.5:4001/7", "rtu+tcp://10.0.0.5:4001", 7),
        ("rtu:///dev/ttyUSB0?baudrate=19200", "rtu:///dev/ttyUSB0?baudrate=19200", None),
    ],
)
def test_a_target_is_named_as_a_site_file_names_a_device(
    spec: str, url: str, unit: int | None
) -> None:
    endpoint, got = profile_device.parse_target(spec, None)
    assert (endpoint.url, got) == (url, unit)


def test_a_bad_target_is_one_line_saying_why() -> None:
    with pytest.raises(ValueError, match="/UNIT is a unit id"):
        profile_device.parse_target("127.0.0.1:1502/x", None)
