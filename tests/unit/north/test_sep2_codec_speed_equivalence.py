"""The codec's shortcuts agree with the plain ways they replace (speed is measured in bench/ only).

Decoding indexes an element's children once instead of a ``findall()`` per field, skips the
regex for plain digits, and parsing asks lxml for the refused nodes instead of looking at every
element from Python. Each shortcut is checked here against the straightforward version it
replaced, on generated trees and texts: same element found, same error, same value.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.north.sep2 import codec
from gateway.north.sep2.codec import _integer, _Reader
from gateway.north.sep2.model import DefaultDERControl, Sep2ValueError
from gateway.north.sep2.xml import CSIPAUS_NS, CSIPAUS_NS_WRONG, NS, Sep2ParseError, parse

NAMESPACES = [NS, CSIPAUS_NS, CSIPAUS_NS_WRONG, "urn:other"]
NAMES = ["a", "b", "value", "multiplier"]
_tags = st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMESPACES))


def _tree(tag: tuple[str, str], kids: list[etree._Element | str]) -> etree._Element:
    el = etree.Element(f"{{{tag[1]}}}{tag[0]}")
    for kid in kids:
        el.append(etree.Comment(kid) if isinstance(kid, str) else kid)
    return el


_trees = st.recursive(
    st.builds(_tree, _tags, st.just([])),
    lambda kids: st.builds(_tree, _tags, st.lists(kids | st.just("comment"), max_size=6)),
    max_leaves=30,
)


def _findall_child(el: etree._Element, name: str, ns: str) -> etree._Element | str | None:
    """The lookup decoding did before the index: a findall() per field."""
    found = el.findall(f"{{{ns}}}{name}")
    if len(found) > 1:
        return f"{len(found)} elements"
    return found[0] if found else None


@settings(max_examples=300, deadline=None)
@given(root=_trees)
def test_indexed_children_find_what_findall_finds(root: etree._Element) -> None:
    for el in root.iter(etree.Element):
        reader = _Reader(el, "root")
        assert reader.tags() == [child.tag for child in el]
        for name in NAMES:
            for ns in NAMESPACES:
                expected = _findall_child(el, name, ns)
                if isinstance(expected, str):
                    with pytest.raises(Sep2ValueError) as e:
                        reader.child(name, ns)
                    assert e.value.value == expected
                    assert e.value.reason == "may occur at most once"
                else:
                    assert reader.child(name, ns) is expected


def _element_by_element(root: etree._Element) -> str | None:
    """The wrong-namespace check parsing did before: every element's namespace, from Python."""
    for node in root.iter():
        if isinstance(node.tag, str) and etree.QName(node).namespace == CSIPAUS_NS_WRONG:
            return str(etree.QName(node).localname)
    return None


@settings(max_examples=300, deadline=None)
@given(children=st.lists(_trees, max_size=5))
def test_wrong_csipaus_namespace_found_as_before(children: list[etree._Element]) -> None:
    root = _tree(("DERControlList", NS), list(children))
    offender = _element_by_element(root)
    body = etree.tostring(root)
    if offender is None:
        parse(body)
    else:
        with pytest.raises(Sep2ParseError, match=rf"^element {offender} is in namespace"):
            parse(body)


_INT = re.compile(r"[+-]?[0-9]+")


def _integer_by_regex(lo: int, hi: int, raw: str) -> int | str:
    """The integer check before the plain-digits shortcut: the value, or the error's reason."""
    if not _INT.fullmatch(raw):
        return "must be an integer"
    if len(raw.lstrip("+-").lstrip("0")) > 20:
        return "is outside"
    v = int(raw)
    return v if lo <= v <= hi else "is outside"


_numbers = st.one_of(
    st.integers(-(2**80), 2**80).map(str),
    st.text(st.sampled_from("0123456789+- _٣²e"), max_size=24),
    st.integers(0, 2**70).map(lambda n: "0" * 5 + str(n)),
)


@settings(max_examples=500, deadline=None)
@given(raw=_numbers, bounds=st.sampled_from([(0, 255), (-(2**63), 2**63 - 1), (-9, 9)]))
def test_integer_shortcut_agrees_with_the_regex(raw: str, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    expected = _integer_by_regex(lo, hi, raw)
    conv = _integer(lo, hi, "test")
    if isinstance(expected, int):
        assert conv(_Reader(etree.Element("x"), "x"), "n", raw) == expected
    else:
        with pytest.raises(Sep2ValueError, match=expected):
            conv(_Reader(etree.Element("x"), "x"), "n", raw)


def test_unsupported_modes_listed_in_document_order_with_repeats() -> None:
    body = (
        f'<DefaultDERControl xmlns="{NS}" xmlns:csipaus="{CSIPAUS_NS}" xmlns:o="urn:other">'
        "<mRID>AB</mRID><DERControlBase>"
        "<opModVoltVar/><opModConnect>true</opModConnect><csipaus:opModX/><opModVoltVar/>"
        "<o:mode/><csipaus:opModExpLimW><multiplier>0</multiplier><value>5</value>"
        "</csipaus:opModExpLimW></DERControlBase></DefaultDERControl>"
    ).encode()
    resource = codec.decode(body)
    assert isinstance(resource, DefaultDERControl)
    assert resource.DERControlBase.opModConnect is True
    assert resource.DERControlBase.unsupported == (
        "opModVoltVar",
        "csipaus:opModX",
        "opModVoltVar",
        "{urn:other}mode",
    )
