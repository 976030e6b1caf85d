"""Telemetry builders and Response posts: what ALL-07/08/09/12 check, valid against the XSD."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from gateway.core.backfeed import DerRating
from gateway.core.controls import ControlSet, Mode
from gateway.core.engine import Engine
from gateway.demo.evening import demo_site
from gateway.north.sep2 import codec
from gateway.north.sep2.adapter import dispatched
from gateway.north.sep2.der_resources import (
    ApparentPower,
    ConnectStatus,
    DERCapability,
    DERSettings,
    DOEModes,
    OperationalMode,
    PowerFactor,
    ReactivePower,
    VPPModes,
)
from gateway.north.sep2.model import Response
from gateway.north.sep2.responses import Outcome, outcome, response_post
from gateway.north.sep2.telemetry import (
    DerAlarm,
    SiteRatings,
    SiteState,
    alarm_changes,
    alarm_log_event,
    der_availability,
    der_capability,
    der_settings,
    der_status,
    lowers,
    modes_supported,
)
from gateway.north.sep2.xml import CSIPAUS_NS, CSIPAUS_NS_V13_BETA, with_csipaus_ns

if TYPE_CHECKING:
    from conftest import SepSchemas

T0 = 1_764_072_000
RATINGS = SiteRatings(
    max_discharge_w=9600, max_charge_w=11000, backup_reserve_pct=20, capacity_wh=60_000
)
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


def state(**kw: object) -> SiteState:
    base: dict[str, object] = {
        "at": T0,
        "grid_connected": True,
        "connect_changed_at": T0 - 100,
        "der_w": 3000.0,
        "soc_pct": 64.25,
        "ev_connected": True,
    }
    base.update(kw)
    return SiteState(**base)  # type: ignore[arg-type]


def test_connected_and_exporting_sets_bits_0_to_2_and_operational() -> None:
    s = der_status(state())
    assert s.genConnectStatus is not None
    assert s.genConnectStatus.value == (
        ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE | ConnectStatus.OPERATING
    )
    assert s.genConnectStatus.dateTime == T0 - 100  # when it changed, not when it was read
    assert s.operationalModeStatus is not None
    assert s.operationalModeStatus.value == OperationalMode.OPERATIONAL
    assert s.stateOfChargeStatus is not None
    assert s.stateOfChargeStatus.value == 6425


def test_islanded_clears_bits_0_to_2_and_is_off() -> None:
    """ALL-12 / ALL-27: opModConnect=false -> the relay is open -> bits 0-2 clear."""
    s = der_status(state(grid_connected=False))
    assert s.genConnectStatus is not None
    assert s.genConnectStatus.value & 0b111 == 0
    assert s.operationalModeStatus is not None
    assert s.operationalModeStatus.value == OperationalMode.OFF


def test_held_at_0_w_by_a_control_is_still_operating() -> None:
    """ALL-11 / ALL-12: a DER held at 0 W by a control (the 0 W import and export default) is
    carrying it out, so Operating (bit 2) stays set; with no control and no power, it is clear;
    told to cease to energize, clear whatever holds it."""
    held = der_status(state(der_w=0.0, dispatched=True))
    assert held.genConnectStatus is not None
    assert held.genConnectStatus.value == (
        ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE | ConnectStatus.OPERATING
    )
    idle = der_status(state(der_w=0.0))
    assert idle.genConnectStatus is not None
    assert idle.genConnectStatus.value == ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE
    off = der_status(state(der_w=0.0, dispatched=True, energized=False))
    assert off.genConnectStatus is not None
    assert not off.genConnectStatus.value & ConnectStatus.OPERATING


def test_dispatched_is_a_limit_or_setpoint_beyond_the_site_policy() -> None:
    policy = ControlSet(export_limit_w=10_000.0)
    assert not dispatched(ControlSet(), policy)
    assert not dispatched(ControlSet(export_limit_w=10_000.0), policy)  # the agreement alone
    assert not dispatched(ControlSet(energize=True, ramp_rate_pct_s=0.27), policy)
    assert dispatched(ControlSet(export_limit_w=0.0, import_limit_w=0.0), policy)
    assert dispatched(ControlSet(export_limit_w=10_000.0, import_limit_w=0.0), policy)
    assert dispatched(ControlSet(storage_target_w=-3000.0), policy)


def test_fault_sets_bit_4_and_not_available() -> None:
    s = der_status(state(fault=True))
    assert s.genConnectStatus is not None
    assert s.genConnectStatus.value == ConnectStatus.CONNECTED | ConnectStatus.FAULT


def test_no_ev_means_no_soc_and_no_discharge_available() -> None:
    s = der_status(state(ev_connected=False))
    assert s.stateOfChargeStatus is None
    assert s.storConnectStatus is not None
    assert s.storConnectStatus.value == 0
    avail = der_availability(state(ev_connected=False), RATINGS)
    assert avail.statWAvail is not None
    assert avail.statWAvail.watts == 0


def test_availability_respects_the_backup_reserve() -> None:
    assert der_availability(state(soc_pct=64), RATINGS).statWAvail.watts == 9600  # type: ignore[union-attr]
    assert der_availability(state(soc_pct=19), RATINGS).statWAvail.watts == 0  # type: ignore[union-attr]
    assert der_availability(state(), RATINGS).reservePercent == 2000


def test_capability_advertises_only_supported_modes() -> None:
    cap = der_capability(RATINGS, [Mode.CONNECT, Mode.EXPORT_LIMIT_W, Mode.LOAD_LIMIT_W])
    assert cap.doeModesSupported == DOEModes.EXP_LIM_W | DOEModes.LOAD_LIM_W
    assert cap.modesSupported == modes_supported([Mode.CONNECT])
    assert cap.modesSupported & (1 << 2)  # opModConnect
    assert not cap.modesSupported & (1 << 3)  # opModEnergize not supported here
    assert cap.rtgMaxW.watts == 9600  # output capability: the discharge rate, not the charge


@pytest.mark.parametrize(
    "resource",
    [
        der_capability(RATINGS, tuple(Mode)),
        der_settings(RATINGS, tuple(Mode), at=T0),
        der_status(state()),
        der_status(state(grid_connected=False, ev_connected=None, soc_pct=None)),
        der_status(state(alarms=int(DerAlarm.UNDER_VOLTAGE | DerAlarm.LOCAL_EMERGENCY))),
        der_availability(state(), RATINGS),
        alarm_log_event(DerAlarm.LOCAL_EMERGENCY, raised=True, at=T0, event_id=70_000),
    ],
    ids=[
        "capability",
        "settings",
        "status",
        "status-islanded",
        "status-alarms",
        "availability",
        "log-event",
    ],
)
def test_every_telemetry_body_is_schema_valid(resource: object, sep_schema: SepSchemas) -> None:
    body = codec.encode(resource)  # type: ignore[arg-type]
    sep_schema.assert_valid(body)
    assert codec.decode(body) == resource


def test_response_post_is_in_server_time_for_our_lfdi(sep_schema: SepSchemas) -> None:
    doc = {"subject": "00" * 16, "code": 2, "at": T0 + 0.7, "reply_to": "/rsps/1/rsp"}
    post = response_post(doc, lfdi=LFDI.lower())
    assert post is not None
    assert post.href == "/rsps/1/rsp"
    sep_schema.assert_valid(post.body)
    assert codec.decode(post.body) == Response(
        endDeviceLFDI=LFDI, subject="00" * 16, status=2, createdDateTime=T0
    )
    assert response_post({**doc, "reply_to": None}, lfdi=LFDI) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (201, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (429, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.REFUSED),
        (404, Outcome.REFUSED),
    ],
)
def test_outcome_of_each_status(status: int, expected: Outcome) -> None:
    assert outcome(status) is expected


def test_us_csip_profile_writes_no_csip_aus_elements(sep_schema: SepSchemas) -> None:
    cap = der_capability(RATINGS, tuple(Mode), csipaus=False)
    settings = der_settings(RATINGS, tuple(Mode), at=T0, csipaus=False)
    for resource in (cap, settings):
        body = codec.encode(resource)
        assert b"csipaus" not in body
        assert not sep_schema.errors(body, year=2023)


def test_alarm_changes_name_each_bit_that_moved_and_the_codes_pair_up() -> None:
    before = int(DerAlarm.UNDER_VOLTAGE | DerAlarm.UNDER_FREQUENCY)
    after = int(DerAlarm.UNDER_FREQUENCY | DerAlarm.LOCAL_EMERGENCY)
    assert alarm_changes(before, after) == [
        (DerAlarm.UNDER_VOLTAGE, False),
        (DerAlarm.LOCAL_EMERGENCY, True),
    ]
    assert alarm_changes(after, after) == []  # an alarm in force is not reported again
    raised = alarm_log_event(DerAlarm.LOCAL_EMERGENCY, raised=True, at=T0, event_id=1)
    normal = alarm_log_event(DerAlarm.UNDER_VOLTAGE, raised=False, at=T0, event_id=2)
    assert (raised.logEventCode, normal.logEventCode) == (14, 5)
    assert raised.details == "local emergency"
    assert (
        alarm_log_event(DerAlarm.OVER_CURRENT, raised=True, at=T0, event_id=65_537).logEventID == 1
    )


# ---------------------------------------------------------------- CSIP-AUS 1.3 storage (STO-02/05)


def _beta(resource: DERCapability | DERSettings) -> bytes:
    """``resource`` as a client speaking to a 1.3-beta/storage server sends it."""
    return with_csipaus_ns(codec.encode(resource), CSIPAUS_NS_V13_BETA)


def test_STO_02_storage_elements_are_valid_in_the_1_3_beta_storage_namespace(
    sep_schema: SepSchemas,
) -> None:
    """vppModesSupported (DERCapability), vppModesEnabled and setMinWh (DERSettings), after
    the DOE bits as the core XSD's extensions order them; read back as written."""
    cap = der_capability(RATINGS, tuple(Mode), storage=True)
    settings = der_settings(RATINGS, tuple(Mode), at=T0, storage=True)
    assert cap.vppModesSupported == VPPModes.STORAGE_TARGET_W
    assert settings.vppModesEnabled == VPPModes.STORAGE_TARGET_W
    assert settings.setMinWh is not None
    assert settings.setMinWh.watts == 0.20 * 60_000  # the backup reserve of the capacity
    for resource in (cap, settings):
        body = _beta(resource)
        assert CSIPAUS_NS_V13_BETA.encode() in body
        assert CSIPAUS_NS.encode() + b'"' not in body  # the 1.2 URI is not declared
        sep_schema.assert_valid(body, storage=True)
        assert codec.decode(body) == resource
    body = _beta(settings)
    order = [body.index(b"csipaus:" + n) for n in (b"doeModes", b"vppModes", b"setMinWh")]
    assert order == sorted(order)


