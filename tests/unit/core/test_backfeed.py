"""Example tests for the backfeed coordinator: the numbers an installer would check by hand."""

from __future__ import annotations

import math

import pytest

from gateway.core.backfeed import (
    Allocation,
    Bound,
    DerCap,
    DerOutput,
    DerRating,
    Limits,
    MeterReading,
    PanelRating,
    allocate,
)
from gateway.core.controls import ControlSet

NOW = 1_000_000.0
MAX_AGE = 5.0
P200 = PanelRating(busbar_a=200, main_breaker_a=200)
P100 = PanelRating(busbar_a=100, main_breaker_a=100)
EV = DerRating("ev", "charger", max_discharge_w=11_500, max_charge_w=11_500)
PV = DerRating("pv", "pv", max_discharge_w=10_000, max_charge_w=0)
BAT = DerRating("bat", "battery", max_discharge_w=5_000, max_charge_w=5_000)
HOME = (EV, PV, BAT)
# Enough DER to show what the panel itself allows (4 x 15 kW = 250 A at 240 V).
BIG = tuple(DerRating(f"b{i}", "battery", 15_000, 15_000) for i in range(4))


def outputs(ders: tuple[DerRating, ...], at: float = NOW, **power: float) -> dict[str, DerOutput]:
    return {d.der_id: DerOutput(d.der_id, at, power.get(d.der_id, 0.0)) for d in ders}


def meter(
    load_w: float,
    outs: dict[str, DerOutput],
    at: float = NOW,
    v: float | None = 240.0,
    panel: PanelRating = P200,
) -> MeterReading:
    """A balanced meter reading consistent with ``load_w`` of non-DER load and ``outs``."""
    net = load_w - sum(o.power_w for o in outs.values())
    amps = abs(net) / (v or panel.nominal_voltage_v)
    return MeterReading(at, net, dict.fromkeys(panel.phases, amps), v)


def run(
    panel: PanelRating = P200,
    ders: tuple[DerRating, ...] = HOME,
    load_w: float = 0.0,
    limits: Limits = Limits(),  # noqa: B008 - frozen value
    *,
    now: float = NOW,
    **power: float,
) -> Allocation:
    outs = outputs(ders, **power)
    return allocate(panel, ders, meter(load_w, outs, panel=panel), outs, limits, now, MAX_AGE)


def discharge(a: Allocation) -> list[float]:
    return [c.max_discharge_w for c in a.caps]


def charge(a: Allocation) -> list[float]:
    return [c.max_charge_w for c in a.caps]


# --- the static 120 % rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busbar", "main", "amps", "watts"),
    [(200, 200, 40.0, 9_600.0), (100, 100, 20.0, 4_800.0), (225, 200, 70.0, 16_800.0)],
)
def test_static_allowance_is_the_120_percent_rule(busbar, main, amps, watts):
    panel = PanelRating(busbar_a=busbar, main_breaker_a=main)
    assert panel.problems() == []
    assert panel.static_limit_a == amps
    assert panel.static_allowance_w == watts


def test_installer_override_replaces_the_rule():
    panel = PanelRating(busbar_a=200, main_breaker_a=200, static_allowance_a=30)
    assert panel.static_allowance_w == 7_200.0
    a = allocate(panel, HOME, None, {}, Limits(), NOW, MAX_AGE)
    assert a.allowance_w == 7_200.0
    assert "installer's static allowance of 7200 W" in a.reasons[0]


def test_rule_never_negative():
    assert PanelRating(busbar_a=100, main_breaker_a=100, busbar_margin=0.5).static_limit_a == 20
    assert PanelRating(busbar_a=150, main_breaker_a=150).rule_allowance_a == 30.0


