"""The north table: each link kind builds its adapter from its section, the port and the store."""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

import pytest

from gateway.core.engine import Engine
from gateway.core.ports import SitePort
from gateway.demo.evening import demo_site
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr2.config import Oadr2Config
from gateway.north.openadr3.adapter import Oadr3Gateway
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import Http, Identity
from gateway.north.sep2.telemetry import SiteRatings
from gateway.runtime.north import KINDS, NORTH, Sep2Link, build
from gateway.runtime.runner import Runner
from gateway.runtime.south import South
from gateway.store.memory import MemoryStore

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


def _port() -> SitePort:
    engine = Engine(demo_site(), draw=lambda bound: 0)
    return Runner(engine, MemoryStore(), cast("South", object()), now=lambda: 10.0).port


def _oadr3() -> Oadr3Config:
    return Oadr3Config(
        vtn="https://vtn.example/openadr3",
        client_id="gw",
        client_secret="s3cret",
        ven_name="gw",
        programs=(),
    )


def test_the_table_has_one_row_per_link_kind() -> None:
    assert set(NORTH) == set(KINDS) == {"sep2", "openadr2", "openadr3"}


def test_openadr2_is_built_from_its_section_the_port_and_the_store() -> None:
    port, store, cfg = _port(), MemoryStore(), Oadr2Config(vtn_url="http://vtn", ven_name="gw")
    gateway = build("openadr2", cfg, port, store)
    assert isinstance(gateway, Oadr2Gateway)
    assert (gateway.site, gateway.store, gateway.config) == (port, store, cfg)


def test_openadr3_is_built_from_its_section_the_port_and_the_store() -> None:
    port, store, cfg = _port(), MemoryStore(), _oadr3()
    gateway = build("openadr3", cfg, port, store)
    assert isinstance(gateway, Oadr3Gateway)
    assert (gateway.site, gateway.store, gateway.config) == (port, store, cfg)
    assert gateway.client.deps.now() == 10.0  # the VEN's clock is the site's


def test_sep2_is_built_per_end_device_from_its_link() -> None:
    async def body() -> None:
        port, store = _port(), MemoryStore()
        router = NotificationRouter()
        http = Http("https://utility.example/dcap", ssl.create_default_context())
        link = Sep2Link(
            http,
            Identity(LFDI, 16726121139),
            ratings=SiteRatings.of_site(demo_site()),
            notify=(router, "https://gw.example/notify"),
            pen=40732,
            csipaus=False,
        )
        gateway = build("sep2", link, port, store)
        assert isinstance(gateway, Sep2Gateway)
        assert (gateway.site, gateway.store) == (port, store)
        assert gateway.client.http is http
        assert router.clients == [gateway.client]
        assert gateway.client.notify_uri == "https://gw.example/notify"

    asyncio.run(body())


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'openadr4' \(known: sep2, openadr2, openadr3\)"):
        build("openadr4", _oadr3(), _port(), MemoryStore())


def test_a_section_of_another_kind_is_refused_by_name() -> None:
    with pytest.raises(
        TypeError, match="'openadr2' is built from a Oadr2Config, not a Oadr3Config"
    ):
        build("openadr2", _oadr3(), _port(), MemoryStore())