def test_STO_02_no_storage_target_no_vpp_bit_and_no_capacity_no_set_min_wh(
    sep_schema: SepSchemas,
) -> None:
    modes = tuple(m for m in Mode if m is not Mode.STORAGE_TARGET_W)
    unknown = replace(RATINGS, capacity_wh=None)
    cap = der_capability(unknown, modes, storage=True)
    settings = der_settings(unknown, modes, at=T0, storage=True)
    assert cap.vppModesSupported == VPPModes(0)
    assert settings.vppModesEnabled == VPPModes(0)
    assert settings.setMinWh is None
    assert settings.setMaxWh is None
    for resource in (cap, settings):
        sep_schema.assert_valid(_beta(resource), storage=True)


def test_STO_02_the_1_2_namespace_has_no_storage_elements(sep_schema: SepSchemas) -> None:
    """1.2's schema rejects vppModes* / setMinWh, so a 1.2 session writes none of them."""
    for storage in (True, False):
        cap = der_capability(RATINGS, tuple(Mode), storage=storage)
        settings = der_settings(RATINGS, tuple(Mode), at=T0, storage=storage)
        for resource in (cap, settings):
            body = codec.encode(resource)
            if storage:
                assert sep_schema.errors(body), body.decode()  # what the schema refuses
            else:
                assert b"vppModes" not in body
                assert b"setMinWh" not in body
                sep_schema.assert_valid(body)


