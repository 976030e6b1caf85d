"""The homeowner's backup reserve (BackupReserveSet, from the local API): in force at once,
audited, kept across a restart; a value no state of charge can have changes nothing."""

from __future__ import annotations

import math

import pytest

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.engine import RESERVE_KEY, Engine
from gateway.core.messages import BackupReserveSet, Persist, Table
from gateway.core.site import SiteConfig

CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(DerRating("ev", "charger", max_discharge_w=7_400, max_charge_w=7_400),),
    charger_id="ev",
    backup_reserve_soc_pct=20.0,
)


def _audits(out: list[object]) -> list[Persist]:
    return [
        a
        for a in out
        if isinstance(a, Persist)
        and a.table is Table.AUDIT
        and a.doc.get("point") == "backup_reserve_pct"
    ]


def _engine(state: dict[str, dict[str, object]] | None = None) -> Engine:
    return Engine(CONFIG, draw=lambda _: 0, state=state)


def test_a_new_reserve_is_in_force_audited_and_kept_across_a_restart() -> None:
    engine = _engine()
    out = engine.handle(BackupReserveSet(0.0, 45.0, "alex"))
    assert engine.config.backup_reserve_soc_pct == 45.0
    assert engine.last_reserve is True
    kept = [a for a in out if isinstance(a, Persist) and a.key == RESERVE_KEY]
    assert [(a.table, a.doc) for a in kept] == [(Table.STATE, {"soc_pct": 45.0})]
    (audit,) = _audits(out)
    assert audit.doc["outcome"] == "accepted: 20 % -> 45 %"
    assert audit.doc["reason"] == "backup reserve asked by alex"
    again = _engine({RESERVE_KEY: {"soc_pct": 45.0}})
    assert again.config.backup_reserve_soc_pct == 45.0


@pytest.mark.parametrize("pct", [-1.0, 100.5, math.nan, math.inf])
def test_a_reserve_no_charge_can_have_changes_nothing(pct: float) -> None:
    engine = _engine()
    out = engine.handle(BackupReserveSet(0.0, pct, "alex"))
    assert engine.config.backup_reserve_soc_pct == 20.0
    assert engine.last_reserve is False
    assert not [a for a in out if isinstance(a, Persist) and a.key == RESERVE_KEY]
    (audit,) = _audits(out)
    assert audit.doc["outcome"].startswith("refused")


def test_a_stored_reserve_out_of_range_is_ignored_for_the_site_files() -> None:
    assert _engine({RESERVE_KEY: {"soc_pct": 400}}).config.backup_reserve_soc_pct == 20.0
