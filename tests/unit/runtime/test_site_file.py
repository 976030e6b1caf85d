"""The site file: every problem at once, each with its line, key and a fix; what it builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.north.sep2.pki import init_pki
from gateway.north.sep2.telemetry import SiteRatings
from gateway.runtime.cli_run import identity_of
from gateway.runtime.run_config import RunConfig, RunConfigError, load
from gateway.runtime.site_schema import render_schema

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
SITES = sorted(p for p in EXAMPLES.glob("*.toml") if p.name != "acme-v2h.toml")

HOME = """
[site]
nominal_voltage_v = 240
frequency_hz = 60
phases = "split"
main_breaker_a = 200
busbar_a = 200

[[device]]
name = "relay"
role = "meter_relay"
profile = "meter-collar-relay"
transport = "tcp://127.0.0.1:5020"

[[device]]
name = "ev"
role = "charger"
profile = "wallbox-quasar"
transport = "tcp://127.0.0.1:5021"
max_discharge_w = 9600
max_charge_w = 9600
"""
PV = """
[[device]]
name = "pv"
role = "pv_inverter"
profile = "sunspec-der"
transport = "tcp://127.0.0.1:5022"
max_discharge_w = 7000
"""


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    pki = init_pki(base / "pki", devices=("gateway", "aggregator"))
    shutil.copy(pki.serca, base / "pki" / "ca.pem")
    return base


def _load(base: Path, text: str) -> RunConfig:
    path = base / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load(path)


def _problems(base: Path, text: str) -> list[str]:
    with pytest.raises(RunConfigError) as info:
        _load(base, text)
    return [f"{p.line}:{p.key}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize("example", SITES, ids=lambda p: p.name)
def test_every_shipped_example_loads(
    example: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTN_SECRET", "s3cret")
    copy = pki_dir / example.name
    shutil.copy(example, copy)
    config = load(copy)
    assert [d.role for d in config.devices].count("meter_relay") == 1
    assert not config.site.problems()


def test_the_examples_cover_what_the_issue_names() -> None:
    names = {p.name for p in SITES}
    assert names == {
        "us-2030-5.toml",
        "au-csip-aus.toml",
        "openadr.toml",
        "no-utility.toml",
        "aggregator.toml",
    }


def test_a_home_with_no_link_and_no_pv(tmp_path: Path) -> None:
    config = _load(tmp_path, HOME)
    assert config.links == ()
    assert [d.der_id for d in config.site.ders] == ["ev"]
    assert config.site.charger_id == "ev"
    assert config.site.panel.coordinated is False  # 705.12 unless the file says 705.13
    assert config.site.panel.static_limit_a == 40
    assert config.store == (tmp_path / "gateway.db").resolve()


def test_the_supply_sets_the_enter_service_and_outage_windows(tmp_path: Path) -> None:
    us = _load(tmp_path, HOME).site
    assert (us.enter_service.f_min_hz, us.enter_service.f_max_hz) == (59.5, 60.1)
    assert us.enter_service.delay_s == 300
    assert us.enter_service.nominal_v == us.outage.nominal_v == 240
    au_text = (
        HOME.replace("nominal_voltage_v = 240", "nominal_voltage_v = 230")
        .replace("frequency_hz = 60", "frequency_hz = 50")
        .replace('phases = "split"', 'phases = "single"')
    )
    au = _load(tmp_path, au_text).site
    es = au.enter_service
    assert (round(es.v_min_pu * 230), round(es.v_max_pu * 230)) == (216, 253)
    assert (es.f_min_hz, es.f_max_hz, es.delay_s) == (47.5, 50.15, 60)
    assert au.outage.failed(230, 50) is False
    assert au.outage.failed(230, 60) is True  # a 60 Hz reading on a 50 Hz grid is no grid
    assert au.panel.phases == ("L1",)
    assert au.panel.nominal_voltage_v == 230
    three = _load(tmp_path, au_text.replace('phases = "single"', 'phases = "three"')).site
    assert three.panel.phases == ("L1", "L2", "L3")
    assert three.panel.nominal_voltage_v == 690
    longer = _load(tmp_path, HOME + "\n[site.enter_service]\ndelay_s = 600\nf_min_hz = 59.7\n")
    assert (longer.site.enter_service.delay_s, longer.site.enter_service.f_min_hz) == (600, 59.7)


def test_limits_reserve_and_backfeed_policy_reach_the_core(tmp_path: Path) -> None:
    text = HOME.replace(
        "busbar_a = 200",
        "busbar_a = 200\nexport_limit_w = 5000\nimport_limit_w = 12000\nbackup_reserve_pct = 35\n"
        'backfeed = { rule = "705.13", power_control_limit_a = 200 }',
    )
    site = _load(tmp_path, text).site
    assert (site.site_policy.export_limit_w, site.site_policy.import_limit_w) == (5000, 12000)
    assert site.backup_reserve_soc_pct == 35
    assert site.panel.coordinated is True
    assert site.panel.dynamic_busbar_a == pytest.approx(200)


def test_device_ratings_and_nameplates_reach_the_site_and_its_ratings(tmp_path: Path) -> None:
    text = HOME.replace(
        "max_charge_w = 9600",
        "max_charge_w = 9600\nmax_va = 10000\nmax_var = 4400\nmax_var_neg = 4000\n"
        "min_pf_over_excited = 0.95\nmin_pf_under_excited = 0.85\ncapacity_wh = 60000",
    ) + PV.replace("max_discharge_w = 7000", "max_discharge_w = 7000\nmax_var = 3000")
    site = _load(tmp_path, text).site
    ev = site.charger
    assert (ev.max_va, ev.max_var, ev.max_var_neg, ev.capacity_wh) == (10_000, 4_400, 4_000, 60_000)
    assert (ev.min_pf_over_excited, ev.min_pf_under_excited) == (0.95, 0.85)
    assert [d.der_id for d in site.ders] == ["ev", "pv"]  # the file's order is the allocation's
    r = SiteRatings.of_site(site)
    assert (r.max_va, r.max_var) == (17_000, 7_400)


def test_every_problem_at_once_with_line_key_and_a_did_you_mean(tmp_path: Path) -> None:
    text = (
        HOME.replace("busbar_a = 200", "busbar_a = 200\nexport_limt_w = 5000")
        .replace('role = "charger"', 'role = "chargr"')
        .replace('profile = "meter-collar-relay"', 'profile = "meter-collar-relay"\nunit = 3')
        + '\n[sep2]\ndcap = "https://x:1/dcap"\nserver_lfid = "AB"\n'
    )
    problems = _problems(tmp_path, text)
    assert len(problems) == 4, problems
    assert any("site.export_limt_w" in p and "did you mean 'export_limit_w'" in p for p in problems)
    assert any("device[1].role" in p and "did you mean 'charger'" in p for p in problems)
    assert any("device[0].unit" in p and "did you mean 'unit_id'" in p for p in problems)
    # The typo that used to turn server pinning off without a word.
    assert any("sep2.server_lfid" in p and "did you mean 'server_lfdi'" in p for p in problems)
    lines = [int(p.split(":")[0]) for p in problems]
    assert lines == sorted(lines)
    assert all(n > 0 for n in lines)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ('phases = "split"', 'phases = "three"'),
            "three phase at 240 V and 60 Hz is not a supply",
        ),
        (("main_breaker_a = 200", "main_breaker_a = 225"), "main breaker does not protect"),
        (('role = "charger"', 'role = "pv_inverter"'), "needs a der profile"),
        (('profile = "wallbox-quasar"', 'profile = "no-such"'), "device[1].profile"),
        (('profile = "wallbox-quasar"', 'profile = "my.toml"'), "cannot read"),
        (("max_charge_w = 9600", ""), "device[1].max_charge_w: missing"),
        (('"tcp://127.0.0.1:5021"', '"udp://h:1"'), "device[1].transport"),
        (('"tcp://127.0.0.1:5021"', '"tcp://127.0.0.1:5021"\nbaudrate = 9600'), "serial port"),
        (('role = "meter_relay"', 'role = "meter"'), "role 'meter' needs a meter profile"),
        (("max_discharge_w = 9600", "max_discharge_w = nan"), "nan is not a number"),
        (("frequency_hz = 60", "frequency_hz = 55"), "frequency_hz: 55 is not allowed"),
        (("[site]", "[site]\nsimulate = true"), "gateway simulate home"),
        (
            ("[site]", '[site]\nbackfeed = { rule = "705.12", power_control_limit_a = 9 }'),
            'only with rule = "705.13"',
        ),
        (
            ("[site]", '[site]\nbackfeed = { rule = "705.13", power_control_limit_a = 900 }'),
            "above 120 % of the 200 A busbar",
        ),
    ],
)
def test_a_bad_site_file_is_refused_with_its_key(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    problems = _problems(tmp_path, HOME.replace(*change))
    assert any(problem in p for p in problems), problems


def test_two_relays_or_no_charger_are_refused(tmp_path: Path) -> None:
    relay = HOME[HOME.index("[[device]]") : HOME.index("[[device]]", HOME.index("[[device]]") + 1)]
    twice = HOME + relay.replace('name = "relay"', 'name = "relay2"')
    assert any("exactly one meter_relay" in p for p in _problems(tmp_path, twice))
    no_ev = HOME[: HOME.index("[[device]]", HOME.index("[[device]]") + 1)]
    assert any("name a charger" in p for p in _problems(tmp_path, no_ev))
    same = HOME.replace('name = "ev"', 'name = "relay"')
    assert any("name of an earlier device" in p for p in _problems(tmp_path, same))


SECOND_EV = """
[[device]]
name = "ev2"
role = "charger"
profile = "wallbox-quasar"
transport = "tcp://127.0.0.1:5023"
max_charge_w = 7400
"""


def test_two_chargers_one_forms_the_island_the_other_only_charges(tmp_path: Path) -> None:
    text = HOME.replace("max_discharge_w = 9600", "max_discharge_w = 9600\nforms_island = true")
    config = _load(tmp_path, text + SECOND_EV)
    assert config.site.charger_id == "ev"
    ders = {d.der_id: d for d in config.site.ders}
    # The follower never discharges: none of the backfeed allowance is held for it.
    assert (ders["ev2"].kind, ders["ev2"].max_discharge_w, ders["ev2"].max_charge_w) == (
        "charger",
        0.0,
        7400.0,
    )
    cfgs = {d.name: d.config for d in config.devices}
    assert cfgs["ev"].forms_island
    assert not cfgs["ev2"].forms_island
    # Marking the second one instead makes it the grid-former (it then needs its discharge).
    other = HOME + SECOND_EV.replace("max_charge_w = 7400", "forms_island = true")
    problems = _problems(tmp_path, other)
    assert any("device[2].max_discharge_w: missing" in p for p in problems), problems


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("", "no charger forms the island among ['ev', 'ev2']"),
        ("forms_island = true", "2 chargers set forms_island = true"),
    ],
)
def test_two_chargers_need_exactly_one_grid_former(
    tmp_path: Path, extra: str, problem: str
) -> None:
    first = HOME.replace("max_discharge_w = 9600", f"max_discharge_w = 9600\n{extra}")
    second = SECOND_EV.replace("max_charge_w = 7400", f"max_charge_w = 7400\n{extra}")
    problems = _problems(tmp_path, first + second)
    assert any(problem in p for p in problems), problems


def test_the_only_charger_may_not_opt_out_of_forming(tmp_path: Path) -> None:
    text = HOME.replace("max_discharge_w = 9600", "max_discharge_w = 9600\nforms_island = false")
    assert any("no charger forms the island" in p for p in _problems(tmp_path, text))
    pv = PV.replace("max_discharge_w = 7000", "max_discharge_w = 7000\nforms_island = true")
    assert any("only for a charger, not a pv_inverter" in p for p in _problems(tmp_path, HOME + pv))


METER = """
[[device]]
name = "meter"
role = "meter"
profile = "eastron-sdm630"
transport = "rtu+tcp://127.0.0.1:5024"
"""
SHIPPED = ROOT / "src" / "gateway" / "south" / "profiles"


def _relay_without_meter(folder: Path) -> str:
    """The reference relay's profile with its meter roles taken out: a relay and nothing else."""
    text = (SHIPPED / "meter-collar-relay.toml").read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.startswith(("net_", "current_l"))]
    text = "\n".join(kept).replace('name = "meter-collar-relay"', 'name = "bare-relay"')
    (folder / "bare-relay.toml").write_text(text.replace("#:schema", "# schema"), "utf-8")
    return "bare-relay.toml"


