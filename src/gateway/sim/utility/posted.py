"""Bodies a client POSTs that the codec's strictness would refuse but 2030.5 allows.

A ``MirrorMeterReadingList`` POSTed to ``/mup/{m}`` may leave out ``all`` and ``results``: the
standard defines them for a list a server answers a GET with (``all``: how many the server
holds; ``results``: how many this page carries), and neither means anything in a POST. sep.xsd
marks them required on every List, so the codec refuses a list without them; the simulator
counts the list's MirrorMeterReadings instead (and keeps the raw body as sent).
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs here

from gateway.north.sep2 import codec
from gateway.north.sep2.xml import NS, parse


def decode_readings(body: bytes) -> codec.AnyResource:
    """A POSTed MirrorMeterReading or MirrorMeterReadingList (``all``/``results`` optional);
    Sep2ParseError for anything malformed."""
    root = parse(body)
    if etree.QName(root) == etree.QName(NS, "MirrorMeterReadingList"):
        count = str(len(root.findall(f"{{{NS}}}MirrorMeterReading")))
        for name in ("all", "results"):
            if root.get(name) is None:
                root.set(name, count)
    return codec.decode_element(root)
