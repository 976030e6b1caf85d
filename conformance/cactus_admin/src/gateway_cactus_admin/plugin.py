"""cactus-client admin plugin: cactus-test-definitions' admin instructions, played on the
gateway's simulated utility through its runtime admin interface (JSON over loopback HTTP).

Where the admin interface is: ``GATEWAY_ADMIN_URL`` (default ``http://127.0.0.1:8444/admin``),
the line ``gateway simulate utility --admin-port N`` prints. Every procedure starts from an
empty server (``admin_setup`` resets it), so procedures do not leak into each other.

Instruction -> requests (docs/utility-admin.md has the interface, conformance/README.md the
mapping's reasoning):

- ensure-end-device: ``POST /end-devices`` (an aggregator first ``POST /aggregators`` for its
  certificate's LFDI, with its own ``/edev/0``), or ``DELETE`` it when ``registered: false``;
- ensure-fsa / ensure-der-program / ensure-der-control-list: ``POST /end-devices/{lfdi}/fsas``
  and ``POST /programs`` (the FSA by its annotation; the program list by primacy);
- create-der-control: ``POST /programs/{key}/controls``: ``active`` starts now, ``scheduled``
  at ``start_offset_seconds`` (default 300 s), after the live scheduled ones end;
- create-default-der-control: ``PUT /programs/{key}/default``;
- clear-der-controls: ``POST /controls/cancel-active``;
- set-poll-rate / set-post-rate: ``PUT /poll-rates`` / ``PUT /post-rate``;
- set-client-access: ``DELETE`` (or ``POST``) the aggregator's access or the device's EndDevice;
- ensure-mup-list-empty: ``DELETE /mups``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from cactus_client.admin import hookimpl
from cactus_client.model.config import ClientConfig
from cactus_client.model.context import AdminContext
from cactus_client.model.execution import ActionResult, StepExecution
from cactus_client.model.parameter import resolve_variable_expressions_from_parameters
from cactus_client.sep2 import lfdi_from_cert_file
from cactus_test_definitions.server.admin_instructions import AdminInstruction

DEFAULT_URL: Final = "http://127.0.0.1:8444/admin"
POLL: Final = {  # CSIPAusResource -> the simulator's pollRate resource
    "DeviceCapability": "dcap",
    "EndDeviceList": "edev",
    "EndDevice": "edev",
    "FunctionSetAssignmentsList": "fsa",
    "FunctionSetAssignments": "fsa",
    "DERProgramList": "derp",
    "DERProgram": "derp",
    "DERList": "der",
    "DER": "der",
    "Time": "tm",
    "Registration": "reg",
    "MirrorUsagePointList": "mup",
}
MODES: Final = (
    "opModExpLimW",
    "opModImpLimW",
    "opModGenLimW",
    "opModLoadLimW",
    "opModConnect",
    "opModEnergize",
    "opModFixedW",
    "rampTms",
)
SCHEDULED_OFFSET: Final = 300  # a "scheduled" control without start_offset_seconds starts then
DURATION: Final = 300  # a control without duration_seconds lasts this long


class AdminRefusedError(Exception):
    """A request the admin interface refused; its message is the interface's one-line error."""


@dataclass
class Run:
    """What this procedure's instructions built, per client alias."""

    fsas: dict[tuple[str, str], int] = field(default_factory=dict)  # (client, annotation) -> n
    programs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # client -> derps
    revoked: set[str] = field(default_factory=set)


