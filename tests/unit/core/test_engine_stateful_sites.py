"""The engine's safety machine (``test_engine_stateful``) over random *site files*.

Each example draws a site file (supply, panel, backfeed rule, the connection agreement's
limits, the backup reserve, the charger's and the other DERs' ratings, which DERs the home has,
a second EV that only charges), loads it through ``gateway.runtime.run_config.load`` exactly as
``gateway run`` does, and runs the same rules and invariants on the site it describes: forming
only on a relay confirmed open, the relay closed only on a charger confirmed stopped at zero
power, the commanded backfeed within the allowance (and the static one on stale meter data),
every accepted event answered exactly once; and the second EV never discharges nor charges
outside grid-connected phases.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant
from test_engine_stateful import EngineMachine

from gateway.core.island import WANTS
from gateway.core.messages import DerLimit, Tick
from gateway.runtime.run_config import load

# Hundreds of steps on a shared 2-core machine under -n 4: slow is not hung. The suite's
# 120 s timeout cut one run mid-example, which Hypothesis then reported as flaky data.
pytestmark = pytest.mark.timeout(600)

SUPPLIES = [(240, 60, "split"), (230, 50, "single"), (230, 50, "three")]


@st.composite
def site_files(draw: st.DrawFn) -> str:
    volts, hz, phases = draw(st.sampled_from(SUPPLIES))
    main = draw(st.sampled_from([63, 100, 125, 150, 200]))
    busbar = draw(st.sampled_from([b for b in (80, 100, 125, 150, 200, 225, 250) if b >= main]))
    rule = draw(st.sampled_from(["705.12", "705.13"]))
    lines = [
        "[site]",
        f"nominal_voltage_v = {volts}",
        f"frequency_hz = {hz}",
        f'phases = "{phases}"',
        f"main_breaker_a = {main}",
        f"busbar_a = {busbar}",
        f'backfeed = {{ rule = "{rule}" }}',
        f"backup_reserve_pct = {draw(st.integers(0, 60))}",
    ]
    limits = [k for k in ("export_limit_w", "import_limit_w") if draw(st.booleans())]
    lines += [f"{k} = {draw(st.integers(0, 20_000))}" for k in limits]
    lines += [
        "[[device]]",
        'name = "relay"\nrole = "meter_relay"\nprofile = "meter-collar-relay"',
        'transport = "tcp://127.0.0.1:1"',
        "[[device]]",
        'name = "ev"\nrole = "charger"\nprofile = "wallbox-quasar"',
        'transport = "tcp://127.0.0.1:2"',
        f"max_discharge_w = {draw(st.integers(0, 11_500))}",
        f"max_charge_w = {draw(st.integers(0, 11_500))}",
    ]
    if draw(st.booleans()):  # a home with PV, or none
        lines += [
            "[[device]]",
            'name = "pv"\nrole = "pv_inverter"\nprofile = "sunspec-der"',
            'transport = "tcp://127.0.0.1:3"',
            f"max_discharge_w = {draw(st.integers(0, 12_000))}",
        ]
    if draw(st.booleans()):
        lines += [
            "[[device]]",
            'name = "bat"\nrole = "battery_inverter"\nprofile = "sunspec-der"',
            'transport = "tcp://127.0.0.1:4"',
            f"max_discharge_w = {draw(st.integers(0, 8_000))}",
            f"max_charge_w = {draw(st.integers(0, 8_000))}",
        ]
    if draw(st.booleans()):  # a second EV: the first forms the island, this one only charges
        lines.insert(lines.index('transport = "tcp://127.0.0.1:2"') + 1, "forms_island = true")
        lines += [
            "[[device]]",
            'name = "ev2"\nrole = "charger"\nprofile = "wallbox-quasar"',
            'transport = "tcp://127.0.0.1:5"',
            "forms_island = false",
            f"max_charge_w = {draw(st.integers(0, 11_500))}",
        ]
    return "\n".join(lines) + "\n"


class SiteFileMachine(EngineMachine):
    @initialize(text=site_files())
    def start(self, text: str) -> None:  # replaces the base machine's start
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "site.toml"
            path.write_text(text, encoding="utf-8")
            self.config = load(path).site
        self.engine = self._new_engine()
        ders = "+".join(d.der_id for d in self.config.ders)
        event(f"site {len(self.config.panel.phases)} legs, DERs {ders}")  # the draw is used
        self.feed(Tick(self.now))

    @invariant()
    def a_second_ev_only_charges_and_only_on_the_grid(self) -> None:
        """The charger that does not form the island is never given a discharge, nor any
        charge while the home is (or is becoming) an island: it must not draw on the EV that
        forms it."""
        last = self.last_cmd.get("der:ev2")
        if last is None:
            return
        assert isinstance(last, DerLimit)
        assert last.max_discharge_w == 0.0, last
        if not WANTS[self.engine.phase].export:
            assert last.max_charge_w == 0.0, (self.engine.phase, last)


SiteFileMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSiteFileSafety = SiteFileMachine.TestCase
