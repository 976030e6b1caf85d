"""The notification listener over real mutual TLS, with a freshly minted test PKI.

The gateway's certificate serves the listener; the utility server's ("server") is the client
that POSTs. Another device of the same PKI passes TLS but not the LFDI pin; a device under a
rogue SERCA never completes the handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import aiohttp
import pytest

from gateway.core.errors import ConfigError
from gateway.north.sep2 import codec
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
)
from gateway.north.sep2.notify import ListenerError, NotificationListener
from gateway.north.sep2.pki import DeviceFiles, PkiFiles, init_pki
from gateway.north.sep2.pubsub import Notification, NotificationList
from gateway.north.sep2.tls import client_context

TIMEOUT = 5.0
CONTROL = DERControl(
    mRID="A1" * 16,
    creationTime=1764072000,
    EventStatus=EventStatus(currentStatus=1, dateTime=1764072000),
    interval=DateTimeInterval(duration=3600, start=1764072000),
    DERControlBase=DERControlBase(opModConnect=False, opModExpLimW=ActivePower(1500)),
)
NOTIFICATION = Notification(
    subscribedResource="/derp/1/derc",
    status=0,
    subscriptionURI="https://utility.example/edev/1/sub/1",
    Resource=DERControlList(all=1, results=1, DERControl=(CONTROL,), href="/derp/1/derc"),
)
BODY = codec.encode(NOTIFICATION)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other"))


@dataclass
class Received:
    notifications: list[Notification] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, n: Notification) -> None:
        if self.fail:
            raise RuntimeError("handler broke")
        self.notifications.append(n)


def _listener(pki: PkiFiles, received: Received, **kw: object) -> NotificationListener:
    gw = pki.device("gateway")
    return NotificationListener(
        cert=gw.cert, key=gw.key, chain=gw.chain, serca=pki.serca, on_notification=received,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _client(pki: PkiFiles, leaf: DeviceFiles) -> ssl.SSLContext:
    # The gateway's certificate names no host (a device certificate): pin its LFDI instead.
    gw = pki.device("gateway")
    return client_context(
        leaf.cert, leaf.key, leaf.chain, pki.serca, check_hostname=False, pinned_lfdi=gw.lfdi
    )


async def _request(
    url: str, ctx: ssl.SSLContext, body: bytes = BODY, method: str = "POST"
) -> tuple[int, str, str | None]:
    connector = aiohttp.TCPConnector(ssl=ctx)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    headers = {"Content-Type": "application/sep+xml"}
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text(), response.headers.get("Allow")


def run(pki: PkiFiles, received: Received, go: object, **kw: object) -> None:
    async def main() -> None:
        listener = _listener(pki, received, **kw)
        await listener.start("127.0.0.1", 0)
        try:
            await go(listener)  # type: ignore[operator]
        finally:
            await listener.stop()
            await asyncio.sleep(0.01)  # let aborted transports finish closing

    asyncio.run(main())


def test_a_notification_is_decoded_and_handed_over_with_201(pki: PkiFiles) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        assert listener.url.startswith("https://127.0.0.1:")
        assert listener.url.endswith("/notify")
        status, text, _ = await _request(listener.url, _client(pki, pki.server))
        assert (status, text) == (201, "")

    run(pki, received, go, pinned_lfdi=pki.server.lfdi)
    assert received.notifications == [NOTIFICATION]
    resource = received.notifications[0].Resource
    assert isinstance(resource, DERControlList)
    assert resource.DERControl[0].DERControlBase.opModConnect is False


def test_a_notification_list_is_handed_over_one_by_one(pki: PkiFiles) -> None:
    received = Received()
    other = Notification("/edev/1", 1, "https://utility.example/edev/1/sub/2")
    batch = codec.encode(NotificationList(all=2, results=2, Notification=(NOTIFICATION, other)))

    async def go(listener: NotificationListener) -> None:
        assert (await _request(listener.url, _client(pki, pki.server), batch))[0] == 204

    run(pki, received, go, success_status=204)
    assert received.notifications == [NOTIFICATION, other]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<Notification", "not well-formed"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "DOCTYPE"),
        (codec.encode(CONTROL), "expected a Notification"),
        (BODY.replace(b"<status>0</status>", b"<status>300</status>"), "Notification/status"),
        (BODY.replace(b'xsi:type="DERControlList"', b'xsi:type="Tariff"'), "xsi:type"),
    ],
)
def test_a_bad_body_is_400_with_the_reason(
    pki: PkiFiles, body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        status, text, _ = await _request(listener.url, _client(pki, pki.server), body)
        assert status == 400
        assert reason in text

    run(pki, received, go)
    assert received.notifications == []
    assert any("refused a notification" in r.getMessage() for r in caplog.records)


def test_an_oversized_body_is_refused_before_decoding(pki: PkiFiles) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        status, _, _ = await _request(listener.url, _client(pki, pki.server), b" " * 5000 + BODY)
        assert status == 413

    run(pki, received, go, max_bytes=4096)
    assert received.notifications == []


def test_wrong_path_is_404_and_wrong_method_405_with_allow(pki: PkiFiles) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        ctx = _client(pki, pki.server)
        status, _, _ = await _request(listener.url.replace("/notify", "/other"), ctx)
        assert status == 404
        status, _, allow = await _request(listener.url, ctx, b"", method="GET")
        assert (status, allow) == (405, "POST")
        status, _, allow = await _request(listener.url, ctx, BODY, method="PUT")
        assert (status, allow) == (405, "POST")

    run(pki, received, go)
    assert received.notifications == []


def test_a_device_other_than_the_pinned_server_is_403(pki: PkiFiles) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        status, text, _ = await _request(listener.url, _client(pki, pki.device("other")))
        assert status == 403
        assert pki.device("other").lfdi in text

    run(pki, received, go, pinned_lfdi=pki.server.lfdi)
    assert received.notifications == []


def test_a_client_with_a_rogue_certificate_never_gets_a_connection(pki: PkiFiles) -> None:
    received = Received()

    async def go(listener: NotificationListener) -> None:
        with pytest.raises(aiohttp.ClientError):
            await _request(listener.url, _client(pki, pki.rogue_device))

    run(pki, received, go)
    assert received.notifications == []


def test_a_failing_handler_is_500_so_the_server_may_retry(pki: PkiFiles) -> None:
    received = Received(fail=True)

    async def go(listener: NotificationListener) -> None:
        assert (await _request(listener.url, _client(pki, pki.server)))[0] == 500

    run(pki, received, go)


def test_lifecycle_and_configuration_errors(pki: PkiFiles) -> None:
    received = Received()
    listener = _listener(pki, received, public_host="gw.example")
    with pytest.raises(RuntimeError, match="not started"):
        _ = listener.url

    async def main() -> None:
        port = await listener.start()
        assert listener.url == f"https://gw.example:{port}/notify"
        with pytest.raises(RuntimeError, match="already started"):
            await listener.start()
        await listener.stop()
        await listener.stop()

    asyncio.run(main())
    with pytest.raises(ValueError, match="absolute"):
        _listener(pki, received, path="notify")
    with pytest.raises(ValueError, match="success_status"):
        _listener(pki, received, success_status=202)
    with pytest.raises(ValueError, match="LFDI"):
        _listener(pki, received, pinned_lfdi="123")


def test_a_port_in_use_is_a_configuration_error_saying_where_and_what_to_do(
    pki: PkiFiles,
) -> None:
    received = Received()
    first, second = _listener(pki, received), _listener(pki, received)

    async def main() -> None:
        port = await first.start()
        try:
            with pytest.raises(ListenerError) as caught:
                await second.start("127.0.0.1", port)
        finally:
            await first.stop()
        message = str(caught.value)
        assert isinstance(caught.value, ConfigError)
        assert f"cannot listen for 2030.5 notifications on 127.0.0.1:{port}" in message
        assert "already in use" in message
        assert "[sep2.notify] port" in message
        with pytest.raises(RuntimeError, match="not started"):
            _ = second.url  # nothing was left half started
        assert await second.start("127.0.0.1", port) == port  # the port is free again
        await second.stop()

    asyncio.run(main())
