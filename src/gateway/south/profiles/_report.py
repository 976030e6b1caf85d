"""Collecting a profile's problems, each with its line, key path and an actionable message."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from gateway.south.errors import Problem
from gateway.south.profiles._locate import locate

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: Sequence[str | int]) -> str:
    """``("points", "state", "symbols")`` -> ``points.state.symbols``; ``init[1].value``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if _BARE_KEY.match(part) else f'"{part}"'
            out += f".{name}" if out else name
    return out


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'start'?)`` when a known name is close, else ``""``."""
    names = list(known)
    # Swapped letters ("strat") are the commonest typo, and difflib ranks them no better than a
    # changed letter ("state"), so same letters in another order win first.
    swapped = [n for n in names if sorted(n.lower()) == sorted(word.lower()) and n != word]
    close = swapped or difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def listing(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


class Report:
    """Problems found in one profile text; nothing is raised until all are collected."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: Sequence[str | int], message: str) -> None:
        problem = Problem(self.source, locate(self.text, path), dotted(path), message)
        if problem not in self.problems:
            self.problems.append(problem)

    def sorted(self) -> list[Problem]:
        """In file order (problems without a line last), then by key."""
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0, p.key, p.message))