@pytest.mark.parametrize(
    ("panel", "fragment"),
    [
        (PanelRating(busbar_a=0, main_breaker_a=100), "busbar_a must be a positive number"),
        (PanelRating(busbar_a=math.nan, main_breaker_a=100), "busbar_a"),
        (PanelRating(busbar_a=100, main_breaker_a=-1), "main_breaker_a"),
        (PanelRating(busbar_a=100, main_breaker_a=125), "does not protect the busbar"),
        (PanelRating(200, 200, nominal_voltage_v=0.24), "check the unit"),
        (PanelRating(200, 200, phases=()), "phases"),
        (PanelRating(200, 200, phases=("L1", "L1")), "phases"),
        (PanelRating(200, 200, static_allowance_a=-5), "static_allowance_a"),
        (PanelRating(200, 200, static_allowance_a=300), "exceeds 120 %"),
        (PanelRating(200, 200, busbar_margin=0.0), "busbar_margin"),
        (PanelRating(200, 200, busbar_margin=1.5), "busbar_margin"),
        (PanelRating(200, 200, busbar_margin=math.nan), "busbar_margin"),
        (PanelRating(200, 200, coordinated="false"), "coordinated"),  # type: ignore[arg-type]
    ],
)
def test_panel_problems(panel, fragment):
    problems = panel.problems()
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("der", "fragment"),
    [
        (DerRating("pv", "pv", 5_000, 1_000), "cannot charge"),
        (DerRating("x", "wind", 5_000, 0), "kind"),
        (DerRating("x", "battery", -1, 0), "max_discharge_w"),
        (DerRating("x", "battery", 5_000, math.nan), "max_charge_w"),
        (DerRating("", "battery", 5_000, 0), "der_id"),
    ],
)
def test_der_problems(der, fragment):
    assert any(fragment in p for p in der.problems())
    assert DerRating("ok", "battery", 5_000, 5_000).problems() == []


# --- stale or missing data: the static allowance --------------------------------------------


def test_no_meter_falls_back_to_static_9600_w():
    a = allocate(P200, HOME, None, outputs(HOME), Limits(), NOW, MAX_AGE)
    assert a.stale
    assert a.allowance_w == 9_600.0
    assert a.static_allowance_w == 9_600.0
    assert a.binding is Bound.STATIC_ALLOWANCE
    assert discharge(a) == [9_600.0, 0.0, 0.0]  # the EV is first in the order
    assert a.site_load_w is None
    assert a.reasons[0] == "no meter data: falling back to the static 120 % allowance of 9600 W"


def test_old_meter_data_falls_back_with_a_readable_reason():
    outs = outputs(HOME)
    a = allocate(P200, HOME, meter(0.0, outs, at=NOW - 12.0), outs, Limits(), NOW, MAX_AGE)
    assert a.stale
    assert a.allowance_w == 9_600.0
    assert a.reasons[0] == (
        "meter data 12.0 s old (max 5 s): falling back to the static 120 % allowance of 9600 W"
    )


def test_meter_data_from_the_future_is_not_trusted():
    outs = outputs(HOME)
    a = allocate(P200, HOME, meter(0.0, outs, at=NOW + 3.0), outs, Limits(), NOW, MAX_AGE)
    assert a.stale
    assert "in the future" in a.reasons[0]


def test_100_100_panel_falls_back_to_4800_w():
    a = allocate(P100, BIG, None, {}, Limits(), NOW, MAX_AGE)
    assert a.allowance_w == 4_800.0
    assert discharge(a) == [4_800.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda m, o: (m, {**o, "pv": DerOutput("pv", NOW - 8.0, 0.0)}), "output of pv 8.0 s old"),
        (
            lambda m, o: (m, {k: v for k, v in o.items() if k != "bat"}),
            "no output reading from bat",
        ),
        (lambda m, o: (m, {**o, "ev": DerOutput("ev", NOW, math.nan)}), "output of ev is nan"),
        (lambda m, o: (m, {**o, "pv": DerOutput("pv", NOW, 15_000.0)}), "beyond its rating"),
        (lambda m, o: (m, {**o, "pv": DerOutput("ev", NOW, 0.0)}), "no output reading from pv"),
        (
            lambda m, o: (MeterReading(m.at, math.nan, m.phase_current_a, 240.0), o),
            "net power",
        ),
        (lambda m, o: (MeterReading(m.at, 0.0, {"L1": 3.0}, 240.0), o), "current on L2"),
        (lambda m, o: (MeterReading(m.at, 0.0, {"L1": 3.0, "L2": -1.0}, None), o), "L2"),
        (lambda m, o: (MeterReading(m.at, 0.0, m.phase_current_a, 0.0), o), "voltage"),
    ],
)
def test_unknown_or_contradictory_data_falls_back_to_static(mutate, fragment):
    outs = outputs(HOME)
    m, outs = mutate(meter(2_000.0, outs), outs)
    a = allocate(P200, HOME, m, outs, Limits(), NOW, MAX_AGE)
    assert a.stale
    assert a.allowance_w == 9_600.0
    assert fragment in a.reasons[0]
    assert "falling back to the static 120 % allowance of 9600 W" in a.reasons[0]


