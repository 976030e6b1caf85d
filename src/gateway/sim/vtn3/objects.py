"""The VTN's five collections (OpenADR 3.0.1 ``programs``, ``events``, ``reports``,
``subscriptions``, ``vens``): what a client may write, what the server sets, and the query
filters each search takes.

Bodies are checked with the gateway's own strict decoder (:mod:`gateway.north.openadr3.codec`,
the same one the VEN reads them with) plus the spec's constraints that decoder does not need
(string lengths, the objectID pattern). Server-set fields (``id``, ``createdDateTime``,
``modificationDateTime``, ``objectType``) in a request body are ignored: the spec says the VTN
provisions them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from multidict import MultiMapping

from gateway.core import errors
from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import ProtocolError

OBJECT_ID: Final = re.compile(r"[a-zA-Z0-9_-]{1,128}")
SERVER_SET: Final = ("id", "createdDateTime", "modificationDateTime", "objectType")
PAGE_MAX: Final = 50  # the spec's ``limit`` maximum


class ConflictError(errors.StateError):
    """A second program or VEN of the same name (HTTP 409)."""


@dataclass(frozen=True)
class Kind:
    collection: str  # URL path segment
    object_type: str
    prefix: str  # of the ids the server makes
    write_scope: str
    decode: Callable[[dict[str, Any]], None]
    filters: tuple[str, ...]  # query parameters besides skip/limit (targets: targetType/Values)
    targeted: bool = True  # takes the targetType/targetValues filter

    def check(self, doc: dict[str, Any]) -> None:
        """ProtocolError unless ``doc`` is a valid body: the spec's required properties
        (which the decoder, lenient with absent lists, does not insist on), then the rest."""
        missing = [k for k in REQUIRED[self.object_type] if doc.get(k) is None]
        if missing:
            raise ProtocolError(f"{self.object_type.lower()}: {', '.join(missing)} required")
        self.decode(doc)


# The spec's ``required`` per object (3.0.1 components/schemas).
REQUIRED: Final = {
    "PROGRAM": ("programName",),
    "EVENT": ("programID", "intervals"),
    "REPORT": ("programID", "eventID", "clientName", "resources"),
    "SUBSCRIPTION": ("clientName", "programID", "objectOperations"),
    "VEN": ("venName",),
    "RESOURCE": ("resourceName",),
}


def _name(doc: Mapping[str, Any], key: str) -> None:
    v = doc.get(key)
    if isinstance(v, str) and not 1 <= len(v) <= 128:
        raise ProtocolError(f"{key}: must be 1 to 128 characters")


def _ref(doc: Mapping[str, Any], key: str) -> None:
    v = doc.get(key)
    if isinstance(v, str) and OBJECT_ID.fullmatch(v) is None:
        raise ProtocolError(f"{key}: {v[:40]!r} is not an objectID ([a-zA-Z0-9_-], 1-128)")


def _placeholder(doc: dict[str, Any]) -> dict[str, Any]:
    """The body without server-set fields, with a stand-in id so that the decoder (which reads
    objects as the VTN serves them) accepts it."""
    return {**{k: v for k, v in doc.items() if k not in SERVER_SET}, "id": "new"}


def _check_program(doc: dict[str, Any]) -> None:
    codec.program(_placeholder(doc))
    _name(doc, "programName")


def _check_event(doc: dict[str, Any]) -> None:
    codec.event(_placeholder(doc))
    _ref(doc, "programID")


def _check_report(doc: dict[str, Any]) -> None:
    codec.report(_placeholder(doc))
    _ref(doc, "programID")
    _ref(doc, "eventID")
    _name(doc, "clientName")


def _check_subscription(doc: dict[str, Any]) -> None:
    sub = codec.subscription(_placeholder(doc))
    _ref(doc, "programID")
    _name(doc, "clientName")
    kinds = {"PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"}
    for i, op in enumerate(sub.object_operations):
        where = f"objectOperations[{i}]"
        if not op.objects or not set(op.objects) <= kinds:
            raise ProtocolError(f"{where}.objects: each must be one of {sorted(kinds)}")
        if not op.operations or not set(op.operations) <= {"GET", "POST", "PUT", "DELETE"}:
            raise ProtocolError(f"{where}.operations: each must be GET, POST, PUT or DELETE")
        if not op.callback_url.startswith(("http://", "https://")):
            raise ProtocolError(f"{where}.callbackUrl: not an http(s) URL")


def _check_ven(doc: dict[str, Any]) -> None:
    codec.ven(_placeholder(doc))
    _name(doc, "venName")
    for key in ("attributes", "targets", "resources"):
        if doc.get(key) is not None and not isinstance(doc[key], list):
            raise ProtocolError(f"{key}: expected a list")


def _check_resource(doc: dict[str, Any]) -> None:
    if not isinstance(doc.get("resourceName"), str):
        raise ProtocolError("resourceName: expected a string")
    _name(doc, "resourceName")
    for key in ("attributes", "targets"):
        items = doc.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ProtocolError(f"{key}: expected a list")
        for i, item in enumerate(items):
            codec.values_map(item, f"{key}[{i}]")


KINDS: Final = {
    k.collection: k
    for k in (
        Kind("programs", "PROGRAM", "program", "write_programs", _check_program, ()),
        Kind("events", "EVENT", "event", "write_events", _check_event, ("programID",)),
        Kind(
            "reports",
            "REPORT",
            "report",
            "write_reports",
            _check_report,
            ("programID", "eventID", "clientName"),
            targeted=False,
        ),
        Kind(
            "subscriptions",
            "SUBSCRIPTION",
            "subscription",
            "write_subscriptions",
            _check_subscription,
            ("programID", "clientName"),
        ),
        Kind("vens", "VEN", "ven", "write_vens", _check_ven, ("venName",)),
        # /vens/{venID}/resources: a VEN's own; venID is set from the path
        Kind("resources", "RESOURCE", "resource", "write_vens", _check_resource, ("resourceName",)),
    )
}


def body(raw: bytes, kind: Kind) -> dict[str, Any]:
    """A request body, checked; server-set fields dropped (a resource's venID too)."""
    doc = codec.loads(raw)
    if not isinstance(doc, dict):
        raise ProtocolError(f"expected a {kind.object_type} object")
    kind.check(doc)
    return {k: v for k, v in doc.items() if k not in SERVER_SET and k != "venID"}


def _targets_match(doc: Mapping[str, Any], target_type: str | None, values: list[str]) -> bool:
    """3.0.1 target filtering: the object has a target of ``targetType`` that holds one of
    ``targetValues`` (OR). Objects without targets do not match a target filter."""
    if target_type is None:
        return True
    for t in doc.get("targets") or []:
        if (
            isinstance(t, dict)
            and t.get("type") == target_type
            and (not values or set(values) & {str(v) for v in t.get("values") or []})
        ):
            return True
    return False


def search(
    items: list[dict[str, Any]], kind: Kind, query: MultiMapping[str]
) -> list[dict[str, Any]]:
    """The page of ``items`` a search with ``query`` answers."""
    wanted = {k: query[k] for k in kind.filters if k in query}
    target_type = query.get("targetType")
    values = query.getall("targetValues", [])
    if not kind.targeted and (target_type is not None or values):
        raise ProtocolError(f"{kind.collection} take no targetType/targetValues filter")
    if values and target_type is None:
        raise ProtocolError("targetValues needs targetType")
    # subscriptions: those about one of these object types
    objects = query.getall("objects", []) if kind.collection == "subscriptions" else []
    found = [
        d
        for d in items
        if all(d.get(k) == v for k, v in wanted.items())
        and _targets_match(d, target_type, values)
        and (
            not objects
            or any(
                set(objects) & set(op.get("objects") or [])
                for op in d.get("objectOperations") or []
            )
        )
    ]
    skip, limit = paging(query)
    return found[skip : skip + limit]


def paging(query: Mapping[str, str]) -> tuple[int, int]:
    """``skip`` (>= 0) and ``limit`` (0..50; more is served as 50, the spec's maximum)."""
    try:
        skip = int(query.get("skip", "0"))
        limit = int(query.get("limit", str(PAGE_MAX)))
    except ValueError:
        raise ProtocolError("skip and limit must be integers") from None
    if skip < 0 or limit < 0:
        raise ProtocolError("skip and limit must not be negative")
    return skip, min(limit, PAGE_MAX)
