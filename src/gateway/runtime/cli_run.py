"""``gateway run CONFIG``: follow a 2030.5 server and drive the site (simulated home today).

One :class:`~gateway.runtime.sep2_site.Sep2Gateway` per EndDevice over one TLS identity and
one connection pool; in aggregator mode each EndDevice drives its own simulated home and has its
own store. Stops on Ctrl-C (or after ``--for`` seconds), leaving every device in the state the
engine last confirmed and every unsent report in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TextIO

from gateway.north.sep2 import tls
from gateway.north.sep2.client import Http, Identity
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.telemetry import SiteRatings
from gateway.runtime.demo import demo_site
from gateway.runtime.modbus_site import ModbusSite
from gateway.runtime.run_config import RunConfig
from gateway.runtime.sep2_site import NotificationRouter, Sep2Gateway
from gateway.sim.clock import DEFAULT_START
from gateway.store.sqlite import SqliteStore


async def run(config: RunConfig, out: TextIO, *, seconds: float | None = None) -> int:
    c = config.sep2
    base = demo_site()
    delay = replace(base.enter_service, delay_s=config.enter_service_delay_s)
    site_config = replace(base, enter_service=delay)
    ratings = SiteRatings.of_site(site_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    context = tls.client_context(
        c.cert, c.key, c.chain, c.serca, check_hostname=c.check_hostname, pinned_lfdi=c.server_lfdi
    )
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(Http(c.dcap, context))
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
                    site.runner,
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
                f"EndDevice {device.lfdi} (SFDI {device.sfdi}): simulated home "
                f"{', '.join(d.url for d in site.home.describe())}; store {config.store_for(i)}\n"
            )
        out.write(f"following {c.dcap}; Ctrl-C stops\n")
        out.flush()
        if seconds is not None:
            loop.call_later(seconds, stop.set)
        await asyncio.gather(*(g.run(stop, period_s=config.period_s) for g in gateways))
        for g in gateways:
            errors = "; ".join(g.client.errors[-3:]) or "none"
            out.write(
                f"{g.client.name}: {g.delivered} responses delivered, last problems: {errors}\n"
            )
    logging.getLogger(__name__).info("stopped")
    return 0