def test_a_meter_apart_from_the_relay(tmp_path: Path) -> None:
    bare = _relay_without_meter(tmp_path)
    text = HOME.replace('profile = "meter-collar-relay"', f'profile = "{bare}"')
    # A relay that reads no net power needs the meter as its own device...
    problems = _problems(tmp_path, text)
    assert any("reads no net power" in p and 'role = "meter"' in p for p in problems), problems
    # ... and with one, the site loads: the meter is a device, not a DER.
    config = _load(tmp_path, text + METER)
    meter = next(d for d in config.devices if d.role == "meter")
    assert (meter.profile.name, meter.config.der_id) == ("eastron-sdm630", None)
    assert [d.der_id for d in config.site.ders] == ["ev"]
    assert any(
        "name at most one meter" in p
        for p in _problems(
            tmp_path, text + METER + METER.replace('"meter"\nrole', '"meter2"\nrole')
        )
    )


def test_an_openadr3_secret_comes_from_the_environment(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = (
        '\n[openadr3]\nvtn = "https://127.0.0.1:1/openadr3"\nclient_id = "g"\n'
        'client_secret_env = "GW_TEST_SECRET"\n[[openadr3.program]]\nname = "p"\n'
    )
    monkeypatch.delenv("GW_TEST_SECRET", raising=False)
    problems = _problems(pki_dir, HOME + link)
    assert len(problems) == 1
    assert "the environment has no GW_TEST_SECRET" in problems[0]
    monkeypatch.setenv("GW_TEST_SECRET", "from-env")
    config = _load(pki_dir, HOME + link)
    assert config.openadr3 is not None
    assert config.openadr3.client_secret == "from-env"
    assert config.links == ("openadr3",)


def test_one_site_file_is_one_end_device(pki_dir: Path) -> None:
    link = (
        '\n[sep2]\ndcap = "https://127.0.0.1:1/dcap"\ncert = "pki/aggregator.pem"\n'
        'key = "pki/aggregator.key"\nserca = "pki/serca.pem"\n'
        '[[sep2.end_device]]\nlfdi = "' + "A" * 40 + '"\n'
        '[[sep2.end_device]]\nlfdi = "' + "B" * 40 + '"\n'
    )
    assert any("run one gateway per site" in p for p in _problems(pki_dir, HOME + link))


def test_notify_require_certificate_defaults_to_true_and_is_a_boolean(pki_dir: Path) -> None:
    link = (
        '\n[sep2]\ndcap = "https://127.0.0.1:1/dcap"\ncert = "pki/gateway.pem"\n'
        'key = "pki/gateway.key"\nserca = "pki/serca.pem"\n[sep2.notify]\nport = 8444\n'
    )
    on = _load(pki_dir, HOME + link).sep2
    assert on is not None
    assert on.notify is not None
    assert on.notify.require_certificate is True
    off = _load(pki_dir, HOME + link + "require_certificate = false\n").sep2
    assert off is not None
    assert off.notify is not None
    assert off.notify.require_certificate is False
    problems = _problems(pki_dir, HOME + link + 'require_certificate = "no"\n')
    assert any("require_certificate" in p for p in problems), problems


def test_the_committed_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "site.schema.json").read_text(encoding="utf-8")
    assert committed == render_schema(), (
        "run: gateway check-config --schema > schemas/site.schema.json"
    )