def test_us_csip_profile_writes_no_csip_aus_elements_even_to_a_1_3_server(
    sep_schema: SepSchemas,
) -> None:
    cap = der_capability(RATINGS, tuple(Mode), csipaus=False, storage=True)
    settings = der_settings(RATINGS, tuple(Mode), at=T0, csipaus=False, storage=True)
    for resource in (cap, settings):
        body = codec.encode(resource)
        assert b"csipaus" not in body
        assert not sep_schema.errors(body, year=2023)


def test_a_vpp_bitmap_out_of_hex_binary_8_is_refused() -> None:
    body = _beta(der_capability(RATINGS, tuple(Mode), storage=True))
    bad = body.replace(b"<csipaus:vppModesSupported>01<", b"<csipaus:vppModesSupported>1FF<")
    assert bad != body
    with pytest.raises(codec.Sep2ValueError, match="vppModesSupported"):
        codec.decode(bad)


# ---------------------------------------------------------------- MUL-03 step d: the aggregate


def _aggregate_is(
    ratings: SiteRatings, total: float, *, discharge: float, charge: float
) -> DERSettings:
    """Assert DERCapability/DERSettings carry ``total`` as rtgMaxW/setMaxW and the storage's
    rates; the settings, for more checks."""
    cap = der_capability(ratings, tuple(Mode), storage=True)
    settings = der_settings(ratings, tuple(Mode), at=T0, storage=True)
    assert cap.rtgMaxW.watts == settings.setMaxW.watts == total
    assert cap.rtgMaxDischargeRateW is not None
    assert cap.rtgMaxChargeRateW is not None
    assert (cap.rtgMaxDischargeRateW.watts, cap.rtgMaxChargeRateW.watts) == (discharge, charge)
    return settings


