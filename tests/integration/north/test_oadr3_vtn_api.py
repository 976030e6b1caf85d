"""The simulated OpenADR 3 VTN's API against the 3.0.1 spec, over real HTTPS: CRUD by id on the
five collections, server-provisioned fields and timestamps, search filters and paging, OAuth
scopes, problems. Every body it answers is checked against the 3.0.1 schemas
(``oadr3_schema``): objects as served, lists of them, RFC 7807 problems."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from oadr3_rig import make_pki, run
from oadr3_schema import OBJECT_TYPES, check, check_list

from gateway.north.openadr3 import codec
from gateway.sim.vtn3 import Vtn3Server, VtnState

VEN = ("ven-client", "ven-pw")
BL = ("bl-client", "bl-pw")


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str
    token: str | None

    async def call(
        self, method: str, path: str, doc: Any = None, *, raw: bytes | None = None, **query: Any
    ) -> tuple[int, Any]:
        """One request; the answer's body checked against the schema it must follow."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = raw if raw is not None else (None if doc is None else codec.dumps(doc))
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base + path, data=data, headers=headers, params=query or None
        ) as resp:
            body = await resp.json(content_type=None)
            status = resp.status
            kind = resp.content_type
        segments = path.split("?", maxsplit=1)[0].strip("/").split("/")
        nested = len(segments) >= 3 and segments[2] == "resources"  # /vens/{venID}/resources
        collection = "resources" if nested else segments[0]
        if status >= 400:
            assert kind == "application/problem+json", (status, kind)
            check(body, "problem")
            assert body["status"] == status
        elif collection in OBJECT_TYPES and len(segments) == 1 + 2 * nested and method == "GET":
            check_list(body, collection)
        elif collection in OBJECT_TYPES:
            check(body, OBJECT_TYPES[collection])
        return status, body


@dataclass
class Vtn:
    server: Vtn3Server
    state: VtnState
    session: aiohttp.ClientSession

    async def client(self, creds: tuple[str, str], scope: str | None = None) -> Client:
        form = {"grant_type": "client_credentials", "client_id": creds[0]}
        form["client_secret"] = creds[1]
        if scope is not None:
            form["scope"] = scope
        async with self.session.post(self.server.url + "/auth/token", data=form) as resp:
            assert resp.status == 200, await resp.text()
            doc = await resp.json()
        check(doc, "clientCredentialResponse")
        if scope is not None:  # what was asked is what was granted (oauthlib insists)
            assert set(doc["scope"].split()) == set(scope.split())
        return Client(self.session, self.server.url, doc["access_token"])


@asynccontextmanager
async def vtn(tmp_path: Path) -> AsyncIterator[Vtn]:
    pki = make_pki(tmp_path / "pki")
    state = VtnState(clients=dict([VEN, BL]), roles={BL[0]: "BL"})
    context = ssl.create_default_context(cafile=str(pki.ca))
    async with (
        Vtn3Server(state, cert=pki.cert, key=pki.key) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        yield Vtn(server, state, session)


def body(coro: Callable[[Vtn], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        async with vtn(tmp_path) as v:
            await coro(v)

    run(main)


def event_doc(pid: str, name: str = "e1", value: float = 2.0, **extra: Any) -> dict[str, Any]:
    return {
        "programID": pid,
        "eventName": name,
        "intervalPeriod": {"start": codec.format_time(time.time()), "duration": "PT1H"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [value]}]}
        ],
        **extra,
    }


def report_doc(pid: str, eid: str, client: str = "ven-1") -> dict[str, Any]:
    return {
        "programID": pid,
        "eventID": eid,
        "clientName": client,
        "resources": [
            {
                "resourceName": "site",
                "intervals": [{"id": 0, "payloads": [{"type": "READING", "values": [1.5]}]}],
            }
        ],
    }


def subscription_doc(pid: str, client: str = "ven-1", objects: tuple[str, ...] = ("EVENT",)) -> Any:
    return {
        "clientName": client,
        "programID": pid,
        "objectOperations": [
            {
                "objects": list(objects),
                "operations": ["POST", "PUT", "DELETE"],
                "callbackUrl": "https://127.0.0.1:9/notify",
                "bearerToken": "t0ken",
            }
        ],
    }


async def _program(bl: Client, name: str = "p1", **extra: Any) -> str:
    status, doc = await bl.call("POST", "/programs", {"programName": name, **extra})
    assert status == 201, doc
    return str(doc["id"])


