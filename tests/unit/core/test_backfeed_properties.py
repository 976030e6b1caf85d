"""Property tests: the backfeed invariants hold for any panel, DER list, reading, limit and age.

The fresh-data checks restate the physical model of the module docstring independently of the
implementation: predicted export, busbar sources, main-breaker current and import, each at the
worst corner of the caps.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.backfeed import (
    Allocation,
    DerOutput,
    DerRating,
    Limits,
    MeterReading,
    PanelRating,
    _der_ok,
    allocate,
)

NOW = 1_700_000_000.0
EPS_W = 1e-6  # W; float rounding over a few additions of kW-sized numbers
EPS_A = 1e-9
PHASES = [("L1", "L2"), ("L1", "L2", "L3"), ("L1",)]


def watts(hi: float = 60_000.0) -> st.SearchStrategy[float]:
    return st.floats(0.0, hi, allow_nan=False, allow_infinity=False)


@st.composite
def panels(draw: st.DrawFn) -> PanelRating:
    busbar = draw(st.sampled_from([100.0, 125.0, 150.0, 200.0, 225.0]) | st.floats(40.0, 400.0))
    main = draw(st.sampled_from([busbar, busbar * 0.8]) | st.floats(20.0, busbar))
    return PanelRating(
        busbar_a=busbar,
        main_breaker_a=main,
        nominal_voltage_v=draw(
            st.sampled_from([240.0, 208.0 * math.sqrt(3)]) | st.floats(200, 260)
        ),
        phases=draw(st.sampled_from(PHASES)),
        static_allowance_a=draw(st.none() | st.floats(0.0, busbar * 1.2)),
        coordinated=draw(st.booleans()),
        busbar_margin=draw(st.just(1.0) | st.floats(0.3, 1.0)),
    )


@st.composite
def ders(draw: st.DrawFn) -> DerRating:
    kind = draw(st.sampled_from(["charger", "pv", "battery"]))
    der_id = draw(st.sampled_from("abcdefghijkl"))
    charge = 0.0 if kind == "pv" else draw(st.just(0.0) | watts(25_000.0))
    return DerRating(der_id, kind, draw(watts(25_000.0)), charge)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple:
    panel = draw(panels())
    der_list = tuple(draw(st.lists(ders(), max_size=6, unique_by=lambda d: d.der_id)))
    max_age = draw(st.floats(0.5, 10.0))
    age = st.floats(0.0, 0.4) | st.floats(-2.0, 15.0)  # mostly fresh, sometimes not
    outs: dict[str, DerOutput] = {}
    for d in der_list:
        if draw(st.integers(0, 19)) == 0:
            continue  # a DER that did not report
        power = draw(st.floats(-d.max_charge_w, d.max_discharge_w))
        outs[d.der_id] = DerOutput(d.der_id, NOW - draw(age), power)
    meter = None
    if draw(st.integers(0, 9)) > 0:
        v = draw(st.none() | st.floats(180.0, 260.0))
        net = draw(st.floats(-60_000.0, 60_000.0))
        if draw(st.booleans()):  # currents consistent with net_w, imbalanced a little
            base = abs(net) / (v or panel.nominal_voltage_v)
            currents = {p: base * draw(st.floats(0.5, 1.5)) for p in panel.phases}
        else:
            currents = {p: draw(st.floats(0.0, 300.0)) for p in panel.phases}
        meter = MeterReading(NOW - draw(age), net, currents, v)
    limits = Limits(
        export_limit_w=draw(st.none() | watts()),
        import_limit_w=draw(st.none() | watts()),
        generation_limit_w=draw(st.none() | watts()),
        load_limit_w=draw(st.none() | watts()),
        max_generation_pct=draw(st.none() | st.floats(0.0, 100.0)),
    )
    return panel, der_list, meter, outs, limits, NOW, max_age


def own_caps(der: DerRating, limits: Limits) -> float:
    pct = limits.max_generation_pct
    if pct is None or pct >= 100.0:
        return der.max_discharge_w
    return min(der.max_discharge_w, der.max_discharge_w * pct / 100.0)


def check_fresh(panel, der_list, meter, outs, limits, a: Allocation) -> None:
    d_sum = sum(c.max_discharge_w for c in a.caps)
    c_sum = sum(c.max_charge_w for c in a.caps)
    v = panel.nominal_voltage_v
    if meter.voltage_v is not None:
        v = min(v, meter.voltage_v)
    dw = sum(outs[d.der_id].power_w for d in der_list)
    load_raw = meter.net_w + dw
    load = max(0.0, load_raw)
    assert a.site_load_w == load_raw

    # Utility limits at the worst corner of the caps.
    if limits.export_limit_w is not None and d_sum > 0.0:
        # (A site exporting on its own, load_raw < -limit, can only be met with 0 W.)
        assert d_sum - load_raw <= limits.export_limit_w + EPS_W  # stricter than with `load`
        assert d_sum - load <= limits.export_limit_w + EPS_W
    if limits.generation_limit_w is not None:
        assert d_sum <= limits.generation_limit_w + EPS_W
    if limits.import_limit_w is not None and c_sum > 0.0:
        credit = sum(
            min(max(0.0, outs[d.der_id].power_w), c.max_discharge_w)
            for d, c in zip(der_list, a.caps, strict=True)
            if d.max_charge_w == 0.0
        )
        assert load + c_sum - credit <= limits.import_limit_w + EPS_W

    # Panel: main breaker and busbar, on the worst leg.
    i_worst = max(meter.phase_current_a[p] for p in panel.phases)
    leg = max(0.0, min(dw / v + i_worst, len(panel.phases) * load / v))
    assert d_sum / v <= panel.main_breaker_a + EPS_A
    if c_sum > 0.0:
        assert leg + c_sum / v <= panel.main_breaker_a + EPS_A
    b_prime = 1.2 * panel.busbar_a * panel.busbar_margin
    protected_a = min(panel.static_limit_a, max(0.0, b_prime - panel.main_breaker_a))
    if d_sum / v > protected_a + EPS_A:
        # The DER carry the busbar beyond what the main breaker protects: sources within B'.
        assert max(d_sum / v, leg + c_sum / v) <= b_prime + 1e-6
    if not panel.coordinated:
        assert a.allowance_w <= panel.static_allowance_w + EPS_W


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_invariants(scenario):
    panel, der_list, meter, outs, limits, now, max_age = scenario
    a = allocate(panel, der_list, meter, outs, limits, now, max_age)

    # Deterministic, and one cap per DER in the configured order.
    assert a == allocate(panel, der_list, meter, outs, limits, now, max_age)
    assert [c.der_id for c in a.caps] == [d.der_id for d in der_list]

    # Totals: never negative, all of the allowance is handed out, nothing more.
    assert 0.0 <= a.allowance_w < math.inf
    assert 0.0 <= a.charge_allowance_w < math.inf
    d_sum = sum(c.max_discharge_w for c in a.caps)
    c_sum = sum(c.max_charge_w for c in a.caps)
    assert d_sum <= a.allowance_w + EPS_W
    assert c_sum <= a.charge_allowance_w + EPS_W
    assert math.isclose(d_sum, a.allowance_w, rel_tol=1e-9, abs_tol=EPS_W)
    assert math.isclose(c_sum, a.charge_allowance_w, rel_tol=1e-9, abs_tol=EPS_W)
    if limits.load_limit_w is not None:
        assert c_sum <= limits.load_limit_w + EPS_W

    # Each cap within [0, own cap], and greedy in the configured order.
    short = False
    for d, c in zip(der_list, a.caps, strict=True):
        own = own_caps(d, limits)
        assert 0.0 <= c.max_discharge_w <= own
        assert 0.0 <= c.max_charge_w <= d.max_charge_w
        if short:
            assert c.max_discharge_w == 0.0
        short = short or c.max_discharge_w < own

    if meter is None:
        assert a.stale
    if a.stale:
        assert a.site_load_w is None
        assert a.allowance_w <= a.static_allowance_w
        if limits.export_limit_w is not None:
            assert a.allowance_w <= limits.export_limit_w
        if limits.generation_limit_w is not None:
            assert a.allowance_w <= limits.generation_limit_w
        if limits.import_limit_w is not None:
            assert c_sum == 0.0
    else:
        check_fresh(panel, der_list, meter, outs, limits, a)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_limits_never_raise_the_discharge_allowance(scenario):
    panel, der_list, meter, outs, limits, now, max_age = scenario
    limited = allocate(panel, der_list, meter, outs, limits, now, max_age)
    free = allocate(panel, der_list, meter, outs, Limits(), now, max_age)
    assert limited.allowance_w <= free.allowance_w + EPS_W
    assert limited.stale == free.stale


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(0.0, 60.0))
def test_older_data_never_raises_the_allowance_above_static(scenario, extra_age):
    panel, der_list, meter, outs, limits, now, max_age = scenario
    last = now if meter is None else max(now, meter.at)
    later = last + max_age + 0.001 + extra_age
    a = allocate(panel, der_list, meter, outs, limits, later, max_age)
    assert a.stale
    assert a.allowance_w <= a.static_allowance_w


# Anything at all, including NaN, infinities and negative ratings: never raise, stay finite,
# never exceed a valid rating.
junk = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-1.0, 0.0, math.nan])


@settings(max_examples=300, deadline=None)
@given(
    panel=st.builds(
        PanelRating,
        busbar_a=junk | st.just(200.0),
        main_breaker_a=junk | st.just(200.0),
        nominal_voltage_v=junk | st.just(240.0),
        static_allowance_a=st.none() | junk,
        busbar_margin=junk | st.just(1.0),
    ),
    der_list=st.lists(
        st.builds(
            DerRating,
            der_id=st.sampled_from(["a", "b", "c", ""]),
            kind=st.sampled_from(["charger", "pv", "battery", "wind"]),
            max_discharge_w=junk | watts(),
            max_charge_w=junk | watts(),
        ),
        max_size=5,
    ),
    net=junk,
    currents=st.tuples(junk, junk),
    voltage=st.none() | junk,
    powers=st.lists(junk, min_size=5, max_size=5),
    limit=st.none() | junk,
    pct=st.none() | junk,
    now=junk | st.just(NOW),
    max_age=junk | st.just(5.0),
)
def test_junk_never_raises_and_stays_safe(
    panel, der_list, net, currents, voltage, powers, limit, pct, now, max_age
):
    outs = {d.der_id: DerOutput(d.der_id, NOW, p) for d, p in zip(der_list, powers, strict=False)}
    meter = MeterReading(NOW, net, {"L1": currents[0], "L2": currents[1]}, voltage)
    limits = Limits(limit, limit, limit, limit, pct)
    a = allocate(panel, der_list, meter, outs, limits, now, max_age)
    assert 0.0 <= a.allowance_w < math.inf
    assert 0.0 <= a.charge_allowance_w < math.inf
    for d, c in zip(der_list, a.caps, strict=True):
        if d.problems():
            assert (c.max_discharge_w, c.max_charge_w) == (0.0, 0.0)
        else:
            assert 0.0 <= c.max_discharge_w <= d.max_discharge_w
            assert 0.0 <= c.max_charge_w <= d.max_charge_w
    if panel.problems():
        assert a.allowance_w == a.charge_allowance_w == 0.0
    if a.stale and not panel.problems():
        assert a.allowance_w <= a.static_allowance_w


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        DerRating,
        der_id=st.sampled_from(["a", ""]),
        kind=st.sampled_from(["charger", "pv", "battery", "wind"]),
        max_discharge_w=junk | watts(),
        max_charge_w=junk | watts() | st.just(0),
    )
)
def test_fast_validity_check_agrees_with_problems(der):
    assert _der_ok(der) == (not der.problems())


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.data())
def test_a_dispatch_reorders_the_shares_never_the_total_nor_the_safety(scenario, data):
    """Granting dispatched discharge first moves headroom between DER; the allowance, each DER's
    own cap and every panel and utility check are exactly as without it, and each dispatched
    DER gets at least min(its dispatch, its own cap, the allowance left by earlier ones)."""
    panel, der_list, meter, outs, limits, now, max_age = scenario
    ids = [d.der_id for d in der_list]
    dispatch = data.draw(
        st.dictionaries(st.sampled_from(ids), st.floats(-1e5, 1e5) | st.just(math.nan))
        if ids
        else st.just({})
    )
    plain = allocate(panel, der_list, meter, outs, limits, now, max_age)
    a = allocate(panel, der_list, meter, outs, limits, now, max_age, dispatch)
    assert a.allowance_w == plain.allowance_w
    # Under an import limit, a generation-only DER's output is credited to charging up to its
    # cap, so a dispatch that moves its cap moves the credit with it, by no more than that
    # (found by this property: dispatching 1 W to a generator that had no cap let 1 W more of
    # charging through, as it should: the generator may now feed the loads with it).
    moved = sum(
        abs(min(max(outs[d.der_id].power_w, 0.0), ca.max_discharge_w)
            - min(max(outs[d.der_id].power_w, 0.0), cp.max_discharge_w))
        for d, ca, cp in zip(der_list, a.caps, plain.caps, strict=True)
        if d.der_id in outs and d.max_charge_w == 0.0
    )  # fmt: skip
    assert abs(a.charge_allowance_w - plain.charge_allowance_w) <= moved + EPS_W
    if moved == 0.0:
        assert [c.max_charge_w for c in a.caps] == [c.max_charge_w for c in plain.caps]
    d_sum = sum(c.max_discharge_w for c in a.caps)
    assert math.isclose(d_sum, a.allowance_w, rel_tol=1e-9, abs_tol=EPS_W)
    left = a.allowance_w
    for d, c in zip(der_list, a.caps, strict=True):
        own = own_caps(d, limits)
        assert 0.0 <= c.max_discharge_w <= own + EPS_W
        asked = dispatch.get(d.der_id, 0.0)
        if asked > 0.0 and math.isfinite(asked):
            assert c.max_discharge_w >= min(asked, own, left) - EPS_W
            left -= min(asked, own, left)
    if not a.stale:
        check_fresh(panel, der_list, meter, outs, limits, a)
