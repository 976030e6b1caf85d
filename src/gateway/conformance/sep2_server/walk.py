"""Discovery as a 2030.5 client does it: from DeviceCapability through every link and every
list (each list read as ``?s=0&l=255``, each item then read at its own href), with what went
wrong on the way as criteria that name the request.

A link names what it points to (``EndDeviceListLink`` an EndDeviceList, ``CurrentDERProgramLink``
a DERProgram); the resource served there must be that element and carry ``href`` equal to
where it was read (2030.5 §8: every resource says where it is). A resource the client writes
first (its DERCapability, DERSettings, DERStatus, ...) may be 404 until it has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.conformance.cases import Criterion
from gateway.conformance.sep2_server.probe import Exchange, Probe, local

PAGE: Final = 255  # the most a list read asks for (UInt8 l)
MAX_REQUESTS: Final = 300  # a bound on the walk, whatever the server links
ITEMS_PER_LIST: Final = 20  # items read at their own href, per list
_PREFIXES: Final = ("Active", "Associated", "Current")
#: Resources the client creates or reports: 404 until it has PUT or POSTed them.
CLIENT_WRITTEN: Final = frozenset(
    {
        "DERCapability",
        "DERSettings",
        "DERStatus",
        "DERAvailability",
        "ConnectionPoint",
        "PowerStatus",
        "DeviceStatus",
        "DeviceInformation",
        "FileStatus",
    }
)


def pointed_to(link: str) -> str:
    """The element a link's resource is: ``FooLink`` -> Foo, ``ActiveFooListLink`` -> FooList."""
    name = link.removesuffix("Link")
    for prefix in _PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :][:1].isupper():
            return name[len(prefix) :]
    return name


def same_href(a: str, b: str) -> bool:
    """Hrefs compared as paths (a server may give them absolute or relative)."""
    return urlsplit(a).path.rstrip("/") == urlsplit(b).path.rstrip("/")


@dataclass
class Found:
    href: str
    name: str
    doc: etree._Element
    link_all: int | None = None  # the ListLink's ``all``, for a list


@dataclass
class Walk:
    found: dict[str, list[Found]] = field(default_factory=lambda: defaultdict(list))
    criteria: list[Criterion] = field(default_factory=list)
    requests: int = 0

    def first(self, name: str) -> Found | None:
        items = self.found.get(name)
        return items[0] if items else None

    def lists(self) -> list[Found]:
        return [f for fs in self.found.values() for f in fs if f.doc.get("all") is not None]

    def fail(self, x: Exchange, expected: str, seen: str) -> None:
        self.criteria.append(Criterion(x.label, ok=False, expected=expected, seen=seen))


def children(doc: etree._Element) -> list[etree._Element]:
    return [c for c in doc if isinstance(c.tag, str)]


def links(doc: etree._Element) -> list[tuple[str, str, int | None]]:
    """(link element name, href, ``all``) of ``doc``'s links."""
    out = []
    for c in children(doc):
        name, href = local(c), c.get("href")
        if name.endswith("Link") and href:
            count = c.get("all")
            out.append((name, href, int(count) if count and count.isdigit() else None))
    return out


def items(doc: etree._Element) -> list[etree._Element]:
    """A list's items: its child elements (a list holds nothing else)."""
    return children(doc)


async def walk(probe: Probe, dcap: str) -> Walk:
    w = Walk()
    queue: list[tuple[str, str, int | None]] = [(dcap, "DeviceCapability", None)]
    seen: set[str] = set()
    while queue and w.requests < MAX_REQUESTS:
        href, expected, link_all = queue.pop(0)
        key = urlsplit(href).path
        if key in seen:
            continue
        seen.add(key)
        is_list = expected.endswith("List")
        x = await probe.get(href, {"s": 0, "l": PAGE} if is_list else None)
        w.requests += 1
        if x.status == 404 and expected in CLIENT_WRITTEN:
            continue  # not reported by the client yet: nothing to judge
        if x.status != 200:
            w.fail(x, f"200 with a {expected}", x.seen)
            continue
        doc = x.xml()
        if doc is None:
            w.fail(x, f"a {expected} body (XML)", f"{x.headers.get('Content-Type')}: {x.seen}")
            continue
        name = local(doc)
        if name != expected:
            w.fail(x, f"a {expected} (what the link names)", f"a {name}")
        got = doc.get("href")
        if got is None:
            w.fail(x, f"the {name} carries href={href!r}", "no href attribute")
        elif not same_href(got, href):
            w.fail(x, f"the {name} carries href={href!r}", f"href={got!r}")
        w.found[name].append(Found(href, name, doc, link_all))
        queue += [(h, pointed_to(n), a) for n, h, a in links(doc)]
        if is_list:
            for item in items(doc)[:ITEMS_PER_LIST]:
                item_href = item.get("href")
                if item_href is None:
                    w.fail(
                        x, f"every item of the {name} carries an href", f"a {local(item)} without"
                    )
                else:
                    queue.append((item_href, local(item), None))
    return w