async def _event(bl: Client, pid: str, name: str = "e1", **extra: Any) -> str:
    status, doc = await bl.call("POST", "/events", event_doc(pid, name, **extra))
    assert status == 201, doc
    return str(doc["id"])


# One (writer, body to create, a change for the PUT) per collection.
Sample = Callable[[str, str], dict[str, Any]]
CASES: dict[str, tuple[tuple[str, str], Sample, dict[str, Any]]] = {
    "programs": (BL, lambda pid, eid: {"programName": "p2"}, {"programLongName": "Program 2"}),
    "events": (BL, lambda pid, eid: event_doc(pid, "e2"), {"priority": 3}),
    "reports": (VEN, report_doc, {"reportName": "r-1"}),
    "subscriptions": (VEN, lambda pid, eid: subscription_doc(pid), {"clientName": "ven-2"}),
    "vens": (VEN, lambda pid, eid: {"venName": "ven-1"}, {"venName": "ven-1b"}),
}


@pytest.mark.parametrize("collection", list(CASES))
def test_crud_by_id_with_server_set_fields_and_timestamps(collection: str, tmp_path: Path) -> None:
    """POST, GET by id, PUT, DELETE, then 404 for the gone id; the server sets id, objectType
    and both timestamps whatever the body says; a PUT keeps createdDateTime and moves
    modificationDateTime."""

    async def main(v: Vtn) -> None:
        bl = await v.client(BL)
        pid = await _program(bl)
        eid = await _event(bl, pid)
        writer = await v.client(CASES[collection][0])
        make, change = CASES[collection][1], CASES[collection][2]
        forged = {
            "id": "forged",
            "createdDateTime": "2000-01-01T00:00:00Z",
            "modificationDateTime": "2000-01-01T00:00:00Z",
            "objectType": "SOMETHING",
        }
        status, made = await writer.call("POST", f"/{collection}", {**make(pid, eid), **forged})
        assert status == 201, made
        oid = made["id"]
        assert oid != "forged"
        assert made["objectType"] == OBJECT_TYPES[collection].upper()
        assert made["createdDateTime"] == made["modificationDateTime"] != forged["createdDateTime"]
        assert await writer.call("GET", f"/{collection}/{oid}") == (200, made)

        status, put = await writer.call(
            "PUT",
            f"/{collection}/{oid}",
            {**made, **change, "createdDateTime": "2001-01-01T00:00:00Z"},
        )
        assert status == 200, put
        assert put["id"] == oid
        assert put["createdDateTime"] == made["createdDateTime"]
        assert codec.parse_time(put["modificationDateTime"]) > codec.parse_time(
            made["modificationDateTime"]
        )
        assert all(put[k] == value for k, value in change.items())
        assert await writer.call("GET", f"/{collection}/{oid}") == (200, put)

        assert await writer.call("DELETE", f"/{collection}/{oid}") == (200, put)
        for method, doc in (("GET", None), ("PUT", put), ("DELETE", None)):
            status, problem = await writer.call(method, f"/{collection}/{oid}", doc)
            assert status == 404, (method, problem)
            assert oid in problem["detail"]

    body(main, tmp_path)


BAD: dict[str, list[Any]] = {
    "programs": [{}, {"programName": ""}, {"programName": 7}, {"programName": "x" * 129}],
    "events": [
        {"programID": "PROGRAM"},  # no intervals
        {"programID": "PROGRAM", "intervals": [{"id": "zero", "payloads": []}]},
        {"programID": "PROGRAM", "intervals": [], "priority": "urgent"},
        {"programID": "no-such-program", "intervals": []},
    ],
    "reports": [{"programID": "PROGRAM", "eventID": "e", "clientName": "c"}],  # no resources
    "subscriptions": [
        {"clientName": "c", "programID": "PROGRAM", "objectOperations": [{"objects": ["EVENT"]}]},
        {
            "clientName": "c",
            "programID": "PROGRAM",
            "objectOperations": [
                {"objects": ["EVENTS"], "operations": ["POST"], "callbackUrl": "https://x/"}
            ],
        },
    ],
    "vens": [{}, {"venName": ["a"]}],
}