def test_MUL_03_the_aggregate_rating_is_every_ders_generation_and_the_ramps_reference() -> None:
    """rtgMaxW / setMaxW: the charger's discharge plus the PV's nameplate; the storage rates
    stay the charger's; the engine's setGradW reference (% of the DER rating per second) is
    the same total, so a ramp the utility computes from setMaxW is the one applied."""
    site = replace(
        demo_site(),
        ders=(
            DerRating("pv", "pv", max_discharge_w=5_000),
            DerRating("pv2", "pv", max_discharge_w=3_000),
            DerRating(
                "ev", "charger", max_discharge_w=7_000, max_charge_w=11_000, capacity_wh=80_000
            ),
        ),
        charger_id="ev",
        backup_reserve_soc_pct=25.0,
    )
    ratings = SiteRatings.of_site(site)
    settings = _aggregate_is(ratings, 15_000, discharge=7_000, charge=11_000)
    assert settings.setMinWh is not None
    assert settings.setMinWh.watts == 20_000  # 25 % of 80 kWh
    engine = Engine(site, draw=lambda bound: 0)
    assert engine._rated_w == ratings.rtg_max_w  # what ramp_rate_pct_s is a percentage of


@pytest.mark.parametrize("storage", [False, True])
def test_STO_05_ranges_hold_for_the_demo_site(storage: bool, sep_schema: SepSchemas) -> None:
    ratings = SiteRatings.of_site(demo_site())
    cap = der_capability(ratings, tuple(Mode), storage=storage)
    settings = der_settings(ratings, tuple(Mode), at=T0, storage=storage)
    assert cap.rtgMaxChargeRateW is not None
    assert cap.rtgMaxDischargeRateW is not None
    assert cap.rtgMaxWh is not None
    assert settings.setMaxChargeRateW is not None
    assert settings.setMaxDischargeRateW is not None
    assert settings.setMaxWh is not None
    assert 0 < settings.setMaxW.watts <= cap.rtgMaxW.watts
    assert 0 < settings.setMaxWh.watts <= cap.rtgMaxWh.watts
    assert cap.rtgMaxChargeRateW.watts > 0
    assert cap.rtgMaxDischargeRateW.watts > 0
    assert 0 < settings.setMaxChargeRateW.watts <= cap.rtgMaxChargeRateW.watts
    assert 0 < settings.setMaxDischargeRateW.watts <= cap.rtgMaxDischargeRateW.watts
    assert_sto_05_va_var_pf_ranges(cap, settings)
    if storage:
        assert settings.setMinWh is not None
        assert 0 <= settings.setMinWh.watts <= settings.setMaxWh.watts
        sep_schema.assert_valid(_beta(settings), storage=True)
        sep_schema.assert_valid(_beta(cap), storage=True)
    else:
        sep_schema.assert_valid(codec.encode(settings))
        sep_schema.assert_valid(codec.encode(cap))