def test_stale_allowance_is_capped_by_export_limit_as_if_no_load():
    a = allocate(P200, HOME, None, {}, Limits(export_limit_w=3_000), NOW, MAX_AGE)
    assert (a.allowance_w, a.binding) == (3_000.0, Bound.EXPORT_LIMIT)
    a = allocate(P200, HOME, None, {}, Limits(generation_limit_w=5_000), NOW, MAX_AGE)
    assert (a.allowance_w, a.binding) == (5_000.0, Bound.GENERATION_LIMIT)


def test_stale_data_cannot_verify_an_import_limit_so_no_charging():
    a = allocate(P200, HOME, None, {}, Limits(import_limit_w=10_000), NOW, MAX_AGE)
    assert charge(a) == [0.0, 0.0, 0.0]
    assert a.charge_binding is Bound.IMPORT_LIMIT
    # Without an import limit, stale data still allows charging (the breakers protect).
    a = allocate(P200, HOME, None, {}, Limits(load_limit_w=12_000), NOW, MAX_AGE)
    assert charge(a) == [11_500.0, 0.0, 500.0]


def test_duplicate_der_id_is_contradictory():
    ders = (EV, DerRating("ev", "battery", 5_000, 5_000), PV)
    outs = outputs(ders)
    a = allocate(P200, ders, meter(0.0, outs), outs, Limits(), NOW, MAX_AGE)
    assert a.stale
    assert discharge(a) == [0.0, 0.0, 9_600.0]
    assert a.caps[0].discharge_binding is Bound.DUPLICATE_ID


# --- fresh data, coordinated panel: the 705.13 effect ---------------------------------------


def test_coordinated_200_200_panel_allows_200_a_not_40_a():
    a = run(P200, BIG)
    assert not a.stale
    assert a.static_allowance_w == 9_600.0  # 40 A
    assert a.allowance_w == 48_000.0  # 200 A through the main breaker
    assert a.binding is Bound.MAIN_BREAKER
    assert discharge(a) == [15_000.0, 15_000.0, 15_000.0, 3_000.0]


def test_coordinated_100_100_panel_allows_100_a_not_20_a():
    a = run(P100, BIG)
    assert (a.static_allowance_w, a.allowance_w) == (4_800.0, 24_000.0)


def test_real_home_gets_its_full_ratings_instead_of_9600_w():
    a = run(P200, HOME, load_w=1_500.0)
    assert a.allowance_w == 26_500.0
    assert a.binding is Bound.DEVICE_RATINGS
    assert discharge(a) == [11_500.0, 10_000.0, 5_000.0]
    assert all(c.discharge_binding is Bound.DEVICE_RATING for c in a.caps)


def test_low_measured_voltage_means_more_amps_per_watt():
    outs = outputs(BIG)
    a = allocate(P200, BIG, meter(0.0, outs, v=230.0), outs, Limits(), NOW, MAX_AGE)
    assert a.allowance_w == pytest.approx(200 * 230.0)
    # A higher voltage is not used to raise the caps.
    a = allocate(P200, BIG, meter(0.0, outs, v=250.0), outs, Limits(), NOW, MAX_AGE)
    assert a.allowance_w == 48_000.0


def test_busbar_margin_binds_below_the_main():
    panel = PanelRating(busbar_a=200, main_breaker_a=200, busbar_margin=0.75)  # B' = 180 A
    a = run(panel, BIG)
    assert (a.allowance_w, a.binding) == (180 * 240.0, Bound.BUSBAR)


def test_without_a_listed_pcs_fresh_data_never_exceeds_static():
    panel = PanelRating(busbar_a=200, main_breaker_a=200, coordinated=False)
    a = run(panel, BIG)
    assert not a.stale
    assert (a.allowance_w, a.binding) == (9_600.0, Bound.STATIC_ALLOWANCE)