@pytest.mark.parametrize("collection", list(BAD))
def test_invalid_bodies_answer_400_on_post_and_put(collection: str, tmp_path: Path) -> None:
    async def main(v: Vtn) -> None:
        bl = await v.client(BL)
        pid = await _program(bl)
        eid = await _event(bl, pid)
        writer = await v.client(CASES[collection][0])
        status, made = await writer.call("POST", f"/{collection}", CASES[collection][1](pid, eid))
        assert status == 201, made
        bad_bodies = [*BAD[collection], [made]]  # a list is not an object
        for bad in bad_bodies:
            doc = _swap(bad, "PROGRAM", pid)
            for method, path in (
                ("POST", f"/{collection}"),
                ("PUT", f"/{collection}/{made['id']}"),
            ):
                status, problem = await writer.call(method, path, doc)
                assert status == 400, (method, doc, problem)
        for raw in (b"{not json", b"[1,", b'{"x": NaN}'):
            status, _ = await writer.call("POST", f"/{collection}", raw=raw)
            assert status == 400, raw
        # nothing kept: the one made here, and the program and event the setup made
        assert len(v.state.table(collection)) == 1 + (collection in ("programs", "events"))

    body(main, tmp_path)


def _swap(doc: Any, placeholder: str, value: str) -> Any:
    if isinstance(doc, dict):
        return {k: _swap(x, placeholder, value) for k, x in doc.items()}
    if isinstance(doc, list):
        return [_swap(x, placeholder, value) for x in doc]
    return value if doc == placeholder else doc


def test_names_are_unique_409(tmp_path: Path) -> None:
    async def main(v: Vtn) -> None:
        bl, ven = await v.client(BL), await v.client(VEN)
        await _program(bl, "p1")
        p2 = await _program(bl, "p2")
        assert (await bl.call("POST", "/programs", {"programName": "p1"}))[0] == 409
        assert (await bl.call("PUT", f"/programs/{p2}", {"programName": "p1"}))[0] == 409
        assert (await bl.call("PUT", f"/programs/{p2}", {"programName": "p2"}))[0] == 200
        assert (await ven.call("POST", "/vens", {"venName": "v"}))[0] == 201
        assert (await ven.call("POST", "/vens", {"venName": "v"}))[0] == 409

    body(main, tmp_path)


def test_search_filters(tmp_path: Path) -> None:
    """programID (events, reports, subscriptions), eventID and clientName (reports), clientName
    and objects (subscriptions), venName (vens), targetType/targetValues (OR of the values)."""

    async def main(v: Vtn) -> None:
        bl, ven = await v.client(BL), await v.client(VEN)
        north = [{"type": "GROUP", "values": ["north", "all"]}]
        south = [{"type": "GROUP", "values": ["south"]}]
        p1 = await _program(bl, "p1", targets=north)
        p2 = await _program(bl, "p2", targets=south)
        e1 = await _event(bl, p1, "e1", targets=north)
        e2 = await _event(bl, p1, "e2", targets=south)
        e3 = await _event(bl, p2, "e3")
        for pid, eid, client in ((p1, e1, "a"), (p1, e2, "a"), (p1, e2, "b"), (p2, e3, "b")):
            assert (await ven.call("POST", "/reports", report_doc(pid, eid, client)))[0] == 201
        await ven.call("POST", "/subscriptions", subscription_doc(p1, "a"))
        await ven.call("POST", "/subscriptions", subscription_doc(p2, "a", ("PROGRAM",)))
        await ven.call("POST", "/subscriptions", subscription_doc(p1, "b", ("REPORT", "EVENT")))
        for name in ("v1", "v2"):
            await ven.call("POST", "/vens", {"venName": name, "targets": north})

        async def names(path: str, key: str, **query: Any) -> list[Any]:
            status, items = await ven.call("GET", path, **query)
            assert status == 200, items
            return [i[key] for i in items]

        assert await names("/events", "eventName", programID=p1) == ["e1", "e2"]
        assert await names("/events", "eventName", programID=p2) == ["e3"]
        assert await names("/events", "eventName", programID="nothing") == []
        assert await names("/events", "eventName", targetType="GROUP", targetValues="south") == [
            "e2"
        ]
        both = [("targetType", "GROUP"), ("targetValues", "north"), ("targetValues", "south")]
        status, items = await ven.call("GET", "/events?" + "&".join(f"{k}={x}" for k, x in both))
        assert status == 200
        assert [i["eventName"] for i in items] == ["e1", "e2"]
        assert await names("/programs", "programName", targetType="GROUP", targetValues="all") == [
            "p1"
        ]
        assert await names("/programs", "programName", targetType="ZONE") == []
        assert await names("/reports", "eventID", eventID=e2) == [e2, e2]
        assert await names("/reports", "clientName", eventID=e2, clientName="b") == ["b"]
        assert await names("/reports", "eventID", programID=p2) == [e3]
        assert await names("/reports", "eventID", clientName="a") == [e1, e2]
        assert await names("/subscriptions", "programID", clientName="a") == [p1, p2]
        assert await names("/subscriptions", "clientName", programID=p1) == ["a", "b"]
        assert await names("/subscriptions", "clientName", objects="REPORT") == ["b"]
        assert await names("/vens", "venName", venName="v2") == ["v2"]
        assert await names("/vens", "venName", targetType="GROUP", targetValues="north") == [
            "v1",
            "v2",
        ]
        # targetValues alone, or on reports (which take no target filter): 400
        assert (await ven.call("GET", "/events", targetValues="north"))[0] == 400
        assert (await ven.call("GET", "/reports", targetType="GROUP"))[0] == 400

    body(main, tmp_path)


