"""Diagrams in docs/architecture.md are generated from the transition tables, never drawn by
hand: ``gateway docs`` rewrites them, ``gateway docs --check`` (run by the tests) fails when the
document and the tables disagree."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from gateway.core.island import mermaid as island_mermaid
from gateway.core.schedule import lifecycle_mermaid

BLOCKS: dict[str, Callable[[], str]] = {
    "island": island_mermaid,
    "lifecycle": lifecycle_mermaid,
}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(f"docs/architecture.md has no '<!-- generated:{name} -->' block")
        body = f"```mermaid\n{make()}\n```\n"

        def fill(m: re.Match[str], body: str = body) -> str:
            return m.group(1) + body + m.group(3)

        text = pattern.sub(fill, text)
    return text


def update(path: Path, *, check: bool) -> bool:
    """Rewrite the generated blocks; with ``check``, only report whether they are current."""
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if not check and new != old:
        path.write_text(new, encoding="utf-8")
    return new == old