def test_loads_beyond_the_busbar_drop_discharge_to_what_the_main_protects():
    # 24 kW of DER (100 A) hold a 250 A load with only 150 A through the 200 A main: the busbar
    # carries 250 A > 240 A. Without the DER the main would trip instead.
    ders = BIG[:2]
    outs = outputs(ders, b0=12_000.0, b1=12_000.0)
    m = MeterReading(NOW, 36_000.0, {"L1": 150.0, "L2": 150.0}, 240.0)
    a = allocate(P200, ders, m, outs, Limits(), NOW, MAX_AGE)
    assert (a.allowance_w, a.binding) == (9_600.0, Bound.BUSBAR)
    assert any("exceed the busbar limit of 240 A" in r for r in a.reasons)


def test_unbalanced_legs_use_the_worst_phase():
    # 30 kW of load, most of it on L1 (200 A) and little on L2 (50 A): L1 is what matters.
    panel = PanelRating(busbar_a=200, main_breaker_a=200, busbar_margin=0.75)  # B' = 180 A
    ders = (DerRating("ev", "charger", 20_000, 20_000),)
    outs = outputs(ders, ev=0.0)
    m = MeterReading(NOW, 30_000.0, {"L1": 190.0, "L2": 60.0}, 240.0)
    a = allocate(panel, ders, m, outs, Limits(), NOW, MAX_AGE)
    # 190 A > B' = 180 A on L1: discharge only what the main protects (max(0, 180 - 200) = 0).
    assert a.allowance_w == 0.0
    m = MeterReading(NOW, 30_000.0, {"L1": 120.0, "L2": 130.0}, 240.0)
    a = allocate(panel, ders, m, outs, Limits(), NOW, MAX_AGE)
    assert a.allowance_w == 20_000.0
    # Charging: the worst leg (130 A) leaves 70 A to the main but only 50 A to B': 12 kW.
    assert a.caps[0].max_charge_w == pytest.approx(50 * 240.0)
    assert a.caps[0].charge_binding is Bound.BUSBAR


def test_charging_never_trips_the_main():
    outs = outputs(HOME)
    m = MeterReading(NOW, 38_400.0, {"L1": 160.0, "L2": 160.0}, 240.0)
    a = allocate(P200, HOME, m, outs, Limits(), NOW, MAX_AGE)
    assert a.charge_allowance_w == pytest.approx(40 * 240.0)
    assert a.charge_binding is Bound.MAIN_BREAKER
    assert charge(a) == pytest.approx([9_600.0, 0.0, 0.0])


def test_exporting_home_is_not_mistaken_for_a_heavily_loaded_one():
    # 48 kW of DER, 1 kW of load: 196 A leave through the main. The phase magnitudes alone
    # would allow up to 200 + 196 A of load on a leg (beyond the busbar); the site load bounds
    # it to about 8 A. Getting this wrong would make the caps oscillate between cycles.
    outs = outputs(BIG, b0=12_000.0, b1=12_000.0, b2=12_000.0, b3=12_000.0)
    a = allocate(P200, BIG, meter(1_000.0, outs), outs, Limits(), NOW, MAX_AGE)
    assert (a.allowance_w, a.binding) == (48_000.0, Bound.MAIN_BREAKER)
    assert a.charge_allowance_w == pytest.approx((200 - 1_000.0 / 120) * 240)


# --- utility limits --------------------------------------------------------------------------


def test_export_limit_binds_with_site_load_credit():
    a = run(load_w=3_000.0, limits=Limits(export_limit_w=5_000))
    assert (a.allowance_w, a.binding) == (8_000.0, Bound.EXPORT_LIMIT)
    assert a.site_load_w == 3_000.0
    assert discharge(a) == [8_000.0, 0.0, 0.0]
    assert a.caps[0].discharge_binding is Bound.EXPORT_LIMIT


def test_export_limit_counts_present_der_output_as_not_load():
    # PV makes 4 kW, the home uses 3 kW, 1 kW is exported: the load is 3 kW, not -1 kW.
    a = run(load_w=3_000.0, limits=Limits(export_limit_w=0), pv=4_000.0)
    assert a.allowance_w == 3_000.0


def test_zero_export_with_no_load_means_no_discharge():
    a = run(load_w=0.0, limits=Limits(export_limit_w=0))
    assert discharge(a) == [0.0, 0.0, 0.0]
    assert charge(a) == [11_500.0, 0.0, 5_000.0]


