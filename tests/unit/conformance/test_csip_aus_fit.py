"""The CSIP-AUS interpreter fits the case to this gateway: a procedure for demand-response
devices is not applicable to it, and one that describes a lone storage DER gets that home."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from gateway.conformance import csip_aus, suites
from gateway.conformance.cases import Outcome
from gateway.conformance.csip_aus import play
from gateway.conformance.target import InProcess

PROCEDURE = (
    "Description: a made-up procedure\nClasses: [{classes}]\nTargetVersions: [v1.2]\n"
    "Criteria:\n  checks:\n    - {{type: all-steps-complete, parameters: {{}}}}\n"
    "Steps:\n  WAIT:\n    event: {{type: wait, parameters: {{duration_seconds: 60}}}}\n"
    "    actions: []\n"
)


def test_a_demand_response_procedure_is_not_applicable_to_this_gateway(tmp_path: Path) -> None:
    """DRA-02 (DR-L, DR-G) wants operationalModeStatus 100, an AS/NZS 4755 DRM that CSIP-AUS
    Annex C defines for demand-response devices; the gateway claims no DR class, so in-process
    the case is NOT RUN, saying why. A procedure with any other class runs."""
    (tmp_path / "X-01.yaml").write_text(PROCEDURE.format(classes="DR-L, DR-G"), encoding="utf-8")
    (tmp_path / "X-02.yaml").write_text(PROCEDURE.format(classes="A, DR-A"), encoding="utf-8")
    dr, mixed = csip_aus.cases(tmp_path, csip_aus.DEFAULT_SPEED)
    assert dr.run is not None  # a command target still runs it
    (result,) = asyncio.run(suites.run([dr], InProcess(), tmp_path / "work", lambda _: None))
    assert result.outcome is Outcome.NOT_RUN
    assert "not applicable" in result.reason
    assert "DR-L, DR-G" in result.reason
    assert csip_aus.not_applicable({"Classes": ["A", "DR-A"]}) == ""
    assert mixed.run is not None


def test_a_lone_storage_der_procedure_runs_on_the_charger_without_the_pv(tmp_path: Path) -> None:
    """STO-03's preconditions want setMaxChargeRateW and setMaxDischargeRateW equal to setMaxVA:
    one storage DER. The V2H home's aggregate adds the PV's VA, so the case gets the charger
    alone: the PV leaves the client's site file and goes dark in the home."""
    doc = {
        "Preconditions": {
            "checks": [
                {
                    "type": "der-settings-contents",
                    "parameters": {"setMaxChargeRateW": "$(this == setMaxVA)"},
                }
            ]
        }
    }
    assert play.storage_alone(doc)
    assert not play.storage_alone(
        {"Preconditions": {"checks": [{"type": "der-settings-contents"}]}}
    )
    site = tmp_path / "site.toml"
    site.write_text(
        csip_aus.play.v2h.SITE.format(
            export_limit_w=1, delay_s=1, relay=1, ev=2, pv=3, store="x.db"
        ),
        encoding="utf-8",
    )
    home = SimpleNamespace(physics=SimpleNamespace(pv=SimpleNamespace(peak_w=5000.0, limit_w=1.0)))
    play.fit_home(doc, site, home)
    text = site.read_text(encoding="utf-8")
    assert 'name = "pv"' not in text
    assert 'name = "ev"' in text
    assert "[store]" in text
    assert home.physics.pv.peak_w == home.physics.pv.limit_w == 0.0
