"""The local API: the home's state as JSON, its changes as server-sent events, and the
homeowner's few writes (island, reconnect, clear a FAULT), for the dashboard and for scripts.

An adapter like the north ones: it sees the site through :class:`~gateway.api.site.ApiSite`
(the core's vocabulary and the store), never the runner or the devices. docs/api.md and
``openapi.yaml`` describe every route; a test keeps the two in step.
"""