def test_paging_skip_and_limit(tmp_path: Path) -> None:
    async def main(v: Vtn) -> None:
        bl = await v.client(BL)
        ids = [await _program(bl, f"p{i:02}") for i in range(60)]
        pid = ids[0]
        for i in range(3):
            await _event(bl, pid, f"e{i}")

        async def page(path: str, **query: Any) -> list[str]:
            status, items = await bl.call("GET", path, **query)
            assert status == 200, items
            return [i["id"] for i in items]

        assert await page("/programs") == ids[:50]  # at most 50 a page
        assert await page("/programs", skip=50) == ids[50:]
        assert await page("/programs", skip=10, limit=5) == ids[10:15]
        assert await page("/programs", limit=0) == []
        assert await page("/programs", limit=500) == ids[:50]
        assert await page("/programs", skip=60) == []
        assert len(await page("/events", programID=pid, skip=1, limit=1)) == 1
        for bad in ({"skip": -1}, {"limit": -1}, {"limit": "ten"}, {"skip": "1.5"}):
            assert (await bl.call("GET", "/programs", **bad))[0] == 400, bad

    body(main, tmp_path)


def test_scopes_per_role_403(tmp_path: Path) -> None:
    """BL writes programs and events, VENs write reports; both read, write subscriptions and
    vens. A token asked for fewer scopes has only those; 3.0.1 scopes the role lacks are
    refused at the token."""

    async def main(v: Vtn) -> None:
        bl, ven = await v.client(BL), await v.client(VEN)
        pid = await _program(bl)
        eid = await _event(bl, pid)
        assert (await ven.call("POST", "/programs", {"programName": "mine"}))[0] == 403
        assert (await ven.call("POST", "/events", event_doc(pid)))[0] == 403
        assert (await ven.call("PUT", f"/events/{eid}", event_doc(pid)))[0] == 403
        assert (await ven.call("DELETE", f"/programs/{pid}"))[0] == 403
        assert (await bl.call("POST", "/reports", report_doc(pid, eid)))[0] == 403
        for c in (bl, ven):
            assert (await c.call("GET", f"/programs/{pid}"))[0] == 200
            assert (await c.call("POST", "/subscriptions", subscription_doc(pid)))[0] == 201
        assert (await bl.call("POST", "/vens", {"venName": "by-bl"}))[0] == 201
        assert (await ven.call("POST", "/vens", {"venName": "by-ven"}))[0] == 201
        rid = (await ven.call("POST", "/reports", report_doc(pid, eid)))[1]["id"]
        assert (await bl.call("DELETE", f"/reports/{rid}"))[0] == 403

        reader = await v.client(VEN, scope="read_all")
        assert (await reader.call("GET", "/events"))[0] == 200
        assert (await reader.call("POST", "/vens", {"venName": "v2"}))[0] == 403
        # names 3.0.1 does not know are granted (and listed back); they allow nothing
        odd = await v.client(VEN, scope="read_all read_targets")
        assert (await odd.call("GET", "/events"))[0] == 200
        assert (await odd.call("POST", "/vens", {"venName": "v3"}))[0] == 403
        for asked in ("write_programs", "read_all write_events write_vens"):  # not a VEN's
            form = {"grant_type": "client_credentials", "client_id": VEN[0]}
            form |= {"client_secret": VEN[1], "scope": asked}
            async with v.session.post(v.server.url + "/auth/token", data=form) as resp:
                assert resp.status == 400
                answer = await resp.json()
            assert answer["error"] == "invalid_scope"
            assert "write_" in answer["error_description"]
        nobody = Client(v.session, v.server.url, None)
        assert (await nobody.call("GET", f"/programs/{pid}"))[0] == 401
        forged = Client(v.session, v.server.url, "not-a-token")
        assert (await forged.call("GET", "/programs"))[0] == 401

    body(main, tmp_path)