_LINK = (
    '\n[sep2]\ndcap = "https://127.0.0.1:1/dcap"\ncert = "pki/gateway.pem"\n'
    'key = "pki/gateway.key"\nserca = "pki/serca.pem"\nregister = true\n'
)


def test_the_end_device_category_is_one_bit_per_kind_of_der_unless_configured(
    pki_dir: Path,
) -> None:
    """DRA-01 wants an EndDevice deviceCategory: the V2H home is an EVSE (bit 17), with PV
    (bit 21); ``[sep2] device_category`` sets it instead (hex, bits 0-25)."""
    assert identity_of(_load(pki_dir, HOME + _LINK)).device_category == "00020000"
    assert identity_of(_load(pki_dir, HOME + PV + _LINK)).device_category == "00220000"
    set_by_hand = _load(pki_dir, HOME + PV + _LINK + 'device_category = "0x4000"\n')
    assert identity_of(set_by_hand).device_category == "00004000"


def test_a_device_category_beyond_bit_25_or_not_hex_is_refused(pki_dir: Path) -> None:
    for bad in ("04000000", "EVSE", "", "123456789"):
        problems = _problems(pki_dir, HOME + _LINK + f'device_category = "{bad}"\n')
        assert any(":sep2.device_category: " in p and "bits 0-25" in p for p in problems), (
            bad,
            problems,
        )