def test_negative_site_load_is_kept_for_the_export_check():
    # An uncontrolled 5 kW source exports on its own: the listed DER may add nothing.
    outs = outputs(HOME)
    m = MeterReading(NOW, -5_000.0, {"L1": 20.8, "L2": 20.8}, 240.0)
    a = allocate(P200, HOME, m, outs, Limits(export_limit_w=2_000), NOW, MAX_AGE)
    assert a.allowance_w == 0.0
    assert a.site_load_w == -5_000.0
    assert any("negative" in r for r in a.reasons)
    # The main's export headroom shrinks by the uncontrolled source's current too.
    a = allocate(P200, BIG, m, outputs(BIG), Limits(), NOW, MAX_AGE)
    assert a.allowance_w == pytest.approx((200 - 20.8) * 240.0)


def test_generation_limit_binds():
    a = run(load_w=10_000.0, limits=Limits(generation_limit_w=7_000))
    assert (a.allowance_w, a.binding) == (7_000.0, Bound.GENERATION_LIMIT)
    assert discharge(a) == [7_000.0, 0.0, 0.0]


def test_load_limit_binds_total_charge():
    a = run(load_w=1_000.0, limits=Limits(load_limit_w=3_000))
    assert (a.charge_allowance_w, a.charge_binding) == (3_000.0, Bound.LOAD_LIMIT)
    assert charge(a) == [3_000.0, 0.0, 0.0]
    assert a.caps[0].charge_binding is Bound.LOAD_LIMIT


def test_import_limit_shrinks_charge():
    a = run(load_w=4_000.0, limits=Limits(import_limit_w=6_000))
    assert (a.charge_allowance_w, a.charge_binding) == (2_000.0, Bound.IMPORT_LIMIT)
    assert charge(a) == [2_000.0, 0.0, 0.0]
    # Discharge is not touched by an import limit.
    assert a.allowance_w == 26_500.0


def test_import_limit_credits_present_pv_output():
    a = run(load_w=4_000.0, limits=Limits(import_limit_w=6_000), pv=3_000.0)
    assert a.charge_allowance_w == 5_000.0
    # ...but not battery or EV discharge, which is what would switch to charging.
    a = run(load_w=4_000.0, limits=Limits(import_limit_w=6_000), bat=3_000.0)
    assert a.charge_allowance_w == 2_000.0


def test_pv_credit_is_bounded_by_its_new_cap():
    a = run(load_w=4_000.0, limits=Limits(import_limit_w=6_000, max_generation_pct=10), pv=3_000.0)
    assert a.caps[1].max_discharge_w == 1_000.0
    assert a.charge_allowance_w == 3_000.0  # 6000 - 4000 + 1000


def test_import_limit_already_exceeded_never_gives_a_negative_cap():
    a = run(load_w=9_000.0, limits=Limits(import_limit_w=6_000))
    assert charge(a) == [0.0, 0.0, 0.0]
    assert a.charge_allowance_w == 0.0


def test_max_generation_pct_caps_each_der():
    a = run(load_w=2_000.0, limits=Limits(max_generation_pct=50))
    assert discharge(a) == [5_750.0, 5_000.0, 2_500.0]
    assert all(c.discharge_binding is Bound.MAX_GENERATION_PCT for c in a.caps)
    assert charge(a) == [11_500.0, 0.0, 5_000.0]  # a generation limit does not limit charging


def test_limits_from_controls():
    cs = ControlSet(
        export_limit_w=1_000,
        import_limit_w=2_000,
        generation_limit_w=3_000,
        load_limit_w=4_000,
        max_generation_pct=50,
        target_w=9_999,
        energize=True,
    )
    assert Limits.from_controls(cs) == Limits(1_000, 2_000, 3_000, 4_000, 50)
    assert Limits.from_controls(ControlSet()) == Limits()


@pytest.mark.parametrize("bad", [math.nan, -1.0])
def test_invalid_limit_counts_as_zero(bad):
    a = run(load_w=2_000.0, limits=Limits(export_limit_w=bad, load_limit_w=bad))
    assert a.allowance_w == 2_000.0  # 0 W export + 2 kW of load
    assert charge(a) == [0.0, 0.0, 0.0]
    assert any("export limit" in r and "treating it as 0 W" in r for r in a.reasons)


# --- allocation order and bindings -----------------------------------------------------------


