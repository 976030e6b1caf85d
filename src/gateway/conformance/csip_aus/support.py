"""What the interpreter implements of cactus-test-definitions' vocabulary, and, for a
procedure, the first thing it uses that is not (its NOT RUN reason), found before it runs.

An event, action or check type, or a parameter, that is not in these tables makes the case NOT
RUN with the exact reason; nothing is guessed, nothing is passed by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from gateway.conformance.csip_aus import expressions
from gateway.core import errors

_REQUEST = frozenset({"endpoint", "serve_request_first"})
EVENTS: dict[str, frozenset[str]] = {
    "GET-request-received": _REQUEST,
    "POST-request-received": _REQUEST,
    "PUT-request-received": _REQUEST,
    "DELETE-request-received": _REQUEST,
    "wait": frozenset({"duration_seconds"}),
    # An operator's go-ahead: the suite plays none; see play.Player (conformance/README.md).
    "proceed": frozenset({"timeout_seconds"}),
}
_POWER = ("opModImpLimW", "opModExpLimW", "opModGenLimW", "opModLoadLimW")
ACTIONS: dict[str, frozenset[str]] = {
    "enable-steps": frozenset({"steps"}),
    "remove-steps": frozenset({"steps"}),
    "finish-test": frozenset({"fail_message"}),
    "set-comms-rate": frozenset(
        {
            "dcap_poll_seconds",
            "edev_list_poll_seconds",
            "fsa_list_poll_seconds",
            "der_list_poll_seconds",
            "derp_list_poll_seconds",
            "mup_post_seconds",
            # The simulator's MirrorUsagePointList has no pollRate; a client needs none to
            # post its readings, so this one is taken and has no effect.
            "mup_list_poll_seconds",
        }
    ),
    # The EndDevice registered out of band is the client certificate's own: the aggregator's
    # LFDI and SFDI name it when the client is an aggregator, which this suite does not run.
    "register-end-device": frozenset({"registration_pin", "aggregator_lfdi", "aggregator_sfdi"}),
    "create-der-program": frozenset({"primacy", "fsa_id", "tag"}),
    "set-default-der-control": frozenset({*_POWER, "setGradW", "cancelled", "derp_id"}),
    "create-der-control": frozenset(
        {
            *_POWER,
            "start",
            "duration_seconds",
            "opModConnect",
            "opModEnergize",
            "opModStorageTargetW",
            "randomizeStart_seconds",
            "primacy",
            "tag",
            "fsa_id",
            "der_program_tag",
            "ramp_time_seconds",
            "opModFixedW",
            "pow_10_multipliers",
        }
    ),
    "cancel-active-der-controls": frozenset(),
    "communications-status": frozenset({"enabled"}),
    "remove-function-set-assignment": frozenset({"fsa_id"}),
    "force-response-status": frozenset(
        {"endpoint", "status", "retry_after_seconds", "duration_seconds"}
    ),
}
_READINGS = frozenset(
    {"minimum_count", "minimum_level", "maximum_level", "latest_reading_only", "window_seconds"}
)
_SETTINGS = ("W", "VA", "Var", "VarNeg", "ChargeRateW", "DischargeRateW", "Wh")
CHECKS: dict[str, frozenset[str]] = {
    "all-steps-complete": frozenset({"ignored_steps"}),
    "end-device-contents": frozenset(
        {"check_lfdi", "has_connection_point_id", "deviceCategory_anyset"}
    ),
    "end-device-count": frozenset({"minimum_count", "maximum_count"}),
    "der-settings-contents": frozenset(
        {
            *(f"setMax{n}" for n in _SETTINGS),
            "setMinWh",
            "setGradW",
            "doeModesEnabled",
            "doeModesEnabled_set",
            "modesEnabled_set",
            "vppModesEnabled",
            "vppModesEnabled_set",
            "setMinPFOverExcited",
            "setMinPFUnderExcited",
        }
    ),
    "der-capability-contents": frozenset(
        {
            *(f"rtgMax{n}" for n in _SETTINGS),
            "doeModesSupported",
            "doeModesSupported_set",
            "modesSupported_set",
            "vppModesSupported",
            "vppModesSupported_set",
            "rtgMinPFOverExcited",
            "rtgMinPFUnderExcited",
        }
    ),
    "der-status-contents": frozenset(
        {
            "genConnectStatus",
            "genConnectStatus_bit0",
            "genConnectStatus_bit1",
            "genConnectStatus_bit2",
            "operationalModeStatus",
            "alarmStatus",
        }
    ),
    "response-contents": frozenset({"status", "subject_tag", "all", "latest", "exists"}),
    "subscription-contents": frozenset({"subscribed_resource"}),
    "all-notifications-transmitted": frozenset(),
    "all-polls-at-correct-time": frozenset(
        {"endpoints", "poll_interval_seconds", "request_type_str"}
    ),
    "readings-site-active-power": _READINGS,
    "readings-der-active-power": _READINGS,
    "readings-site-reactive-power": _READINGS,
    "readings-der-reactive-power": _READINGS,
    "readings-voltage": _READINGS,
    "readings-der-stored-energy": _READINGS,
}


class UnsupportedError(errors.GatewayError):
    """Something a procedure uses that the interpreter does not implement."""


# --- endpoints: cactus' (the reference server's layout) -> the simulator's ---------------------

#: A matcher: (the program number -> its served key, or None), the request path -> matched.
Matcher = Callable[[Callable[[int], str | None], str], bool]
_DERP = re.compile(r"^/edev/1/derp/(\d+)(/derc|/dderc)?$")


def endpoint(ep: str) -> Matcher:
    """The matcher of cactus' ``endpoint`` on the simulator's paths (paths.py). The reference
    server nests programs and responses under the EndDevice; the simulator serves programs at
    ``/derp/{key}`` and takes Responses at ``/rsps/{program}/rsp``."""
    if ep == "/edev/1/rg":  # the Registration: the simulator's /edev/{e}/reg
        return lambda _key, path: path == "/edev/1/reg"
    if ep == "/edev/1/rsps/site_control/rsp":
        return lambda _key, path: re.fullmatch(r"/rsps/\d+/rsp", path) is not None
    if m := _DERP.match(ep):
        number, tail = int(m[1]), m[2] or ""

        def derp(key: Callable[[int], str | None], path: str) -> bool:
            k = key(number)
            return k is not None and path == f"/derp/{k}{tail}"

        return derp
    glob = served(ep)
    if ep.endswith("/*"):
        prefix = ep[:-1]
        return lambda _key, path: path.startswith(prefix) and "/" not in path[len(prefix) :]
    return lambda _key, path: path == glob


def served(ep: str, key: Callable[[int], str | None] = lambda _: None) -> str:
    """The simulator's path (an fnmatch glob) for cactus' ``endpoint`` (a program's: with
    ``key``, its number's key); UnsupportedError if the simulator serves no such thing."""
    if ep == "/edev/1/rg":
        return "/edev/1/reg"
    if ep == "/edev/1/rsps/site_control/rsp":
        return "/rsps/*/rsp"
    if m := _DERP.match(ep):
        k = key(int(m[1]))
        return f"/derp/{k if k is not None else '*'}{m[2] or ''}"
    literal = re.fullmatch(
        r"/dcap|/tm|/edev|/mup|/mup/\*|/edev/1(/fsa(/\d+(/derp)?)?|/der(/1(/(ders|derg|dercap|dera))?)?|/cp)?",
        ep,
    )
    if literal is None:
        raise UnsupportedError(f"endpoint {ep} not supported")
    return ep


# --- the static analysis ---------------------------------------------------------------------


def _actions(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    pre = doc.get("Preconditions") or {}
    for group in ("init_actions", "actions"):
        for a in pre.get(group) or []:
            yield "precondition", a
    for name, step in (doc.get("Steps") or {}).items():
        for a in step.get("actions") or []:
            yield f"step {name}", a


def _checks(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (doc.get("Preconditions") or {}).get("checks") or []
    yield from (doc.get("Criteria") or {}).get("checks") or []


def _params(kind: str, item: dict[str, Any], table: dict[str, frozenset[str]]) -> None:
    t = item.get("type")
    if t not in table:
        raise UnsupportedError(f"{kind} {t} not supported")
    params = item.get("parameters") or {}
    for p, value in params.items():
        if p not in table[t]:
            raise UnsupportedError(f"{kind} {t} parameter {p} not supported")
        if (text := expressions.body(value)) is not None:
            try:
                expressions.names(text)
            except expressions.ExpressionError as e:
                raise UnsupportedError(f"{kind} {t} parameter {p}: {e}") from None
    if t in (
        "GET-request-received",
        "POST-request-received",
        "PUT-request-received",
        "force-response-status",
    ):
        endpoint(str(params.get("endpoint", "")))
    for ep in params.get("endpoints") or []:  # all-polls-at-correct-time
        endpoint(str(ep))
    if "subscribed_resource" in params:
        endpoint(str(params["subscribed_resource"]))


def why_not(doc: dict[str, Any]) -> str | None:
    """The first thing in the procedure the interpreter does not implement, or None."""
    try:
        for step in (doc.get("Steps") or {}).values():
            _params("event", step.get("event") or {}, EVENTS)
            for check in step["event"].get("checks") or []:
                _params("check", check, CHECKS)
        for _, action in _actions(doc):
            _params("action", action, ACTIONS)
        for check in _checks(doc):
            _params("check", check, CHECKS)
    except UnsupportedError as e:
        return str(e)
    return None
