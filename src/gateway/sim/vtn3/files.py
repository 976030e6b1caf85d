"""Programs, events and scenarios from JSON files, for ``gateway simulate vtn --openadr 3``.

* a program file: one 3.0.1 ``program`` object (or a list of them);
* an event file: one ``event`` object (or a list). Its ``programID`` may be the program's id or
  its ``programName`` (ids are made by the VTN, so a file cannot know them); without one, the
  event goes to the only program there is;
* a scenario file: ``{"programs": [...], "events": [...], "vens": [...], "steps": [...]}``,
  every key optional; a step is ``{"at_s": 10, "add_event": {...}}``,
  ``{"at_s": 20, "modify_event": {...}}`` (the event of the same ``eventName``, replaced) or
  ``{"at_s": 30, "delete_event": "NAME"}``, seconds after the VTN starts.

Any ``intervalPeriod.start`` may be ``"now"`` or ``"now+PT10S"`` / ``"now-PT1M"`` (an ISO 8601
duration), read when the object is loaded (for a step: when it plays), so that a file stays
useful. The objects are checked exactly as a POST would be (:mod:`.objects`); a bad file is a
:class:`FileError` naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core import errors
from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import ProtocolError
from gateway.sim.vtn3.objects import KINDS, ConflictError
from gateway.sim.vtn3.state import VtnState

STEP_ACTIONS = ("add_event", "modify_event", "delete_event")


class FileError(errors.ConfigError, ValueError):
    pass


@dataclass(frozen=True)
class Step:
    at_s: float
    action: str  # one of STEP_ACTIONS
    arg: Any  # the event object, or the eventName to delete


def read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileError(f"{path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileError(f"{path}: not JSON ({e})") from None


def _times(doc: Any, now: float, where: str) -> Any:
    """``doc`` with every ``"now[+-DURATION]"`` start made an RFC 3339 time."""
    if isinstance(doc, list):
        return [_times(v, now, f"{where}[{i}]") for i, v in enumerate(doc)]
    if not isinstance(doc, dict):
        return doc
    out = {k: _times(v, now, f"{where}.{k}") for k, v in doc.items()}
    start = out.get("start")
    if isinstance(start, str) and start.startswith("now"):
        rest, sign = start[3:], 1.0
        if rest[:1] in ("+", "-"):
            sign = -1.0 if rest[0] == "-" else 1.0
            rest = rest[1:]
        elif rest:
            raise ProtocolError(f"{where}.start: {start!r}: expected now, now+PT… or now-PT…")
        offset = codec.parse_duration(rest, f"{where}.start") if rest else 0.0
        out["start"] = codec.format_time(now + sign * offset)
    return out


def _objects(doc: Any, what: str) -> list[dict[str, Any]]:
    items = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(d, dict) for d in items):
        raise ProtocolError(f"expected a {what} object or a list of them")
    return items


class Loader:
    """Puts file objects into ``state``, through the same checks as the HTTP API."""

    def __init__(self, state: VtnState) -> None:
        self.state = state

    def _add(self, collection: str, doc: dict[str, Any]) -> dict[str, Any]:
        kind = KINDS[collection]
        kind.check(doc)
        clean = {k: v for k, v in doc.items() if k not in ("id", "objectType")}
        self.state.check_refs(collection, clean)
        return self.state.create(collection, clean)

    def _program_id(self, doc: dict[str, Any]) -> dict[str, Any]:
        programs = self.state.programs
        ref = doc.get("programID")
        if ref is None:
            if len(programs) != 1:
                raise ProtocolError("programID: needed when there is not exactly one program")
            return {**doc, "programID": next(iter(programs))}
        if ref in programs:
            return doc
        for pid, p in programs.items():
            if p.get("programName") == ref:
                return {**doc, "programID": pid}
        raise ProtocolError(f"programID: {str(ref)[:128]!r} is neither a program id nor a name")

    def program(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._add("programs", _times(doc, self.state.clock(), "program"))

    def event(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = self._program_id(_times(doc, self.state.clock(), "event"))
        return self._add("events", doc)

    def ven(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._add("vens", doc)

    def _named_event(self, name: Any) -> str:
        for eid, e in self.state.events.items():
            if e.get("eventName") == name:
                return eid
        raise ProtocolError(f"no event named {str(name)[:128]!r}")

    def play(self, step: Step) -> str:
        """Carry out one step; what it did, as a line."""
        if step.action == "add_event":
            e = self.event(step.arg)
            return f"event {e['id']} ({e.get('eventName')}) added"
        eid = self._named_event(
            step.arg.get("eventName") if step.action == "modify_event" else step.arg
        )
        if step.action == "modify_event":
            doc = self._program_id(_times(step.arg, self.state.clock(), "event"))
            KINDS["events"].check(doc)
            clean = {k: v for k, v in doc.items() if k not in ("id", "objectType")}
            self.state.check_refs("events", clean, eid)
            self.state.replace("events", eid, clean)
            return f"event {eid} modified"
        self.state.remove("events", eid)
        return f"event {eid} deleted"

    # -- files -----------------------------------------------------------------------------

    def _file(self, path: Path, fn: Callable[[], list[str]]) -> list[str]:
        try:
            return fn()
        except (ProtocolError, ConflictError) as e:
            raise FileError(f"{path}: {e}") from None

    def program_file(self, path: Path) -> list[str]:
        doc = read(path)
        return self._file(path, lambda: [self.program(d)["id"] for d in _objects(doc, "program")])

    def event_file(self, path: Path) -> list[str]:
        doc = read(path)
        return self._file(path, lambda: [self.event(d)["id"] for d in _objects(doc, "event")])

    def scenario_file(self, path: Path) -> list[Step]:
        doc = read(path)
        if not isinstance(doc, dict):
            raise FileError(f"{path}: expected an object with programs, events, vens, steps")
        unknown = set(doc) - {"programs", "events", "vens", "steps"}
        if unknown:
            raise FileError(f"{path}: unknown keys {sorted(unknown)}")

        def load() -> list[str]:
            ids = [self.program(d)["id"] for d in _objects(doc.get("programs", []), "program")]
            ids += [self.event(d)["id"] for d in _objects(doc.get("events", []), "event")]
            ids += [self.ven(d)["id"] for d in _objects(doc.get("vens", []), "ven")]
            return ids

        self._file(path, load)
        return self._file_steps(path, doc.get("steps", []))

    def _file_steps(self, path: Path, raw: Any) -> list[Step]:
        if not isinstance(raw, list):
            raise FileError(f"{path}: steps: expected a list")
        steps = []
        for i, s in enumerate(raw):
            where = f"{path}: steps[{i}]"
            if not isinstance(s, dict):
                raise FileError(f"{where}: expected an object")
            at = s.get("at_s")
            actions = [a for a in STEP_ACTIONS if a in s]
            if not isinstance(at, int | float) or isinstance(at, bool) or at < 0:
                raise FileError(f"{where}.at_s: expected seconds >= 0")
            if len(actions) != 1 or set(s) != {"at_s", actions[0]}:
                raise FileError(f"{where}: expected at_s and one of {', '.join(STEP_ACTIONS)}")
            arg = s[actions[0]]
            if actions[0] == "delete_event" and not isinstance(arg, str):
                raise FileError(f"{where}.delete_event: expected an eventName")
            if actions[0] != "delete_event":
                if not isinstance(arg, dict):
                    raise FileError(f"{where}.{actions[0]}: expected an event object")
                try:
                    KINDS["events"].check(
                        _times({**arg, "programID": "p"}, self.state.clock(), "event")
                    )
                except ProtocolError as e:
                    raise FileError(f"{where}.{actions[0]}: {e}") from None
                if actions[0] == "modify_event" and not isinstance(arg.get("eventName"), str):
                    raise FileError(f"{where}.modify_event: needs the eventName it modifies")
            steps.append(Step(float(at), actions[0], arg))
        return sorted(steps, key=lambda st: st.at_s)
