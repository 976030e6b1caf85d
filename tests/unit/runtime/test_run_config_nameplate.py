"""``[site.der.<id>]``: a DER's VA / var / PF nameplate in the run file (STO-02/05)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.north.sep2.pki import init_pki
from gateway.north.sep2.telemetry import SiteRatings
from gateway.runtime.cli_run import _site_config
from gateway.runtime.run_config import RunConfig, RunConfigError, load

SEP2 = """[sep2]
dcap = "https://utility.example:8443/dcap"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
serca = "pki/serca.pem"
"""


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("run")
    init_pki(base / "pki")
    return base


def _load(base: Path, site: str) -> RunConfig:
    config = base / "run.toml"
    config.write_text(SEP2 + site, encoding="utf-8")
    return load(config)


def test_a_configured_nameplate_reaches_the_site_and_its_ratings(pki_dir: Path) -> None:
    loaded = _load(
        pki_dir,
        """
[site.der.ev]
max_va = 10000
max_var = 4400
max_var_neg = 4000
min_pf_over_excited = 0.95
min_pf_under_excited = 0.85

[site.der.pv]
max_var = 3000
min_pf_over_excited = 0.9
""",
    )
    site = _site_config(loaded)
    ev = next(d for d in site.ders if d.der_id == "ev")
    assert (ev.max_va, ev.max_var, ev.max_var_neg) == (10_000, 4_400, 4_000)
    assert (ev.min_pf_over_excited, ev.min_pf_under_excited) == (0.95, 0.85)
    assert ev.max_discharge_w == 9_600  # the W ratings stay the site's
    assert not site.problems()
    r = SiteRatings.of_site(site)
    # PV: VA defaults to its 7 kW, var received to its var delivered, PF under to its over.
    assert (r.max_va, r.max_var, r.max_var_neg) == (17_000, 7_400, 7_000)
    assert (r.min_pf_over_excited, r.min_pf_under_excited) == (0.9, 0.85)


def test_no_nameplate_is_a_unity_power_factor_site(pki_dir: Path) -> None:
    site = _site_config(_load(pki_dir, ""))
    assert all(d.max_va is None and d.min_pf_over_excited is None for d in site.ders)
    r = SiteRatings.of_site(site)
    assert (r.max_va, r.max_var, r.max_var_neg) == (16_600, 0, 0)
    assert (r.min_pf_over_excited, r.min_pf_under_excited) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("[site.der.ev]\nmax_va = -1\n", "site.der.ev: max_va must be a number >= 0, got -1.0"),
        ("[site.der.ev]\nmax_var = -5\n", "site.der.ev: max_var must be a number >= 0"),
        ("[site.der.pv]\nmax_var_neg = nan\n", "site.der.pv: max_var_neg must be a number >= 0"),
        ("[site.der.ev]\nmin_pf_over_excited = 0\n", "min_pf_over_excited must be in \\(0, 1\\]"),
        ("[site.der.ev]\nmin_pf_under_excited = 1.2\n", "min_pf_under_excited must be in"),
        ("[site.der.ev]\nmin_pf_over_excited = -0.9\n", "min_pf_over_excited must be in"),
        ("[site.der.ev]\nmax_va = 5000\n", "max_va \\(5000\\) is below the W rating \\(9600\\)"),
        ("[site.der.pv]\nmax_var = 8000\n", "max_var \\(8000\\) exceeds the VA rating \\(7000\\)"),
        ('[site.der.ev]\nmax_va = "10 kVA"\n', "site.der.ev.max_va: expected float"),
        ("[site.der.ev]\nmax_w = 1\n", "site.der.ev.max_w: unknown"),
        ("[site.der.battery]\nmax_va = 1\n", "site.der.battery: no such DER"),
        ("[site]\nder = 3\n", "site.der: expected tables"),
    ],
)
def test_an_absurd_nameplate_is_refused_with_its_key(
    pki_dir: Path, table: str, problem: str
) -> None:
    with pytest.raises(RunConfigError, match=problem):
        _load(pki_dir, table)
