"""OpenADR 3 report building and scheduling, and the ``[openadr3]`` config table."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.controls import ControlSet
from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.messages import (
    ChargerTelemetry,
    DerTelemetry,
    MeterTelemetry,
    Observed,
    RelayTelemetry,
)
from gateway.north.openadr3 import reports
from gateway.north.openadr3.config import parse
from gateway.north.openadr3.mapping import AlertAction, DispatchSign
from gateway.north.openadr3.model import Event, ReportDescriptor

T = 1_800_000_000.0
OBS = Observed(
    at=T,
    meter=MeterTelemetry(T, net_w=-1500.0, grid_voltage_v=240.0, grid_frequency_hz=60.0),
    relay=RelayTelemetry(T, RelayPosition.OPEN),
    charger=ChargerTelemetry(T, ChargerMode.GRID_FORMING, power_w=2000.0, soc_pct=76.5),
    ders=(DerTelemetry(T, "pv", 2500.0),),
)


def _ev(*kinds: tuple[str, str | None]) -> Event:
    return Event(
        "e1", "p1", (), report_descriptors=tuple(ReportDescriptor(k, None, u) for k, u in kinds)
    )


def _value(r: reports.Built, resource: str, kind: str) -> object:
    assert r.report is not None
    for res in r.report.resources:
        if res.resource_name == resource:
            for p in res.intervals[0].payloads:
                if p.type == kind:
                    return p.values[0]
    return None


def test_report_values_signs_and_units() -> None:
    ev = _ev(("DEMAND", None), ("STORAGE_CHARGE_LEVEL", None), ("OPERATING_STATE", None))
    built = reports.build(ev, OBS, client_name="gw", index=4, start=T, period_s=60)
    assert _value(built, "site", "DEMAND") == -1.5  # kW, + = import: exporting
    assert _value(built, "ev", "DEMAND") == -2.0  # discharging
    assert _value(built, "pv", "DEMAND") == -2.5  # generating
    assert _value(built, "ev", "STORAGE_CHARGE_LEVEL") == 76.5
    assert _value(built, "site", "OPERATING_STATE") == "ISLANDED"
    assert built.report is not None
    assert built.report.resources[0].intervals[0].id == 4
    watts = reports.build(
        _ev(("READING", "W")), OBS, client_name="gw", index=0, start=T, period_s=60
    )
    assert _value(watts, "site", "READING") == -1500.0


def test_unsupported_report_types_are_named_and_nothing_without_telemetry() -> None:
    ev = _ev(("BASELINE", None), ("DEMAND", None))
    built = reports.build(ev, OBS, client_name="gw", index=0, start=T, period_s=60)
    assert built.skipped == ("BASELINE",)
    assert reports.build(ev, None, client_name="gw", index=0, start=T, period_s=60).report is None
    only = reports.build(
        _ev(("BASELINE", None)), OBS, client_name="gw", index=0, start=T, period_s=60
    )
    assert only.report is None


def test_due_sends_each_period_once_and_only_while_the_event_runs() -> None:
    assert reports.due(None, T, T + 300, T - 1, 60) is None  # not started
    assert reports.due(None, T, T + 300, T + 5, 60) == 0
    assert reports.due(0, T, T + 300, T + 59, 60) is None  # already sent
    assert reports.due(0, T, T + 300, T + 61, 60) == 1
    assert reports.due(1, T, T + 300, T + 250, 60) == 4  # after a gap: the current one
    assert reports.due(4, T, T + 300, T + 330, 60) == 5  # the last period, after the end
    assert reports.due(5, T, T + 300, T + 330, 60) is None
    assert reports.due(None, T, T + 300, T + 400, 60) is None  # long over


def test_next_due_at_is_when_due_first_answers_the_next_period() -> None:
    # The client sleeps until then, so a period is sent at its start, not at the next poll.
    assert reports.next_due_at(None, T, T + 300, 60) == T
    assert reports.next_due_at(0, T, T + 300, 60) == T + 60
    assert reports.next_due_at(4, T, T + 300, 60) == T + 300  # period 5 starts at the end
    assert reports.next_due_at(5, T, T + 300, 60) is None  # none left
    for last, at in ((None, T), (0, T + 60), (4, T + 300)):
        expected = 0 if last is None else last + 1
        assert reports.due(last, T, T + 300, at - 0.001, 60) != expected
        assert reports.due(last, T, T + 300, at, 60) == expected


def _write(tmp_path: Path) -> Path:
    (tmp_path / "vtn.secret").write_text("hunter2\n")
    (tmp_path / "ca.pem").write_text("not checked here")
    return tmp_path


def test_config_parses_every_key(tmp_path: Path) -> None:
    table = {
        "vtn": "https://vtn.example/openadr3/3.0.1/",
        "client_id": "gw-17",
        "client_secret_file": "vtn.secret",
        "ca_file": "ca.pem",
        "poll_s": 5,
        "report_period_s": 30,
        "webhook": {"host": "0.0.0.0", "port": 8443, "public_url": "https://gw.example:8443/n"},
        "program": [
            {
                "name": "flex",
                "limit_units": "w",
                "dispatch_sign": "export",
                "ev_capacity_kwh": 60,
                "alerts": {"ALERT_POSSIBLE_OUTAGE": "island"},
                "prepare": {"soc_target_pct": 90},
                "simple": {"1": {"export_limit_w": 0}, "3": {"connect": False}},
            }
        ],
    }
    cfg, problems = parse(table, _write(tmp_path))
    assert problems == []
    assert cfg is not None
    assert cfg.vtn == "https://vtn.example/openadr3/3.0.1"
    assert cfg.client_secret == "hunter2"
    assert "hunter2" not in repr(cfg)
    assert cfg.ven_name == "gw-17"
    assert cfg.ca_file == tmp_path / "ca.pem"
    assert (cfg.poll_s, cfg.report_period_s) == (5.0, 30.0)
    assert cfg.webhook is not None
    assert cfg.webhook.port == 8443
    (p,) = cfg.programs
    assert p.limit_units == "W"
    assert p.dispatch_sign is DispatchSign.EXPORT
    assert p.alerts["ALERT_POSSIBLE_OUTAGE"] is AlertAction.ISLAND
    assert p.alerts["ALERT_BLACK_START"] is AlertAction.ISLAND  # default kept
    assert p.alerts["ALERT_GRID_EMERGENCY"] is AlertAction.PREPARE
    assert p.prepare == ControlSet(soc_target_pct=90.0)
    assert p.simple == {1: ControlSet(export_limit_w=0.0), 3: ControlSet(connect=False)}


def test_config_lists_every_problem(tmp_path: Path) -> None:
    table = {
        "vtn": "http://vtn.example",
        "client_secret": "x",
        "client_secret_file": "missing.secret",
        "poll_s": 0,
        "webhook": {"port": 70000, "cert_file": "c.pem"},
        "program": [
            {
                "name": "a",
                "limit_units": "A",
                "dispatch_sign": "up",
                "alerts": {"ALERT_FIRE": "island", "ALERT_BLACK_START": "run"},
                "prepare": {"soc_target_pct": 150},
                "simple": {"7": {}, "1": {"volts": 3}},
            },
            {"limit_units": "W"},
        ],
    }
    cfg, problems = parse(table, tmp_path)
    assert cfg is None
    expected = [
        "openadr3.client_id: missing",
        "openadr3.client_secret_file: ",  # does not exist
        "openadr3.poll_s: expected 0.05..3600 s, got 0",
        "openadr3.webhook.port: expected 0..65535",
        "openadr3.webhook: cert_file and key_file go together",
        "openadr3.program[0].limit_units",
        "openadr3.program[0].dispatch_sign",
        "openadr3.program[0].alerts.ALERT_FIRE: not one of",
        "openadr3.program[0].alerts.ALERT_BLACK_START",
        "openadr3.program[0].prepare: soc_target_pct must be 0-100 %",
        "openadr3.program[0].simple.7: SIMPLE levels are 0..3",
        "openadr3.program[0].simple.1: unknown controls volts",
        "openadr3.program[1].name: missing",
        "openadr3.vtn: OpenADR 3 runs over TLS",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"vtn": 5}, "openadr3.vtn: expected a string, got 5"),
        ({"vtn": "vtn.example"}, "openadr3.vtn: expected an http(s):// URL"),
        ({"program": []}, "openadr3.program: expected one or more"),
        ({"program": [{"name": "a"}, {"name": "a"}]}, "program names must be unique"),
        ({"report_period_s": True}, "openadr3.report_period_s: expected an integer or a number"),
    ],
)
def test_config_single_problems(tmp_path: Path, change: dict[str, object], problem: str) -> None:
    table = {"vtn": "https://v", "client_id": "c", "client_secret": "s", "program": [{"name": "a"}]}
    cfg, problems = parse({**table, **change}, tmp_path)
    assert cfg is None
    assert any(problem in p for p in problems), problems
