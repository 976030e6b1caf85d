"""A gateway that follows an OpenADR 3 VTN: VEN client, webhook listener, engine and devices.

Shaped like :class:`~gateway.runtime.sep2_site.Sep2Gateway`: two tasks share the site's
:class:`Runner`, the control loop (``Runner.run``) and the VEN (``VenClient.run``: token,
programs, subscriptions, polling, notifications, reports), which feeds what changed into the
same runner. With ``[openadr3.webhook]`` a listener takes the VTN's notifications and queues them
for the VEN's task; polling carries on as the fallback.

The engine runs on the runner's clock (OpenADR 3 has no time resource; the VTN's event times
are absolute UTC).
"""

from __future__ import annotations

import asyncio
import ssl

from gateway.core.controls import ControlSet
from gateway.core.messages import Input, Observed
from gateway.core.units import Timestamp
from gateway.north.openadr3.client import Deps, Http, VenClient
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.openadr3.webhook import WebhookListener
from gateway.runtime.runner import Runner
from gateway.runtime.supervise import supervise
from gateway.store.api import Store


class Oadr3Gateway:
    def __init__(
        self,
        runner: Runner,
        store: Store,
        config: Oadr3Config,
        *,
        ssl_context: ssl.SSLContext | None = None,
        webhook_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.config = config
        self.http = Http(config, ssl_context=ssl_context)
        deps = Deps(
            deliver=self._deliver,
            observed=self._observed,
            assess=self._assess,
            now=runner.now,
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
            await self.runner.feed(item)

    def _observed(self) -> Observed | None:
        return self.runner.last_observed

    def _assess(self, controls: ControlSet, now: Timestamp) -> list[str]:
        return self.runner.engine.assess(controls, now)

    async def run(self, stop: asyncio.Event, *, period_s: float = 1.0) -> None:
        async with self.http:
            if self.listener is not None:
                await self.listener.start()
                self.listener.bearer = self.client.new_callback(self.listener.url)
            try:
                await supervise(
                    stop,
                    {
                        "control-loop": self.runner.run(period_s, stop),
                        "openadr3-ven": self.client.run(stop),
                    },
                )
            finally:
                if self.listener is not None:
                    await self.listener.stop()