class GatewayAdminPlugin:
    """The hooks cactus-client calls (``cactus_client.admin`` entry point ``gateway``)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or os.environ.get("GATEWAY_ADMIN_URL") or DEFAULT_URL).rstrip("/")
        self.run = Run()

    @hookimpl
    async def admin_setup(self, context: AdminContext) -> ActionResult:
        self.run = Run()
        try:
            await self._call("POST", "/reset")
            # Programs have an (empty) DefaultDERControl from the start, as the reference
            # server's do: S-ALL-35/37/39 subscribe to it before setting one.
            # Ended controls leave the list, as there (S-ALL-41).
            await self._call(
                "PUT", "/settings", {"empty_defaults": True, "hide_ended_controls": True}
            )
        except (AdminRefusedError, aiohttp.ClientError, OSError) as e:
            return ActionResult.failed(f"gateway admin interface at {self.url}: {e}")
        return ActionResult.done()

    @hookimpl
    async def admin_teardown(self, context: AdminContext) -> ActionResult:
        return ActionResult.done()

    @hookimpl
    async def admin_instruction(
        self, instruction: AdminInstruction, step: StepExecution, context: AdminContext
    ) -> ActionResult | None:
        alias = instruction.client or step.client_alias
        client = context.client_config_for(alias)
        params = await resolve_variable_expressions_from_parameters(
            client, dict(instruction.parameters or {})
        )
        handler = getattr(self, "_" + instruction.type.value.replace("-", "_"), None)
        if handler is None:
            return None  # not ours: cactus-client reports it unhandled
        try:
            await handler(alias, client, params)
        except AdminRefusedError as e:
            return ActionResult.failed(f"{instruction.type.value}: {e}")
        return ActionResult.done()

    # ------------------------------------------------------------------ clients
    async def _ensure_end_device(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        # No FSA at registration: ensure-fsa adds them, and S-ALL-25 counts exactly one.
        body: dict[str, Any] = {"lfdi": c.lfdi, "sfdi": c.sfdi, "pin": c.pin, "fsa": False}
        if _is_aggregator(c, p):  # an aggregator either way: it may register its sites in band
            agg = lfdi_from_cert_file(c.certificate_file)
            await self._call("POST", "/aggregators", {"lfdi": agg, "end_device": True})
            body["aggregator"] = agg
        if not p.get("registered", True):
            await self._call("DELETE", f"/end-devices/{c.lfdi}", missing_ok=True)
            return
        if p.get("has_registration_link") is False:
            body["pin"] = None
        await self._call("POST", "/end-devices", body, exists_ok=True)

    async def _set_client_access(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        granted = bool(p.get("granted", True))
        if c.type.value == "aggregator":
            agg = lfdi_from_cert_file(c.certificate_file)
            if granted:
                await self._call("POST", "/aggregators", {"lfdi": agg, "end_device": True})
            else:
                await self._call("DELETE", f"/aggregators/{agg}", missing_ok=True)
        elif granted:
            await self._ensure_end_device(alias, c, {"registered": True})
        else:
            await self._call("DELETE", f"/end-devices/{c.lfdi}", missing_ok=True)

    async def _ensure_mup_list_empty(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        await self._call("DELETE", "/mups")

    # ------------------------------------------------------------------ FSAs, programs
    async def _ensure_fsa(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        await self._fsa(alias, c, str(p.get("annotation") or "fsa"))
        if p.get("primacy") is not None:
            await self._ensure_der_program(
                alias, c, {"fsa_annotation": p.get("annotation"), "primacy": p["primacy"]}
            )

    async def _fsa(self, alias: str, c: ClientConfig, annotation: str) -> int:
        key = (alias, annotation)
        if key not in self.run.fsas:
            made = await self._call(
                "POST", f"/end-devices/{c.lfdi}/fsas", {"description": annotation}
            )
            self.run.fsas[key] = int(made["number"])
        return self.run.fsas[key]

    async def _ensure_der_program(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        fsa = None  # the EndDevice's first FSA (made if it has none)
        if p.get("fsa_annotation"):
            fsa = await self._fsa(alias, c, str(p["fsa_annotation"]))
        primacy = p.get("primacy")
        for derp in self.run.programs.get(alias, []):
            if derp["fsa"] == fsa and primacy in (None, derp["primacy"]):
                return
        await self._new_program(alias, c, fsa, 1 if primacy is None else int(primacy))

    async def _ensure_der_control_list(
        self, alias: str, c: ClientConfig, p: dict[str, Any]
    ) -> None:
        await self._program(alias, c, None)  # every DERProgram has its DERControlList

    async def _new_program(
        self, alias: str, c: ClientConfig, fsa: int | None, primacy: int
    ) -> dict[str, Any]:
        n = len(self.run.programs.get(alias, [])) + 1
        body = {"lfdi": c.lfdi, "fsa": fsa, "primacy": primacy, "description": f"{alias} {n}"}
        made = await self._call("POST", "/programs", body)
        derp = {"key": made["key"], "fsa": fsa, "primacy": primacy}
        self.run.programs.setdefault(alias, []).append(derp)
        return derp

    async def _program(self, alias: str, c: ClientConfig, primacy: object) -> str:
        """The program of that primacy (None: the first made) for the client, made if none."""
        for derp in self.run.programs.get(alias, []):
            if primacy is None or derp["primacy"] == int(primacy):  # type: ignore[call-overload]
                return str(derp["key"])
        made = await self._new_program(alias, c, None, 1 if primacy is None else int(primacy))  # type: ignore[call-overload]
        return str(made["key"])

    # ------------------------------------------------------------------ controls
    async def _create_der_control(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        key = await self._program(alias, c, p.get("primacy"))
        duration = int(p.get("duration_seconds") or DURATION)
        body: dict[str, Any] = {k: p[k] for k in MODES if p.get(k) is not None}
        body |= {"duration": duration}
        if p.get("randomizeStart_seconds") is not None:
            body["randomize_start"] = int(p["randomizeStart_seconds"])
        state = await self._call("GET", "/state")
        now = int(state["time"])
        if str(p.get("status", "active")) == "scheduled":
            # Stacked: after the live scheduled controls end, never overlapping them (cancelled
            # and superseded ones free their time: S-ALL-41's fourth control must overlap its
            # fifth).
            busy = [c["start"] + c["duration"] for derp in state["programs"]
                    for c in derp["controls"] if c["live"] and c["start"] > now]  # fmt: skip
            offset = int(p.get("start_offset_seconds") or SCHEDULED_OFFSET)
            start = max([now + offset, *busy])
        else:  # active: already started (a second ago, so its status is active at once)
            start = now - 1 - int(p.get("start_offset_seconds") or 0)
        body["start"] = start
        body["supersede_overlapping"] = True  # the newer one wins its program (S-ALL-41)
        await self._call("POST", f"/programs/{key}/controls", body)

    async def _create_default_der_control(
        self, alias: str, c: ClientConfig, p: dict[str, Any]
    ) -> None:
        key = await self._program(alias, c, p.get("primacy"))
        body = {k: p[k] for k in (*MODES, "setGradW") if p.get(k) is not None}
        await self._call("PUT", f"/programs/{key}/default", body)

    async def _clear_der_controls(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        await self._call("POST", "/controls/cancel-active", {"all": bool(p.get("all", False))})

    # ------------------------------------------------------------------ rates
    async def _set_poll_rate(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        resource = str(p["resource"])
        if resource == "MirrorUsagePoint":  # a mirror's postRate
            await self._set_post_rate(alias, c, p)
            return
        if resource not in POLL:
            raise AdminRefusedError(f"the simulator has no pollRate on {resource}")
        await self._call("PUT", "/poll-rates", {POLL[resource]: int(p["rate_seconds"])})

    async def _set_post_rate(self, alias: str, c: ClientConfig, p: dict[str, Any]) -> None:
        await self._call("PUT", "/post-rate", {"seconds": int(p["rate_seconds"])})

    # ------------------------------------------------------------------ HTTP
    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        exists_ok: bool = False,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, json=body) as reply,
        ):
            answer = await reply.json(content_type=None)
        if reply.status < 300 or (exists_ok and reply.status == 409):
            return dict(answer)
        if missing_ok and reply.status == 404:
            return dict(answer)
        raise AdminRefusedError(f"{method} {path} -> {reply.status}: {answer.get('error', answer)}")


def _is_aggregator(c: ClientConfig, p: dict[str, Any]) -> bool:
    return str(p.get("client_type") or c.type.value) == "aggregator"


plugin: Final = GatewayAdminPlugin()  # the entry point's object: pluggy registers instances

__all__ = ["GatewayAdminPlugin", "plugin"]