def test_unknown_routes_and_methods_are_problems(tmp_path: Path) -> None:
    async def main(v: Vtn) -> None:
        ven = await v.client(VEN)
        assert (await ven.call("GET", "/widgets"))[0] == 404
        assert (await ven.call("PATCH", "/events/x"))[0] == 405

    body(main, tmp_path)


def test_http_writes_are_notified_to_subscribers(tmp_path: Path) -> None:
    """An event POSTed, PUT and DELETEd over HTTP by the BL reaches a subscription's callback
    with its bearer token, as a 3.0.1 notification carrying the object as served."""

    async def main(v: Vtn) -> None:
        got: list[tuple[str | None, Any]] = []

        async def notify(request: web.Request) -> web.Response:
            got.append((request.headers.get("Authorization"), await request.json()))
            return web.Response()

        app = web.Application()
        app.router.add_post("/notify", notify)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            bl, ven = await v.client(BL), await v.client(VEN)
            pid = await _program(bl)
            sub = subscription_doc(pid)
            sub["objectOperations"][0]["callbackUrl"] = f"http://127.0.0.1:{port}/notify"
            assert (await ven.call("POST", "/subscriptions", sub))[0] == 201
            eid = await _event(bl, pid)
            _, put = await bl.call("PUT", f"/events/{eid}", event_doc(pid, value=1.0))
            await bl.call("DELETE", f"/events/{eid}")
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert [n["operation"] for _, n in got] == ["POST", "PUT", "DELETE"]
            for auth_header, note in got:
                assert auth_header == "Bearer t0ken"
                check(note, "notification")
                check(note["object"], "event")
                assert note["objectType"] == "EVENT"
                assert note["object"]["id"] == eid
            assert got[1][1]["object"] == put
        finally:
            await runner.cleanup()

    body(main, tmp_path)


def test_ven_resources_crud_under_their_ven(tmp_path: Path) -> None:
    """/vens/{venID}/resources: venID set from the path, resourceName unique per VEN, another
    VEN's resource is 404 under this one, and deleting the VEN deletes its resources."""

    async def main(v: Vtn) -> None:
        ven = await v.client(VEN)
        a = (await ven.call("POST", "/vens", {"venName": "a"}))[1]["id"]
        b = (await ven.call("POST", "/vens", {"venName": "b"}))[1]["id"]
        attrs = [{"type": "MAX_POWER_EXPORT", "values": [5.0]}]
        status, made = await ven.call(
            "POST", f"/vens/{a}/resources", {"resourceName": "ev", "venID": b, "attributes": attrs}
        )
        assert status == 201, made
        rid = made["id"]
        assert made["venID"] == a
        assert made["objectType"] == "RESOURCE"
        assert (await ven.call("POST", f"/vens/{b}/resources", {"resourceName": "ev"}))[0] == 201
        assert (await ven.call("POST", f"/vens/{a}/resources", {"resourceName": "ev"}))[0] == 409
        assert (await ven.call("POST", f"/vens/{a}/resources", {"resourceName": ""}))[0] == 400
        assert (await ven.call("POST", "/vens/nope/resources", {"resourceName": "x"}))[0] == 404
        assert await ven.call("GET", f"/vens/{a}/resources/{rid}") == (200, made)
        assert (await ven.call("GET", f"/vens/{b}/resources/{rid}"))[0] == 404
        status, items = await ven.call("GET", f"/vens/{a}/resources", resourceName="ev")
        assert [i["id"] for i in items] == [rid]
        status, put = await ven.call(
            "PUT", f"/vens/{a}/resources/{rid}", {**made, "resourceName": "ev-1"}
        )
        assert status == 200
        assert put["createdDateTime"] == made["createdDateTime"]
        assert put["modificationDateTime"] > made["modificationDateTime"]
        bl = await v.client(BL, scope="read_all")
        assert (await bl.call("DELETE", f"/vens/{a}/resources/{rid}"))[0] == 403
        assert (await ven.call("DELETE", f"/vens/{a}"))[0] == 200
        assert [d["venID"] for d in v.state.resources.values()] == [b]
        assert (await ven.call("GET", f"/vens/{a}/resources/{rid}"))[0] == 404

    body(main, tmp_path)
