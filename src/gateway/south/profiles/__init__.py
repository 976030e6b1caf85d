"""Device profiles: TOML files that say what a vendor's register map means (docs/profiles.md).

A profile is parsed with ``tomllib``, validated against the JSON Schema
(``gateway.south.profile_schema``) and then against the cross-checks a schema cannot express
(roles against points and symbols, overlapping registers, writability, the watchdog's timing).
Every problem found is reported at once, each with its line, key path and a message saying what
was found and what is allowed; a profile with any problem raises ``ProfileError`` and nothing of
it is loaded. Schema problems are reported before cross-check problems: the cross-checks need a
document of the right shape.

The profiles shipped with the gateway live in this package directory (``shipped()``).
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from gateway.south.errors import Problem, ProfileError
from gateway.south.profile import Profile
from gateway.south.profiles._build import build
from gateway.south.profiles._report import Report, did_you_mean, listing
from gateway.south.profiles._schema import check_schema

__all__ = ["find", "load_profile", "load_shipped", "parse_profile", "shipped"]

_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")


def parse_profile(text: str, source: str) -> Profile:
    """The profile in ``text``; ``source`` names it in problems (usually the file's path)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([_syntax_problem(exc, text, source)]) from None
    report = Report(text, source)
    check_schema(doc, report)
    profile = None if report.problems else build(doc, report)
    if profile is None:
        raise ProfileError(report.sorted())
    return profile


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.start})"
        raise ProfileError([Problem(str(path), None, "", msg)]) from exc
    return parse_profile(text, str(path))


def shipped() -> dict[str, Path]:
    """Profile name (the file name without ``.toml``) -> file, for the shipped profiles."""
    found: dict[str, Path] = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".toml") and entry.is_file():
            # The package is installed as a directory (setuptools package-data), so the
            # Traversable is a real file path.
            found[entry.name.removesuffix(".toml")] = Path(str(entry))
    return dict(sorted(found.items()))


def load_shipped(name: str) -> Profile:
    files = shipped()
    if name not in files:
        msg = f"no shipped profile {name!r}{did_you_mean(name, files)}; shipped: {listing(files)}"
        raise ProfileError([Problem(name, None, "", msg)])
    return load_profile(files[name])


def find(name_or_path: str | Path) -> Profile:
    """A shipped profile by name, or a profile file by path (anything with '/' or '.toml')."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        return load_profile(name_or_path)
    return load_shipped(text)


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str, source: str) -> Problem:
    message = str(exc)
    where = _TOML_WHERE.search(message)
    line: int | None = None
    if where is not None:
        message = message[: where.start()]
        if where.group(1):
            line = int(where.group(1))
            message += f" (column {where.group(2)})"
        else:
            line = text.count("\n") + 1
            message += " (at the end of the file)"
    return Problem(source, line, "", f"not valid TOML: {message}")
