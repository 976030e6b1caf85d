"""The ``[openadr2]`` table: every problem listed at once, paths relative to the file; and the
VEN's screen of the VTN's answers (pure, in ven.py)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.north.openadr2.config import parse
from gateway.north.openadr2.ven import screen

FP = "AB:CD:EF:01:23:45:67:89:AB:CD"


def test_minimal_plain_http_config() -> None:
    config, problems = parse(
        {"vtn_url": "http://vtn.local/OpenADR2/Simple/2.0b", "ven_name": "gw"}, Path("/x")
    )
    assert problems == []
    assert config is not None
    assert config.tls is None
    assert config.poll_interval_s is None
    assert config.mapping.export_negative is True
    assert config.mapping.simple[3] == ControlSet(connect=False)


def test_tls_paths_are_relative_to_the_file_and_programs_override_the_mapping(
    tmp_path: Path,
) -> None:
    for name in ("ven.pem", "ven.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    config, problems = parse(
        {
            "vtn_url": "https://vtn.example:8443/OpenADR2/Simple/2.0b",
            "ven_name": "gw",
            "ven_id": "VEN_7",
            "poll_interval_s": 2,
            "cert": "ven.pem",
            "key": "ven.key",
            "ca_file": "ca.pem",
            "vtn_fingerprint": FP,
            "mapping": {"simple": {"1": {"export_limit_w": 1500}}},
            "programs": {"http://u/islanding": {"export_negative": False}},
        },
        tmp_path,
    )
    assert problems == []
    assert config is not None
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "ven.pem"
    assert config.ven_id == "VEN_7"
    assert config.poll_interval_s == 2.0
    assert config.mapping.simple[1] == ControlSet(export_limit_w=1500)
    assert config.mapping_for("http://u/islanding").export_negative is False
    assert config.mapping_for("http://other").export_negative is True


def test_every_problem_is_listed_with_its_key(tmp_path: Path) -> None:
    config, problems = parse(
        {
            "vtn_url": "ftp://vtn",
            "poll_interval_s": -1,
            "cert": "missing.pem",
            "vtn_fingerprint": "nope",
            "colour": "red",
            "mapping": {"export_negative": "yes", "simple": {"9": {}, "1": {"volume": 3}}},
        },
        tmp_path,
    )
    assert config is None
    text = "\n".join(problems)
    for key in (
        "openadr2.ven_name: missing",
        "openadr2.vtn_url",
        "openadr2.poll_interval_s",
        "openadr2.cert:",
        "openadr2.key: missing",
        "openadr2.ca_file: missing",
        "openadr2.vtn_fingerprint",
        "openadr2.colour: unknown key",
        "openadr2.mapping.export_negative",
        "openadr2.mapping.simple.9",
        "openadr2.mapping.simple.1",
    ):
        assert key in text, key


def test_https_without_tls_material_is_refused() -> None:
    config, problems = parse({"vtn_url": "https://vtn", "ven_name": "gw"}, Path("/x"))
    assert config is None
    assert any("https" in p for p in problems)


def test_not_a_table() -> None:
    assert parse([1, 2], Path("/x")) == (None, ["openadr2: expected a table, got [1, 2]"])


@given(st.binary(max_size=200), st.sampled_from([b"<!DOCTYPE", b"<!ENTITY", b"<!doctype"]))
def test_the_answer_screen_refuses_any_dtd_and_never_raises(noise: bytes, dtd: bytes) -> None:
    assert screen(noise + dtd + noise) != ""
    assert isinstance(screen(noise), str)


def test_availability_table() -> None:
    base = {"vtn_url": "http://vtn:8080/OpenADR2/Simple/2.0b", "ven_name": "gw"}
    cfg, problems = parse(
        {**base, "availability": {"services": {"ctx": "island"}, "debounce_s": 0.5}}, Path(".")
    )
    assert problems == []
    assert cfg is not None
    assert dict(cfg.availability.services) == {"ctx": "island"}
    assert (cfg.availability.debounce_s, cfg.availability.horizon_s) == (0.5, 0.0)
    default, _ = parse(base, Path("."))
    assert default is not None
    assert default.availability.services == {}
    assert default.availability.debounce_s == 60.0
    bad = {"services": {"ctx": "fly"}, "debounce_s": -1, "horizon_s": "1h", "extra": 1}
    cfg, problems = parse({**base, "availability": bad}, Path("."))
    assert cfg is None
    assert len(problems) == 4, problems
    assert any('services."ctx"' in p and "island" in p for p in problems)