def test_MUL_03_step_d_the_ratings_follow_the_ders_in_force_never_above_configured() -> None:
    """The aggregate rtgMaxW / setMaxW are the DER's ratings in force (the engine's: min of
    the configured and the device's own); the storage's discharge and charge rates are its
    own, its capacity stays configured; nothing rises above the configured ratings."""
    ratings = SiteRatings.of_site(demo_site())  # PV 7 kW + EV 9.6 kW
    assert ratings.with_rated({}, "ev") == ratings
    lower = ratings.with_rated({"pv": 5_000, "ev": 7_400}, "ev")
    _aggregate_is(lower, 12_400, discharge=7_400, charge=9_600)
    assert lower.capacity_wh == ratings.capacity_wh
    higher = ratings.with_rated({"pv": 9_000, "ev": 20_000}, "ev")
    assert (higher.rtg_max_w, higher.max_discharge_w) == (16_600, 9_600)
    # The storage's charge rate follows its own charge rating, never above the configured one.
    charged = ratings.with_rated({"pv": 5_000, "ev": 7_400}, "ev", charge={"ev": 6_000, "pv": 0})
    _aggregate_is(charged, 12_400, discharge=7_400, charge=6_000)
    assert ratings.with_rated({}, "ev", charge={"ev": 6_000}).max_charge_w == 6_000
    assert ratings.with_rated({}, "ev", charge={"ev": 20_000}).max_charge_w == 9_600


def test_STO_05_lowers_names_a_lower_bound_of_any_setting_and_nothing_else() -> None:
    """Which of the DERSettings/DERCapability PUTs goes first (the client): settings first
    when any rating that bounds a setting went down."""
    ratings = SiteRatings.of_site(demo_site())
    assert not lowers(ratings, None)  # nothing PUT yet
    assert not lowers(ratings, ratings)
    assert lowers(ratings.with_rated({"pv": 5_000}, "ev"), ratings)  # rtgMaxW
    assert lowers(ratings.with_rated({}, "ev", charge={"ev": 6_000}), ratings)  # charge rate
    assert lowers(ratings.with_rated({"ev": 7_400}, "ev"), ratings)  # discharge rate, rtgMaxW
    assert not lowers(ratings, ratings.with_rated({"pv": 5_000}, "ev"))  # back up: a rise
    assert not lowers(replace(ratings, set_grad_w=5), ratings)  # not a rating


# ---------------------------------------------------------------- STO-02/05: VA, var and PF


def _va(p: ApparentPower | None) -> float:
    assert p is not None
    return p.amount


def _var(p: ReactivePower | None) -> float:
    assert p is not None
    return p.amount


def _pf(p: PowerFactor | None) -> float:
    assert p is not None
    return p.ratio


