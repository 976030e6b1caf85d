"""The diagrams in docs/architecture.md are generated from the transition tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.island import TRANSITIONS
from gateway.core.schedule import LIFECYCLE
from gateway.runtime.docgen import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_architecture_diagrams_match_the_tables() -> None:
    assert main(["docs", "--check", "--path", str(DOC)]) == 0


def test_every_transition_appears_in_the_document() -> None:
    text = DOC.read_text(encoding="utf-8")
    for (src, trig), dst in TRANSITIONS.items():
        if trig.name not in ("STEP_FAILED", "INTERLOCK_TRIPPED"):
            assert f"{src.name} --> {dst.name}: {trig.value}" in text
    for (src, code), dst in LIFECYCLE.items():
        if code.name != "RECEIVED":
            assert f"{src.name} --> {dst.name}: {int(code)}" in text


def test_a_stale_document_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "architecture.md"
    stale.write_text(
        DOC.read_text(encoding="utf-8").replace("GRID_CONNECTED --> STOPPING_EXPORT", "X --> Y"),
        encoding="utf-8",
    )
    assert main(["docs", "--check", "--path", str(stale)]) == 1
    assert main(["docs", "--path", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def test_missing_block_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="generated:island"):
        render("no blocks here")
