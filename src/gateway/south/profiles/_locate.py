"""Line numbers of key paths in a TOML text, because ``tomllib`` gives none.

A small scanner over text that ``tomllib`` has already accepted: it follows table headers
(``[points.state]``, the n-th ``[[init]]``), ``key = value`` lines with dotted and quoted keys,
and the keys and elements inside inline tables and arrays (which may span lines), skipping
strings and comments so that a ``[`` inside a string is not a header. It records the line where
each path is first written; ``locate`` falls back to the nearest enclosing path, so a missing
key is reported at its table's header.
"""

from __future__ import annotations

import bisect
import contextlib
import tomllib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n\r#")


def locate(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line of ``path`` (keys and array indices), or of its nearest enclosing
    table; None when not even the first key appears."""
    lines = key_lines(text)
    key = tuple(path)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


@lru_cache(maxsize=16)
def key_lines(text: str) -> Mapping[KeyPath, int]:
    """Every key path written in ``text`` -> the line where it first appears."""
    scanner = _Scanner(text)
    with contextlib.suppress(IndexError, ValueError):  # not TOML after all: keep what was found
        scanner.document()
    return MappingProxyType(scanner.found)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.found: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}  # array-of-tables path -> current index
        self._starts = [0] + [n + 1 for n, c in enumerate(text) if c == "\n"]

    # -- positions ---------------------------------------------------------------------------

    def line(self) -> int:
        return bisect.bisect_right(self._starts, self.i)

    def note(self, path: KeyPath, line: int) -> None:
        self.found.setdefault(path, line)

    def note_prefixes(self, base: KeyPath, keys: KeyPath, line: int) -> None:
        for n in range(1, len(keys) + 1):
            self.note(base + keys[:n], line)

    # -- lexing ------------------------------------------------------------------------------

    def peek(self, token: str = "") -> bool:
        return self.s.startswith(token, self.i) if token else self.i < len(self.s)

    def blank(self, *, newlines: bool) -> None:
        """Skip spaces and comments (and newlines, where the grammar allows them)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def expect(self, token: str) -> None:
        if not self.peek(token):
            msg = f"expected {token!r} at offset {self.i}"
            raise ValueError(msg)
        self.i += len(token)

    def key(self) -> KeyPath:
        """A dotted key: ``a``, ``a.b``, ``"quoted.key".c``."""
        parts: list[str | int] = []
        while True:
            self.blank(newlines=False)
            c = self.s[self.i]
            if c in "\"'":
                start = self.i
                self.string()
                # Let tomllib decode escapes rather than re-implementing them.
                parts.append(str(tomllib.loads(f"k = {self.s[start : self.i]}")["k"]))
            else:
                start = self.i
                while self.i < len(self.s) and self.s[self.i] in _BARE:
                    self.i += 1
                if self.i == start:
                    msg = f"expected a key at offset {start}"
                    raise ValueError(msg)
                parts.append(self.s[start : self.i])
            self.blank(newlines=False)
            if not self.peek("."):
                return tuple(parts)
            self.i += 1

    def string(self) -> None:
        """Skip any of the four string forms."""
        for quote in ('"""', "'''"):
            if self.peek(quote):
                self.i += 3
                while not self.peek(quote):
                    self.i += 2 if quote == '"""' and self.s[self.i] == "\\" else 1
                    if self.i >= len(self.s):
                        raise IndexError(self.i)
                self.i += 3
                while self.peek(quote[0]):  # up to two quotes may end the content
                    self.i += 1
                return
        quote = self.s[self.i]
        self.i += 1
        while self.s[self.i] != quote:
            self.i += 2 if quote == '"' and self.s[self.i] == "\\" else 1
        self.i += 1

    # -- grammar -----------------------------------------------------------------------------

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.blank(newlines=True)
            if not self.peek():
                return
            line = self.line()
            if self.peek("[["):
                self.i += 2
                keys = self.key()
                self.expect("]]")
                array = self.resolve(keys[:-1]) + keys[-1:]
                index = self.arrays.get(array, -1) + 1
                self.arrays[array] = index
                table = (*array, index)
                self.note_prefixes((), table, line)
            elif self.peek("["):
                self.i += 1
                table = self.resolve(self.key())
                self.expect("]")
                self.note_prefixes((), table, line)
            else:
                keys = self.key()
                self.expect("=")
                self.note_prefixes(table, keys, line)
                self.value(table + keys)

    def resolve(self, keys: KeyPath) -> KeyPath:
        """A header's path, with the current index of every array of tables on it."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path])
        return path

    def value(self, path: KeyPath) -> None:
        self.blank(newlines=False)
        c = self.s[self.i]
        if c in "\"'":
            self.string()
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.blank(newlines=True)
                if self.peek("]"):
                    self.i += 1
                    return
                self.note((*path, index), self.line())
                self.value((*path, index))
                self.blank(newlines=True)
                if self.peek(","):
                    self.i += 1
                    index += 1
        elif c == "{":
            self.i += 1
            while True:
                self.blank(newlines=True)
                if self.peek("}"):
                    self.i += 1
                    return
                line = self.line()
                keys = self.key()
                self.expect("=")
                self.note_prefixes(path, keys, line)
                self.value(path + keys)
                self.blank(newlines=True)
                if self.peek(","):
                    self.i += 1
        else:  # number, boolean, date-time (which may contain a space)
            start = self.i
            while self.i < len(self.s) and self.s[self.i] not in _SCALAR_END:
                self.i += 1
            if self.i == start:
                msg = f"expected a value at offset {start}"
                raise ValueError(msg)
