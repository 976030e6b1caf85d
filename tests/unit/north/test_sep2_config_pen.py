"""``[sep2] pen``: CSIP-AUS writes it as 8 decimal digits in mRIDs, so it must fit them."""

from __future__ import annotations

from pathlib import Path

from gateway.north.sep2 import config


def _problems(tmp_path: Path, **sep2: object) -> list[str]:
    table = {"dcap": "https://127.0.0.1:8443/dcap", "cert": "c", "key": "k", "serca": "s"}
    return config.parse({**table, **sep2}, tmp_path)[1]


def test_a_pen_over_eight_decimal_digits_is_refused_for_csip_aus(tmp_path: Path) -> None:
    got = [p for p in _problems(tmp_path, pen=100_000_000) if p.startswith("sep2.pen")]
    assert len(got) == 1
    assert "8 decimal digits" in got[0]
    assert "99999999" in got[0]


def test_the_same_pen_is_fine_for_us_csip_and_a_short_one_for_both(tmp_path: Path) -> None:
    assert not [
        p for p in _problems(tmp_path, pen=100_000_000, profile="csip") if p.startswith("sep2.pen")
    ]
    assert not [p for p in _problems(tmp_path, pen=32473) if p.startswith("sep2.pen")]