def assert_sto_05_va_var_pf_ranges(cap: DERCapability, settings: DERSettings) -> None:
    """STO-02: every VA/var/PF rating and setting present; STO-05: setMaxVA <= rtgMaxVA,
    setMaxVar <= rtgMaxVar, setMaxVarNeg >= rtgMaxVarNeg (both <= 0, 2030.5's sign),
    setMinPF* >= rtgMinPF*, every PF in (0, 1], and no less VA than W."""
    assert 0 < _va(settings.setMaxVA) <= _va(cap.rtgMaxVA)
    assert 0 <= _var(settings.setMaxVar) <= _var(cap.rtgMaxVar)
    assert _var(cap.rtgMaxVarNeg) <= _var(settings.setMaxVarNeg) <= 0
    assert 0 < _pf(cap.rtgMinPFOverExcited) <= _pf(settings.setMinPFOverExcited) <= 1
    # Under-excited "SHALL be a positive value between 0.0 and 0.9999" (over-excited: 1.0).
    assert 0 < _pf(cap.rtgMinPFUnderExcited) <= _pf(settings.setMinPFUnderExcited) <= 0.9999
    assert _va(cap.rtgMaxVA) >= cap.rtgMaxW.watts
    assert _var(cap.rtgMaxVar) <= _va(cap.rtgMaxVA)


def _both(ratings: SiteRatings, **kw: bool) -> tuple[DERCapability, DERSettings]:
    cap = der_capability(ratings, tuple(Mode), **kw)
    return cap, der_settings(ratings, tuple(Mode), at=T0, **kw)


def test_STO_02_an_unconfigured_site_reports_a_unity_power_factor_der() -> None:
    """No nameplate configured: VA = each DER's larger W rating, summed (PV 7 kW + the EV's
    9.6 kW); no var either way; minimum PF 1.0 both ways; the settings equal the ratings."""
    cap, settings = _both(SiteRatings.of_site(demo_site()))
    assert _va(cap.rtgMaxVA) == _va(settings.setMaxVA) == 16_600
    assert _var(cap.rtgMaxVar) == _var(settings.setMaxVar) == 0
    assert _var(cap.rtgMaxVarNeg) == _var(settings.setMaxVarNeg) == 0
    unity, under = PowerFactor(1000, -3), PowerFactor(9999, -4)  # under-excited: at most 0.9999
    assert cap.rtgMinPFOverExcited == settings.setMinPFOverExcited == unity
    assert cap.rtgMinPFUnderExcited == settings.setMinPFUnderExcited == under
    # A SiteRatings built without a site (no VA): the larger of rtgMaxW and the charge rate.
    assert _va(der_capability(RATINGS, ()).rtgMaxVA) == 11_000


NAMEPLATED = (
    DerRating(
        "pv", "pv", max_discharge_w=7_000, max_va=7_500, max_var=3_000, min_pf_over_excited=0.9
    ),
    DerRating(
        "ev",
        "charger",
        max_discharge_w=9_600,
        max_charge_w=9_600,
        capacity_wh=60_000,
        max_va=10_000,
        max_var=4_400,
        max_var_neg=4_000,
        min_pf_over_excited=0.95,
        min_pf_under_excited=0.85,
    ),
)


def test_STO_02_configured_nameplates_aggregate_va_and_var_summed_pf_the_smallest() -> None:
    """VA 7.5 + 10 kVA; var delivered 3 + 4.4 kvar; var received the PV's default (its var
    delivered, 3 kvar) + the EV's 4 kvar, written negative; minimum PF over-excited
    min(0.9, 0.95), under-excited min(the PV's default = its over-excited 0.9, 0.85)."""
    site = replace(demo_site(), ders=NAMEPLATED)
    assert not site.problems()
    ratings = SiteRatings.of_site(site)
    cap, settings = _both(ratings)
    assert _va(cap.rtgMaxVA) == _va(settings.setMaxVA) == 17_500
    assert _var(cap.rtgMaxVar) == _var(settings.setMaxVar) == 7_400
    assert _var(cap.rtgMaxVarNeg) == _var(settings.setMaxVarNeg) == -7_000
    assert _pf(cap.rtgMinPFOverExcited) == _pf(settings.setMinPFOverExcited) == 0.9
    assert _pf(cap.rtgMinPFUnderExcited) == _pf(settings.setMinPFUnderExcited) == 0.85
    assert_sto_05_va_var_pf_ranges(cap, settings)


