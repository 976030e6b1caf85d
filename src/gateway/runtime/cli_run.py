"""``gateway run CONFIG``: follow the utility link the file names (a 2030.5 server, an OpenADR
2.0b VTN or an OpenADR 3 VTN) and drive the site (the simulated home today).

One :class:`~gateway.north.sep2.adapter.Sep2Gateway` per EndDevice over one TLS identity and
one connection pool; in aggregator mode each EndDevice drives its own simulated home and has its
own store. Stops on Ctrl-C (or after ``--for`` seconds), leaving every device in the state the
engine last confirmed and every unsent report in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TextIO

from gateway.core.site import SiteConfig
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr3.adapter import Oadr3Gateway
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import Http, Identity, TransportError, discover_dcap
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.telemetry import SiteRatings
from gateway.north.sep2.wellknown import WellKnownError
from gateway.runtime.demo import demo_site
from gateway.runtime.heap import settle_heap
from gateway.runtime.modbus_site import ModbusSite
from gateway.runtime.run_config import RunConfig
from gateway.sim.clock import DEFAULT_START
from gateway.store.sqlite import SqliteStore


def _site_config(config: RunConfig) -> SiteConfig:
    base = demo_site()
    delay = replace(base.enter_service, delay_s=config.enter_service_delay_s)
    return replace(base, enter_service=delay, ders=config.with_nameplates(base.ders))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _describe(site: ModbusSite, out: TextIO) -> None:
    """One line per simulated device, for people and for tools that read the home directly."""
    for d in site.home.describe():
        out.write(f"  simulated {d.name}: {d.profile} at {d.url} unit {d.unit_id}\n")


async def run(config: RunConfig, out: TextIO, *, seconds: float | None = None) -> int:
    """Follow whichever utility link the configuration names."""
    stop = _stop_on_signals()
    if seconds is not None:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    if config.openadr2 is not None or config.openadr3 is not None:
        return await _run_openadr(config, out, stop)
    return await _run_sep2(config, out, stop)


async def _run_openadr(config: RunConfig, out: TextIO, stop: asyncio.Event) -> int:
    """One OpenADR VEN (2.0b or 3) driving the simulated home. OpenADR carries absolute UTC
    times and no time service, so the engine runs on this machine's clock (keep it synced)."""
    site_config = _site_config(config)
    with SqliteStore(config.store) as store:
        site = ModbusSite(store, site_config, start=DEFAULT_START, now=time.time, ack_reports=False)
        async with site:
            gateway: Oadr2Gateway | Oadr3Gateway
            if config.openadr2 is not None:
                gateway = Oadr2Gateway(site.runner.port, store, config.openadr2)
                vtn = config.openadr2.vtn_url
            else:
                assert config.openadr3 is not None
                gateway = Oadr3Gateway(site.runner.port, store, config.openadr3)
                vtn = config.openadr3.vtn
            _describe(site, out)
            out.write(f"store {config.store}\n")
            out.write(f"following {vtn}; Ctrl-C stops\n")
            out.flush()
            settle_heap()
            await gateway.run(stop, period_s=config.period_s)
    logging.getLogger(__name__).info("stopped")
    return 0


async def _run_sep2(config: RunConfig, out: TextIO, stop: asyncio.Event) -> int:
    c = config.sep2
    assert c is not None
    site_config = _site_config(config)
    ratings = SiteRatings.of_site(site_config)
    context = tls.client_context(
        c.cert, c.key, c.chain, c.serca, check_hostname=c.check_hostname, pinned_lfdi=c.server_lfdi
    )
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(Http(c.base_url, context))
        if c.dcap is None:
            try:
                version, url = await discover_dcap(http)
            except (WellKnownError, TransportError) as e:
                out.write(f"service discovery at {c.server} failed: {e}\n")
                return 2
            out.write(f"{c.server}/.well-known/csipaus: CSIP-AUS {version} at {url}\n")
        notify = None
        if c.notify is not None:
            router = NotificationRouter()
            listener = NotificationListener(
                cert=c.cert,
                key=c.key,
                chain=c.chain,
                serca=c.serca,
                on_notification=router,
                pinned_lfdi=c.server_lfdi,
                public_host=c.notify.host,
            )
            await listener.start(c.notify.listen, c.notify.port)
            stack.push_async_callback(listener.stop)
            notify = (router, listener.url)
            out.write(f"notifications: {listener.url}\n")
        gateways: list[Sep2Gateway] = []
        for i, device in enumerate(c.end_devices):
            store = stack.enter_context(SqliteStore(config.store_for(i)))
            site = ModbusSite(
                store, site_config, start=DEFAULT_START, now=http.time.now, ack_reports=False
            )
            await stack.enter_async_context(site)
            identity = Identity(
                device.lfdi,
                device.sfdi,
                pin=device.pin,
                register=c.register,
                connection_point_id=device.connection_point,
            )
            gateways.append(
                Sep2Gateway(
                    site.runner.port,
                    store,
                    http,
                    identity,
                    ratings=ratings,
                    notify=notify,
                    pen=c.pen,
                    csipaus=c.csipaus,
                )
            )
            out.write(
                f"EndDevice {device.lfdi} (SFDI {device.sfdi}): store {config.store_for(i)}\n"
            )
            _describe(site, out)
        out.write(f"following {http.dcap_url}; Ctrl-C stops\n")
        out.flush()
        settle_heap()
        await asyncio.gather(*(g.run(stop, period_s=config.period_s) for g in gateways))
        for g in gateways:
            errors = "; ".join(g.client.errors[-3:]) or "none"
            out.write(
                f"{g.client.name}: {g.delivered} responses delivered, last problems: {errors}\n"
            )
    logging.getLogger(__name__).info("stopped")
    return 0
