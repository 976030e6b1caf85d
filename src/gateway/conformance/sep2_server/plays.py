"""The HTTP cases: registration, discovery, group assignment, request and response handling,
paging, Response POSTs, and the schema validity of every body received."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Final
from urllib.parse import urljoin

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.conformance.sep2_server import bodies, schema
from gateway.conformance.sep2_server.probe import SEP_XML, Probe, local
from gateway.conformance.sep2_server.server import ServerTarget
from gateway.conformance.sep2_server.verdict import Verdict, created, walked
from gateway.conformance.sep2_server.walk import PAGE, Walk, children, items, walk

#: What discovery must reach from /dcap (a control and a default only once provisioned).
REACHED: Final = (
    "EndDevice",
    "FunctionSetAssignments",
    "DERProgram",
    "Time",
    "MirrorUsagePointList",
)
PROVISIONED: Final = ("DERControl", "DefaultDERControl")
PAGED_ITEMS: Final = 4  # items of a list read one page (l=1) at a time


def text(doc: etree._Element, name: str) -> str | None:
    for c in children(doc):
        if local(c) == name:
            return str(c.text or "").strip()
    return None


def link(doc: etree._Element, name: str) -> str | None:
    for c in children(doc):
        if local(c) == name:
            href = c.get("href")
            return None if href is None else str(href)
    return None


def ours(w: Walk, lfdi: str) -> etree._Element | None:
    """The EndDevice of the client certificate, among those discovery found."""
    for f in w.found.get("EndDevice", []):
        if (text(f.doc, "lFDI") or "").upper() == lfdi.upper():
            return f.doc
    return None


def _now() -> int:
    return int(time.time())


async def registration(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    v = Verdict()
    dcap = await probe.get(t.dcap)
    doc = dcap.xml()
    edl = None if doc is None else link(doc, "EndDeviceListLink")
    if not v.expect(dcap, edl is not None, "a DeviceCapability with an EndDeviceListLink"):
        return v
    assert edl is not None
    listing = await probe.get(edl, {"s": 0, "l": PAGE})
    there = listing.xml()
    known = (
        []
        if there is None
        else [e for e in items(there) if (text(e, "lFDI") or "").upper() == t.lfdi]
    )
    if known:
        v.not_run = (
            f"the client certificate's EndDevice is registered already ({known[0].get('href')}): "
            "run with an unregistered certificate to judge in-band registration"
        )
        return v
    post = await probe.request("POST", edl, bodies.end_device(t.lfdi, t.sfdi, _now()))
    if post.status in (403, 405):
        v.not_run = f"the server takes no in-band registration ({post.label} answered {post.seen})"
        return v
    made = await created(v, probe, post, "EndDevice")
    edev = None if made is None else made.doc
    if edev is not None:
        lfdi = (text(edev, "lFDI") or "").upper()
        assert made is not None
        v.expect(made.got, lfdi == t.lfdi, f"lFDI {t.lfdi}", f"lFDI {lfdi or '(none)'}")
        sfdi = text(edev, "sFDI")
        v.expect(made.got, sfdi == str(t.sfdi), f"sFDI {t.sfdi}", f"sFDI {sfdi}")
    t.walked = None  # discovery must see the new EndDevice
    return v


async def discovery(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    w = await walk(probe, t.dcap)
    t.walked = w
    v = Verdict(list(w.criteria))
    read = sum(len(f) for f in w.found.values())
    v.check(
        f"the walk from {t.dcap}",
        not w.criteria,
        "every link and list item answers 200 with the resource it names, carrying its href",
        f"{read} resources read in {w.requests} requests, {len(w.criteria)} problems",
    )
    for kind in REACHED:
        n = len(w.found.get(kind, []))
        v.check(f"discovery reaches a {kind}", n > 0, "at least one", f"{n}")
    v.check(
        "discovery reaches the client's own EndDevice",
        ours(w, t.lfdi) is not None,
        f"an EndDevice with lFDI {t.lfdi}",
        ", ".join(text(f.doc, "lFDI") or "?" for f in w.found.get("EndDevice", [])) or "none",
    )
    missing = [k for k in PROVISIONED if not w.found.get(k)]
    if missing:
        v.unjudged = f"the server links no {' and no '.join(missing)}: provision one to judge it"
    for kind in PROVISIONED:
        if w.found.get(kind):
            v.check(
                f"discovery reaches a {kind}",
                ok=True,
                expected="at least one",
                seen=f"{len(w.found[kind])}",
            )
    return v


async def group_assignment(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """UTIL-001: the registered EndDevice is assigned a group (an FSA) with a DERProgram."""
    v = Verdict()
    edev = ours(await walked(t, probe), t.lfdi)
    if not v.check(
        "the client's EndDevice",
        edev is not None,
        f"lFDI {t.lfdi} found",
        "found" if edev is not None else "not found",
    ):
        return v
    assert edev is not None
    href = link(edev, "FunctionSetAssignmentsListLink")
    if not v.check("its FunctionSetAssignmentsListLink", href is not None, "present", f"{href}"):
        return v
    assert href is not None
    fsal = await probe.get(href, {"s": 0, "l": PAGE})
    doc = fsal.xml()
    fsas = [] if doc is None else items(doc)
    v.expect(fsal, len(fsas) > 0, "at least one FunctionSetAssignments", f"{len(fsas)}")
    programs = 0
    for fsa in fsas:
        dpl = link(fsa, "DERProgramListLink")
        if dpl is None:
            continue
        x = await probe.get(dpl, {"s": 0, "l": PAGE})
        listing = x.xml()
        programs += 0 if listing is None else len(items(listing))
    v.check(
        "the DERPrograms assigned",
        programs > 0,
        "at least one DERProgram through the EndDevice's FSAs",
        f"{programs}",
    )
    return v


def _reply_to(w: Walk) -> tuple[str, str] | None:
    """(replyTo, mRID) of a DERControl discovery found."""
    for f in w.found.get("DERControl", []):
        reply, mrid = f.doc.get("replyTo"), text(f.doc, "mRID")
        if reply and mrid:
            return str(reply), mrid
    return None


async def request_handling(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """CORE-001: a GET is served as application/sep+xml; a malformed body is a 400."""
    v = Verdict()
    x = await probe.get(t.dcap)
    doc = x.xml()
    v.expect(x, x.status == 200, "200")
    ctype = x.headers.get("Content-Type", "")
    v.expect(x, ctype.startswith(SEP_XML), f"Content-Type {SEP_XML}", ctype or "none")
    v.expect(x, doc is not None and local(doc) == "DeviceCapability", "a DeviceCapability")
    edl = None if doc is None else link(doc, "EndDeviceListLink")
    if edl is not None:
        bad = await probe.request("POST", edl, bodies.MALFORMED)
        v.expect(bad, bad.status == 400, "400 Bad Request for malformed XML")
    target = _reply_to(await walked(t, probe))
    if target is not None:
        bad = await probe.request("POST", target[0], bodies.MALFORMED)
        v.expect(bad, bad.status == 400, "400 Bad Request for malformed XML")
    return v


async def response_handling(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """CORE-002: an unknown resource is 404; a method the resource has not is 405 + Allow."""
    v = Verdict()
    unknown = urljoin(t.url, f"/sep2-conformance-no-such-resource-{secrets.token_hex(4)}")
    x = await probe.get(unknown)
    v.expect(x, x.status == 404, "404 Not Found")
    for method in ("DELETE", "POST"):
        x = await probe.request(method, t.dcap, b"" if method == "POST" else None)
        allow = x.headers.get("Allow")
        v.expect(x, x.status == 405, "405 Method Not Allowed (DeviceCapability is read-only)")
        methods = {m.strip().upper() for m in (allow or "").split(",")}
        v.expect(
            x,
            "GET" in methods and method not in methods,
            f"an Allow header naming GET and not {method}",
            f"Allow: {allow}" if allow is not None else "no Allow header",
        )
    return v


def _hrefs(doc: etree._Element | None) -> list[str]:
    return [] if doc is None else [i.get("href") or "(no href)" for i in items(doc)]


def _counts(doc: etree._Element | None) -> tuple[int | None, int | None, int]:
    """(all, results, items) of a list body."""
    if doc is None:
        return None, None, 0

    def num(name: str) -> int | None:
        value = doc.get(name)
        return int(value) if value is not None and value.isdigit() else None

    return num("all"), num("results"), len(items(doc))


async def paging(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """CORE-004: ``s``, ``l``, ``all``, ``results`` on every list discovery found."""
    v = Verdict()
    lists = (await walked(t, probe)).lists()
    if not lists:
        v.not_run = "discovery found no list"
        return v
    longest = max(int(f.doc.get("all") or 0) for f in lists)
    for f in lists:
        full = await probe.get(f.href, {"s": 0, "l": PAGE})
        total, results, n = _counts(full.xml())
        if not v.expect(
            full,
            total is not None and results is not None,
            "all and results",
            f"all={total} results={results}",
        ):
            continue
        assert total is not None
        v.expect(full, results == n, f"results = the {n} items carried", f"results={results}")
        v.expect(full, n == min(total, PAGE), f"min(all, l) = {min(total, PAGE)} items", f"{n}")
        if f.link_all is not None:
            v.expect(
                full, f.link_all == total, f"all={f.link_all}, as its ListLink says", f"all={total}"
            )
        order = _hrefs(full.xml())
        for s in range(min(total, PAGED_ITEMS)):
            x = await probe.get(f.href, {"s": s, "l": 1})
            page_all, page_results, _ = _counts(x.xml())
            got = _hrefs(x.xml())
            v.expect(x, got == order[s : s + 1], f"item {s} alone: {order[s : s + 1]}", f"{got}")
            v.expect(
                x,
                (page_all, page_results) == (total, 1),
                f"all={total} results=1",
                f"all={page_all} results={page_results}",
            )
        x = await probe.get(f.href, {"s": total, "l": 1})
        page_all, page_results, m = _counts(x.xml())
        v.expect(
            x,
            (page_all, page_results, m) == (total, 0, 0),
            f"past the end: all={total} results=0, no items",
            f"all={page_all} results={page_results}, {m} items",
        )
        x = await probe.get(f.href)
        _, page_results, m = _counts(x.xml())
        v.expect(
            x,
            m == min(total, 1) and page_results == m,
            f"no l: the default l=1, {min(total, 1)} item",
            f"results={page_results}, {m} items",
        )
    if longest < 2:
        v.unjudged = "no list holds two items: s cannot be told from its absence (provision two)"
    return v


async def response_post(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """S2S-03: a Response and a DERControlResponse POSTed to a DERControl's replyTo: 201."""
    v = Verdict()
    target = _reply_to(await walked(t, probe))
    if target is None:
        v.not_run = "the server serves no DERControl with a replyTo: provision one"
        return v
    reply, mrid = target
    for kind in ("DERControlResponse", "Response"):
        body = bodies.response(t.lfdi, mrid, _now(), kind=kind)
        x = await probe.request("POST", reply, body)
        v.expect(x, x.status == 201, "201 Created")
    return v


async def schema_validity(t: ServerTarget, probe: Probe, _folder: Path) -> Verdict:
    """S2S-08: every 2030.5 body received in this run, against sep.xsd (CSIP-AUS core)."""
    v = Verdict()
    found = schema.load()
    if isinstance(found, str):
        v.not_run = found
        return v
    if not t.received:  # run alone: read what discovery reads
        await walk(probe, t.dcap)
    received = [*t.received, *((x.label, x.body) for x in probe.exchanges if x.xml() is not None)]
    if not received:
        v.not_run = "no 2030.5 body was received from the server (see the cases before)"
        return v
    bad = 0
    for label, body in received:
        errors = found.errors(body)
        if errors:
            bad += 1
            v.check(
                label, ok=False, expected=f"valid against {found.where}", seen="; ".join(errors[:3])
            )
    v.check(
        "every body received",
        bad == 0,
        f"valid against sep.xsd ({found.where})",
        f"{len(received) - bad} of {len(received)} valid",
    )
    return v