@pytest.mark.parametrize("profile", ["csip-aus-1.2", "csip-aus-1.3-beta-storage", "csip-us"])
@pytest.mark.parametrize("ders", ["default", "nameplated"])
def test_STO_02_va_var_pf_elements_are_schema_valid_in_every_profile_and_read_back(
    profile: str, ders: str, sep_schema: SepSchemas
) -> None:
    """Plain 2030.5 elements, in the XSD's order (between the W/Wh ratings), so every profile
    writes them: CSIP-AUS 1.2 and 1.3-beta/storage, and US CSIP (2030.5-2023)."""
    site = demo_site() if ders == "default" else replace(demo_site(), ders=NAMEPLATED)
    ratings = SiteRatings.of_site(site)
    storage = profile == "csip-aus-1.3-beta-storage"
    csipaus = profile != "csip-us"
    for resource in _both(ratings, csipaus=csipaus, storage=storage):
        body = _beta(resource) if storage else codec.encode(resource)
        if storage:
            sep_schema.assert_valid(body, storage=True)
        elif csipaus:
            sep_schema.assert_valid(body)
        else:
            assert not sep_schema.errors(body, year=2023)
        assert codec.decode(body) == resource
        prefix = b"<rtg" if isinstance(resource, DERCapability) else b"<set"
        for name in (b"MaxVA", b"MaxVar", b"MaxVarNeg", b"MinPFOverExcited", b"MinPFUnderExcited"):
            assert prefix + name + b">" in body, name


def test_a_var_received_rating_written_positive_is_refused() -> None:
    cap, settings = _both(replace(RATINGS, max_var=1_000, max_var_neg=1_000, max_va=12_000))
    body = codec.encode(cap)
    assert b"<rtgMaxVarNeg><multiplier>0</multiplier><value>-1000</value>" in body
    bad = body.replace(
        b"<value>-1000</value></rtgMaxVarNeg>", b"<value>1000</value></rtgMaxVarNeg>"
    )
    assert bad != body
    with pytest.raises(codec.Sep2ValueError, match="rtgMaxVarNeg"):
        codec.decode(bad)
    with pytest.raises(codec.Sep2ValueError, match="setMaxVar"):
        codec.encode(replace(settings, setMaxVar=ReactivePower(value=-1)))


@pytest.mark.parametrize(("displacement", "multiplier"), [(0, -3), (1001, -3), (2, 0), (65535, -4)])
def test_a_power_factor_outside_0_to_1_is_refused(displacement: int, multiplier: int) -> None:
    cap = der_capability(RATINGS, ())
    bad = replace(cap, rtgMinPFOverExcited=PowerFactor(displacement, multiplier))
    with pytest.raises(codec.Sep2ValueError, match="rtgMinPFOverExcited"):
        codec.encode(bad)


def test_apparent_power_is_uint16_so_40_kva_keeps_whole_va() -> None:
    """ApparentPower's value is UInt16 (ActivePower's Int16 would need a multiplier)."""
    assert ApparentPower.from_amount(40_000) == ApparentPower(40_000, 0)
    assert ApparentPower.from_amount(70_000) == ApparentPower(7_000, 1)
    assert ReactivePower.from_amount(-40_000) == ReactivePower(-4_000, 1)
    assert PowerFactor.from_ratio(0.95) == PowerFactor(950, -3)
    with pytest.raises(ValueError, match="power factor"):
        PowerFactor.from_ratio(1.01)
    cap = replace(der_capability(RATINGS, ()), rtgMaxVA=ApparentPower(40_000, 0))
    assert codec.decode(codec.encode(cap)) == cap
    bad = codec.encode(cap).replace(b"<value>40000</value>", b"<value>70000</value>")
    with pytest.raises(codec.Sep2ValueError, match="rtgMaxVA"):
        codec.decode(bad)
