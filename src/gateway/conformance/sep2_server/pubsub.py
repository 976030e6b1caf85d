"""Subscriptions and notifications: the suite subscribes with a notificationURI on a listener
of its own, and (given a way to change the server's state) waits to be notified."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from pathlib import Path
from typing import Final

from gateway.conformance.sep2_server import bodies
from gateway.conformance.sep2_server.plays import link, ours, text
from gateway.conformance.sep2_server.probe import Listener, Probe, local, parse
from gateway.conformance.sep2_server.server import ServerTarget
from gateway.conformance.sep2_server.verdict import Verdict, created, walked
from gateway.conformance.sep2_server.walk import PAGE, Found, Walk, items, same_href

SUBSCRIBABLE: Final = frozenset({"1", "3"})  # a non-conditional subscription is taken
#: What the notification case subscribes to: where a control change shows.
CONTROLS: Final = ("DERControlList", "DefaultDERControl")
NO_CHANGE = (
    "needs a way to change a control on the server: --change CMD (a command that changes a "
    "DERControl or DefaultDERControl), or --change wait if the server changes one by itself"
)


def subscribable(w: Walk, kinds: tuple[str, ...]) -> list[Found]:
    return [
        f for k in kinds for f in w.found.get(k, []) if f.doc.get("subscribable") in SUBSCRIBABLE
    ]


def _subscription_list(t: ServerTarget, w: Walk, v: Verdict) -> str | None:
    edev = ours(w, t.lfdi)
    href = None if edev is None else link(edev, "SubscriptionListLink")
    v.check(
        "the client's EndDevice links a SubscriptionList",
        href is not None,
        "a SubscriptionListLink",
        "no EndDevice of ours" if edev is None else f"{href}",
    )
    return href


async def subscription(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """S2S-04: POST a Subscription (201 + Location), read it back, find it listed, DELETE it."""
    v = Verdict()
    w = await walked(t, probe)
    sub_list = _subscription_list(t, w, v)
    wanted = subscribable(w, ("DERControlList", "DefaultDERControl", "DERProgramList", "EndDevice"))
    hrefs = [f.href for f in wanted]
    v.check("a resource marked subscribable", bool(wanted), "subscribable=1 or 3", f"{hrefs}")
    if sub_list is None or not wanted:
        return v
    resource = wanted[0].href
    async with Listener(t.cert, t.key, t.ca, t.listen) as listener:
        uri = listener.uri("lifecycle")
        post = await probe.request("POST", sub_list, bodies.subscription(resource, uri))
        made = await created(v, probe, post, "Subscription")
        if made is None:
            return v
        location, got, doc = made.location, made.got, made.doc
        if doc is not None:
            v.expect(
                got,
                same_href(text(doc, "subscribedResource") or "", resource),
                f"subscribedResource {resource}",
                f"{text(doc, 'subscribedResource')}",
            )
            v.expect(
                got,
                text(doc, "notificationURI") == uri,
                f"notificationURI {uri}",
                f"{text(doc, 'notificationURI')}",
            )
        listing = await probe.get(sub_list, {"s": 0, "l": PAGE})
        there = listing.xml()
        hrefs = [] if there is None else [i.get("href") or "" for i in items(there)]
        v.expect(
            listing,
            any(same_href(h, location) for h in hrefs),
            f"the SubscriptionList holds {location}",
            f"{hrefs}",
        )
        gone = await probe.request("DELETE", location)
        v.expect(gone, gone.status in (200, 204), "200 or 204")
        after = await probe.get(location)
        v.expect(after, after.status == 404, "404 once deleted")
    return v


async def _change(t: ServerTarget, probe: Probe, v: Verdict) -> None:
    """Run the tester's --change command (``wait``: the server changes by itself)."""
    assert t.change is not None
    if t.change.strip() == "wait":
        probe.note(change="wait: the server changes a control by itself")
        return
    argv = shlex.split(t.change)
    env = {**os.environ, "SEP2_SERVER_URL": t.url}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
        )
        out, _ = await asyncio.wait_for(proc.communicate(), t.notify_timeout)
    except (OSError, TimeoutError) as e:
        seen = f"{type(e).__name__}: {e}"
        v.check(f"--change {t.change}", ok=False, expected="it runs and exits 0", seen=seen)
        return
    probe.note(change=t.change, status=proc.returncode, output=out.decode(errors="replace"))
    v.check(f"--change {t.change}", proc.returncode == 0, "exit status 0", f"{proc.returncode}")


async def notification(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """S2S-05: subscribed to a program's controls, the suite is notified when one changes."""
    v = Verdict()
    if t.change is None:
        v.not_run = NO_CHANGE
        return v
    w = await walked(t, probe)
    sub_list = _subscription_list(t, w, v)
    wanted = subscribable(w, CONTROLS)
    v.check(
        "a control resource marked subscribable",
        bool(wanted),
        f"a {' or '.join(CONTROLS)} with subscribable=1 or 3",
        f"{[f.href for f in wanted]}",
    )
    if sub_list is None or not wanted:
        return v
    async with Listener(t.cert, t.key, t.ca, t.listen) as listener:
        locations = []
        for n, f in enumerate(wanted):
            post = await probe.request(
                "POST", sub_list, bodies.subscription(f.href, listener.uri(str(n)))
            )
            if v.expect(
                post, post.status == 201 and "Location" in post.headers, "201 Created + Location"
            ):
                locations.append(post.headers["Location"])
        if not locations:
            return v
        # Only what arrives from the change on counts (a server may notify on subscribing).
        before = len(listener.received)
        listener.arrived.clear()
        await _change(t, probe, v)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.arrived.wait(), t.notify_timeout)
        for early in listener.received[:before]:
            probe.note(notification=early.path, before_the_change=True)
            t.received.append((f"Notification POST {early.path}", early.body))
        got = listener.received[before:]
        for notified in got:
            label = f"Notification POST {notified.path}"
            probe.note(notification=notified.path, body=notified.body.decode(errors="replace"))
            t.received.append((label, notified.body))
        v.check(
            "a Notification POSTed to the notificationURI",
            bool(got),
            f"within {t.notify_timeout:g} s of the change",
            f"{len(got)} received",
        )
        if got:
            note = got[0]
            doc = parse(note.body)
            name = "none" if doc is None else local(doc)
            v.check(
                f"Notification POST {note.path}", name == "Notification", "a Notification", name
            )
            if doc is not None:
                about = text(doc, "subscribedResource") or ""
                v.check(
                    f"Notification POST {note.path}",
                    any(same_href(about, f.href) for f in wanted),
                    f"subscribedResource one of {[f.href for f in wanted]}",
                    about or "none",
                )
        for location in locations:  # leave the server as found
            await probe.request("DELETE", location)
    return v
