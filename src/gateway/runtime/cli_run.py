"""``gateway run SITE.toml``: drive the home the site file describes, following the utility
links it names (a 2030.5 server, an OpenADR 2.0b VTN, an OpenADR 3 VTN: any of them, all of
them at once, or none).

The devices are reached at the addresses the file gives, over Modbus TCP, RTU over TCP or a
serial line: a real installation, or ``gateway simulate home SITE.toml`` in another terminal.
With no utility link the control loop runs alone: the home islands on an outage, keeps the
connection agreement's and the panel's limits, and reconnects after the enter-service delay.
Stops on SIGINT or SIGTERM (or after ``--for`` seconds), leaving every device in the state the
engine last confirmed and every unsent report in the outbox.

Several links make one site all the same: one engine, one South, one store, one control loop;
each link's adapter opens what it needs and its own tasks join the loop under one supervision
(a link whose task fails is restarted with back-off, the others and the loop carry on). The
engine runs on the 2030.5 server's time when [sep2] is named, else on this machine's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TextIO

from gateway.api.server import ApiServer
from gateway.core.units import Timestamp
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import Http, Identity, TransportError, discover_dcap
from gateway.north.sep2.identity import certificate_der
from gateway.north.sep2.identity import lfdi as lfdi_of
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.telemetry import SiteRatings, device_category
from gateway.north.sep2.wellknown import WellKnownError
from gateway.runtime.api_site import RuntimeApiSite
from gateway.runtime.heap import settle_heap
from gateway.runtime.north import NorthAdapter, Sep2Link, build
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
    stop: asyncio.Event | None = None,
) -> int:
    """Drive the site, following every utility link the configuration names (or none).
    ``listener`` sees every action of the engine as it is carried out (a demo's narration);
    a caller that passes ``stop`` (a demo whose script ends) sets it to stop the run, and
    handles SIGINT and SIGTERM itself."""

    def site(store: SqliteStore, now: Callable[[], Timestamp]) -> Site:
        return Site(
            store,
            config.site,
            config.device_configs,
            now=now,
            profiles=config.profiles,
            listener=listener,
        )

    if stop is None:
        stop = _stop_on_signals()
    if seconds is not None:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    out.write(f"site {config.name}: {len(config.devices)} devices\n")
    if not config.links:
        return await _run_local(config, out, stop, site)
    return await _run_links(config, out, stop, site)


async def _run_local(
    config: RunConfig, out: TextIO, stop: asyncio.Event, site_for: SiteFactory
) -> int:
    """No utility link: the control loop alone, on this machine's clock."""
    async with AsyncExitStack() as stack:
        store = stack.enter_context(SqliteStore(config.store))
        site = await stack.enter_async_context(site_for(store, time.time))
        if not await _serve_api(config, site, store, out, stack):
            return 2
        _describe(config, out)
        out.write(f"store {config.store}\n")
        out.write("no utility link: islanding on outages and keeping limits locally\n")
        out.flush()
        settle_heap()
        await site.runner.run(config.period_s, stop)
    log.info("stopped")
    return 0


async def _serve_api(
    config: RunConfig, site: Site, store: SqliteStore, out: TextIO, stack: AsyncExitStack
) -> bool:
    """The local API and dashboard, when the site file names [api]; False (said on ``out``)
    when its address cannot be bound."""
    if config.api is None:
        return True
    server = ApiServer(RuntimeApiSite(site.runner, config), store, config.api)
    try:
        await stack.enter_async_context(server)
    except OSError as e:
        out.write(f"[api] cannot listen on {config.api.listen}:{config.api.port}: {e}\n")
        return False
    writes = "writes need the token" if config.api.token_file else "read-only (no token_file)"
    out.write(f"local API and dashboard: {server.url}/ ({writes})\n")
    return True


@dataclass(frozen=True, slots=True)
class _Sep2Start:
    """The [sep2] table made ready: its connection, its listener, this site's EndDevice."""

    http: Http
    link: Sep2Link
    device: str


async def _run_links(
    config: RunConfig, out: TextIO, stop: asyncio.Event, site_for: SiteFactory
) -> int:
    """Every link the file names, on one site. OpenADR carries absolute UTC times and no time
    service: without [sep2] the engine runs on this machine's clock (keep it synced); with
    it, on the 2030.5 server's (CSIP's time rules), which OpenADR events are then read on."""
    async with AsyncExitStack() as stack:
        sep2: _Sep2Start | None = None
        if config.sep2 is not None:
            sep2 = await _start_sep2(config, out, stack)
            if sep2 is None:
                return 2
        store = stack.enter_context(SqliteStore(config.store))
        now = sep2.http.time.now if sep2 is not None else time.time
        site = await stack.enter_async_context(site_for(store, now))
        if not await _serve_api(config, site, store, out, stack):
            return 2
        port = site.runner.port
        adapters: list[tuple[str, NorthAdapter, str]] = []
        if sep2 is not None:
            gateway = build("sep2", sep2.link, port, store)
            adapters.append(("sep2", gateway, str(sep2.http.dcap_url)))
            out.write(f"EndDevice {sep2.device}: store {config.store}\n")
        if config.openadr2 is not None:
            oadr2 = build("openadr2", config.openadr2, port, store)
            adapters.append(("openadr2", oadr2, config.openadr2.vtn_url))
        if config.openadr3 is not None:
            oadr3 = build("openadr3", config.openadr3, port, store)
            adapters.append(("openadr3", oadr3, config.openadr3.vtn))
        jobs: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        for _kind, adapter, _url in adapters:
            jobs.update(await stack.enter_async_context(adapter.tasks(stop)))
        _describe(config, out)
        if sep2 is None:
            out.write(f"store {config.store}\n")
        for kind, _adapter, url in adapters:
            out.write(f"following {url} ({kind}); Ctrl-C stops\n")
        out.flush()
        settle_heap()
        await port.run(stop, jobs, period_s=config.period_s)
        for _kind, adapter, _url in adapters:
            if isinstance(adapter, Sep2Gateway):
                errors = "; ".join(adapter.client.errors[-3:]) or "none"
                out.write(
                    f"{adapter.client.name}: {adapter.delivered} responses delivered, "
                    f"last problems: {errors}\n"
                )
    log.info("stopped")
    return 0


def identity_of(config: RunConfig) -> Identity:
    """This site's EndDevice: the certificate's own, or the one ``[[sep2.end_device]]`` names
    (an aggregator's site); its deviceCategory as configured, else one bit per kind of DER in
    the site."""
    c = config.sep2
    assert c is not None
    device = c.end_devices[0]
    return Identity(
        device.lfdi,
        device.sfdi,
        pin=device.pin,
        register=c.register,
        device_category=c.device_category or device_category(config.site),
        connection_point_id=device.connection_point,
    )


async def _start_sep2(config: RunConfig, out: TextIO, stack: AsyncExitStack) -> _Sep2Start | None:
    """The [sep2] connection (service discovery first, where asked), its notification listener
    and this site's EndDevice, entered on ``stack``; None (said on ``out``) if discovery
    failed."""
    c = config.sep2
    assert c is not None
    ratings = SiteRatings.of_site(config.site)
    context = tls.client_context(
        c.cert, c.key, c.chain, c.serca, check_hostname=c.check_hostname, pinned_lfdi=c.server_lfdi
    )
    # The certificate's own LFDI: an aggregator's differs from the site's EndDevice.
    cert_lfdi = lfdi_of(certificate_der(c.cert.read_bytes()))
    http = await stack.enter_async_context(Http(c.base_url, context, lfdi=cert_lfdi))
    if c.dcap is None:
        try:
            version, url = await discover_dcap(http)
        except (WellKnownError, TransportError) as e:
            out.write(f"service discovery at {c.server} failed: {e}\n")
            return None
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
    # One site file is one home: one EndDevice.
    identity = identity_of(config)
    link = Sep2Link(http, identity, ratings=ratings, notify=notify, pen=c.pen, csipaus=c.csipaus)
    return _Sep2Start(http, link, f"{identity.lfdi} (SFDI {identity.sfdi})")
