"""``gateway run SITE.toml``: drive the home the site file describes, following the utility
link it names (a 2030.5 server, an OpenADR 2.0b VTN, an OpenADR 3 VTN) or none.

The devices are reached at the addresses the file gives, over Modbus TCP, RTU over TCP or a
serial line: a real installation, or ``gateway simulate home SITE.toml`` in another terminal.
With no utility link the control loop runs alone: the home islands on an outage, keeps the
connection agreement's and the panel's limits, and reconnects after the enter-service delay.
Stops on SIGINT or SIGTERM (or after ``--for`` seconds), leaving every device in the state the
engine last confirmed and every unsent report in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TextIO

from gateway.core.units import Timestamp
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr3.adapter import Oadr3Gateway
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import NotificationRouter
from gateway.north.sep2.client import Http, Identity, TransportError, discover_dcap
from gateway.north.sep2.identity import certificate_der
from gateway.north.sep2.identity import lfdi as lfdi_of
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.telemetry import SiteRatings
from gateway.north.sep2.wellknown import WellKnownError
from gateway.runtime.heap import settle_heap
from gateway.runtime.north import Sep2Link, build
from gateway.runtime.run_config import RunConfig
from gateway.runtime.runner import Listener
from gateway.runtime.site import Site
from gateway.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
SiteFactory = Callable[[SqliteStore, Callable[[], Timestamp]], Site]


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _describe(config: RunConfig, out: TextIO) -> None:
    """One line per device, for people and for tools that read the home directly."""
    for d in config.devices:
        unit = d.unit_id if d.unit_id is not None else d.profile.unit_id
        out.write(f"  device {d.name}: {d.profile.name} at {d.url} unit {unit} ({d.role})\n")


async def run(
    config: RunConfig,
    out: TextIO,
    *,
    seconds: float | None = None,
    listener: Listener | None = None,
) -> int:
    """Drive the site, following whichever utility link the configuration names (or none).
    ``listener`` sees every action of the engine as it is carried out (a demo's narration)."""

    def site(store: SqliteStore, now: Callable[[], Timestamp]) -> Site:
        return Site(
            store,
            config.site,
            config.device_configs,
            now=now,
            profiles=config.profiles,
            listener=listener,
        )

    stop = _stop_on_signals()
    if seconds is not None:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    if len(config.links) > 1:
        named = ", ".join(f"[{k}]" for k in config.links)
        out.write(f"{config.path}: name one utility link at a time for now, found {named}\n")
        return 2
    out.write(f"site {config.name}: {len(config.devices)} devices\n")
    if config.sep2 is not None:
        return await _run_sep2(config, out, stop, site)
    if config.openadr2 is not None or config.openadr3 is not None:
        return await _run_openadr(config, out, stop, site)
    return await _run_local(config, out, stop, site)


async def _run_local(
    config: RunConfig, out: TextIO, stop: asyncio.Event, site_for: SiteFactory
) -> int:
    """No utility link: the control loop alone, on this machine's clock."""
    with SqliteStore(config.store) as store:
        async with site_for(store, time.time) as site:
            _describe(config, out)
            out.write(f"store {config.store}\n")
            out.write("no utility link: islanding on outages and keeping limits locally\n")
            out.flush()
            settle_heap()
            await site.runner.run(config.period_s, stop)
    log.info("stopped")
    return 0


async def _run_openadr(
    config: RunConfig, out: TextIO, stop: asyncio.Event, site_for: SiteFactory
) -> int:
    """One OpenADR VEN (2.0b or 3). OpenADR carries absolute UTC times and no time service, so
    the engine runs on this machine's clock (keep it synced)."""
    with SqliteStore(config.store) as store:
        async with site_for(store, time.time) as site:
            gateway: Oadr2Gateway | Oadr3Gateway
            if config.openadr2 is not None:
                gateway = build("openadr2", config.openadr2, site.runner.port, store)
                vtn = config.openadr2.vtn_url
            else:
                assert config.openadr3 is not None
                gateway = build("openadr3", config.openadr3, site.runner.port, store)
                vtn = config.openadr3.vtn
            _describe(config, out)
            out.write(f"store {config.store}\n")
            out.write(f"following {vtn}; Ctrl-C stops\n")
            out.flush()
            settle_heap()
            await gateway.run(stop, period_s=config.period_s)
    log.info("stopped")
    return 0


async def _run_sep2(
    config: RunConfig, out: TextIO, stop: asyncio.Event, site_for: SiteFactory
) -> int:
    c = config.sep2
    assert c is not None
    ratings = SiteRatings.of_site(config.site)
    context = tls.client_context(
        c.cert, c.key, c.chain, c.serca, check_hostname=c.check_hostname, pinned_lfdi=c.server_lfdi
    )
    async with AsyncExitStack() as stack:
        # The certificate's own LFDI: an aggregator's differs from the site's EndDevice.
        cert_lfdi = lfdi_of(certificate_der(c.cert.read_bytes()))
        http = await stack.enter_async_context(Http(c.base_url, context, lfdi=cert_lfdi))
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
                require_client_certificate=c.notify.require_certificate,
                on_unverified=router.unverified,
            )
            if not c.notify.require_certificate:
                log.warning(
                    "[sep2.notify] require_certificate = false: notifications from a sender "
                    "without a certificate are taken, but only as a reason to GET what they "
                    "name from the server; their content is not used"
                )
            await listener.start(c.notify.listen, c.notify.port)
            stack.push_async_callback(listener.stop)
            notify = (router, listener.url)
            out.write(f"notifications: {listener.url}\n")
        # One site file is one home: one EndDevice (the certificate's own, or the one
        # [[sep2.end_device]] an aggregator registered for this site).
        device = c.end_devices[0]
        store = stack.enter_context(SqliteStore(config.store))
        site = await stack.enter_async_context(site_for(store, http.time.now))
        identity = Identity(
            device.lfdi,
            device.sfdi,
            pin=device.pin,
            register=c.register,
            connection_point_id=device.connection_point,
        )
        link = Sep2Link(
            http, identity, ratings=ratings, notify=notify, pen=c.pen, csipaus=c.csipaus
        )
        gateway = build("sep2", link, site.runner.port, store)
        out.write(f"EndDevice {device.lfdi} (SFDI {device.sfdi}): store {config.store}\n")
        _describe(config, out)
        out.write(f"following {http.dcap_url}; Ctrl-C stops\n")
        out.flush()
        settle_heap()
        await gateway.run(stop, period_s=config.period_s)
        errors = "; ".join(gateway.client.errors[-3:]) or "none"
        out.write(
            f"{gateway.client.name}: {gateway.delivered} responses delivered, "
            f"last problems: {errors}\n"
        )
    log.info("stopped")
    return 0
