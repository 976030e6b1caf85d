"""Which resources take a subscription: those the simulator serves marked so.

2030.5 (and sep.xsd's SubscribableResource / SubscribableList documentation): a resource's
``subscribable`` says whether the server takes subscriptions to it; absent is 0, "not
subscribable". A client that subscribes only where it is marked (py20305, the gateway) must hear
of every change it could hear of, and one that subscribes elsewhere must be told no, not be
taken and then never notified. So the simulator answers a Subscription by the very view it
serves at ``subscribedResource``: 1 or 3 takes one without a Condition, 2 or 3 one with.
"""

from __future__ import annotations

from typing import Final

from gateway.north.sep2.pubsub import Subscription
from gateway.sim.utility.notifier import resource_at
from gateway.sim.utility.records import EndDeviceRecord
from gateway.sim.utility.state import UtilityState

NON_CONDITIONAL: Final = frozenset({1, 3})
CONDITIONAL: Final = frozenset({2, 3})


def refusal(state: UtilityState, wanted: Subscription, subscriber: EndDeviceRecord) -> str | None:
    """Why the simulator refuses ``wanted`` (None: it takes it)."""
    href = wanted.subscribedResource
    resource = resource_at(state, href, 1, subscriber)
    if resource is None:
        return f"{href}: no resource here that this server notifies"
    value = getattr(resource, "subscribable", None) or 0
    allowed = CONDITIONAL if wanted.Condition is not None else NON_CONDITIONAL
    if value not in allowed:
        kind = "a conditional" if wanted.Condition is not None else "a"
        return (
            f"{href}: not subscribable (subscribable={value}): {kind} subscription needs "
            f"{' or '.join(str(v) for v in sorted(allowed))}"
        )
    return None