def test_allocation_follows_the_configured_order():
    limits = Limits(export_limit_w=12_000, load_limit_w=8_000)
    a = run(ders=(EV, PV, BAT), load_w=2_000.0, limits=limits)
    assert discharge(a) == [11_500.0, 2_500.0, 0.0]
    assert charge(a) == [8_000.0, 0.0, 0.0]
    b = run(ders=(BAT, PV, EV), load_w=2_000.0, limits=limits)
    assert discharge(b) == [5_000.0, 9_000.0, 0.0]
    assert charge(b) == [5_000.0, 0.0, 3_000.0]
    assert b.cap("ev").max_charge_w == 3_000.0
    assert b.cap("bat").discharge_binding is Bound.DEVICE_RATING
    assert b.cap("pv").discharge_binding is Bound.EXPORT_LIMIT


def test_binding_text_is_readable():
    a = run(load_w=4_000.0, limits=Limits(export_limit_w=0, import_limit_w=6_000))
    assert a.cap("ev").binding == "export limit (discharge), import limit (charge)"
    same = DerCap("x", 0.0, 0.0, Bound.INVALID_RATING, Bound.INVALID_RATING)
    assert same.binding == "invalid DER rating"
    assert a.reasons[-1] == (
        "discharge allowance 4000 W (export limit); charge allowance 2000 W (import limit)"
    )


def test_unknown_der_gets_zero():
    a = run()
    cap = a.cap("nope")
    assert (cap.max_discharge_w, cap.max_charge_w) == (0.0, 0.0)
    assert cap.discharge_binding is Bound.NOT_CONFIGURED


# --- safety bias on bad configuration --------------------------------------------------------


def test_invalid_panel_caps_everything_at_zero():
    panel = PanelRating(busbar_a=100, main_breaker_a=200)
    a = allocate(panel, HOME, None, {}, Limits(), NOW, MAX_AGE)
    assert discharge(a) == charge(a) == [0.0, 0.0, 0.0]
    assert a.allowance_w == a.static_allowance_w == 0.0
    assert "does not protect the busbar" in a.reasons[0]


def test_invalid_der_gets_zero_and_others_carry_on():
    bad = DerRating("bad", "battery", math.nan, -5.0)
    ders = (bad, EV)
    outs = outputs(ders)
    a = allocate(P200, ders, meter(0.0, outs), outs, Limits(), NOW, MAX_AGE)
    assert a.cap("bad") == DerCap("bad", 0.0, 0.0, Bound.INVALID_RATING, Bound.INVALID_RATING)
    assert a.cap("ev").max_discharge_w == 11_500.0
    assert any("bad: max_discharge_w" in r for r in a.reasons)


@pytest.mark.parametrize("age", [math.nan, -1.0])
def test_unusable_max_age_means_stale(age):
    outs = outputs(HOME)
    a = allocate(P200, HOME, meter(0.0, outs), outs, Limits(), NOW, age)
    assert a.stale
    assert a.allowance_w == 9_600.0


def test_nan_now_means_stale():
    outs = outputs(HOME)
    a = allocate(P200, HOME, meter(0.0, outs), outs, Limits(), math.nan, MAX_AGE)
    assert a.stale


def test_a_dispatched_discharge_is_granted_before_the_order_hands_out_the_rest() -> None:
    """PV first in the order would hold a tight export allowance with its nameplate; an EV told
    to discharge 3 kW gets its 3 kW first and the PV the rest, within the same total."""
    ders = (PV, EV)
    limits = Limits(export_limit_w=500.0)
    outs = outputs(ders, pv=2_000.0)
    reading = meter(3_000.0, outs)
    plain = allocate(P200, ders, reading, outs, limits, NOW, MAX_AGE)
    assert discharge(plain) == [3_500.0, 0.0]  # the order alone: the EV gets nothing
    told = allocate(P200, ders, reading, outs, limits, NOW, MAX_AGE, {"ev": 3_000.0})
    assert told.allowance_w == plain.allowance_w == 3_500.0
    assert discharge(told) == [500.0, 3_000.0]
    # More than the allowance: the dispatch takes it all; never more than the DER's rating.
    big = allocate(P200, ders, reading, outs, limits, NOW, MAX_AGE, {"ev": 50_000.0})
    assert discharge(big) == [0.0, 3_500.0]
    # Nonsense dispatches change nothing.
    for bad in (-1.0, float("nan"), float("inf")):
        odd = allocate(P200, ders, reading, outs, limits, NOW, MAX_AGE, {"ev": bad})
        assert discharge(odd) == discharge(plain)
