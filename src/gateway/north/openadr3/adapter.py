"""The OpenADR 3 north adapter: a VEN client and webhook listener, plugged into the site's port.

Shaped like :class:`~gateway.north.sep2.adapter.Sep2Gateway`: it receives the site as a
:class:`~gateway.core.ports.SitePort` (the client's ``Deps`` are drawn from it) and the site's
store as a :class:`~gateway.core.ports.StateStore`; the VEN (``VenClient.run``: token,
programs, subscriptions, polling, notifications, reports) runs under the site's supervision
next to its control loop, and feeds what changed into the site. With ``[openadr3.webhook]`` a
listener takes the VTN's notifications and queues them for the VEN's task; polling carries on
as the fallback.

The engine runs on the site's clock (OpenADR 3 has no time resource; the VTN's event times
are absolute UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

from gateway.core.messages import Input
from gateway.core.ports import Jobs, SitePort, StateStore
from gateway.north.openadr3.client import Deps, Http, VenClient
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.openadr3.webhook import WebhookListener


class Oadr3Gateway:
    def __init__(
        self,
        site: SitePort,
        store: StateStore,
        config: Oadr3Config,
        *,
        ssl_context: ssl.SSLContext | None = None,
        webhook_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.config = config
        self.http = Http(config, ssl_context=ssl_context)
        deps = Deps(
            deliver=self._deliver,
            observed=site.observed,
            assess=site.assess,
            now=site.now,
            store=store,
        )
        self.client = VenClient(self.http, config, deps)
        self.listener: WebhookListener | None = None
        if config.webhook is not None:
            w = config.webhook
            if webhook_ssl is None and w.cert_file is not None and w.key_file is not None:
                webhook_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                webhook_ssl.load_cert_chain(w.cert_file, w.key_file)
            self.listener = WebhookListener(
                self.client.enqueue,
                host=w.host,
                port=w.port,
                public_url=w.public_url,
                ssl_context=webhook_ssl,
            )

    async def _deliver(self, inputs: list[Input]) -> None:
        for item in inputs:
            await self.site.feed(item)

    @contextlib.asynccontextmanager
    async def tasks(self, stop: asyncio.Event) -> AsyncIterator[Jobs]:
        """This link's own tasks, for the site's one supervision (``SitePort.run``) next to
        the other links' and the one control loop; its HTTP session and webhook listener
        are open while they run."""
        async with self.http:
            if self.listener is not None:
                await self.listener.start()
                self.listener.bearer = self.client.new_callback(self.listener.url)
            try:
                yield {"openadr3-ven": lambda: self.client.run(stop)}
            finally:
                if self.listener is not None:
                    await self.listener.stop()

    async def run(self, stop: asyncio.Event, *, period_s: float = 1.0) -> None:
        """The site's control loop with this link alone."""
        async with self.tasks(stop) as jobs:
            await self.site.run(stop, jobs, period_s=period_s)
