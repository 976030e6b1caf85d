"""CSIP-AUS 1.3 /.well-known/csipaus: which DeviceCapability paths to try, in which order."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.north.sep2.wellknown import MAX_BYTES, WellKnownError, candidates


def _doc(versions: object) -> bytes:
    return json.dumps({"supportedSchemaVersions": versions}).encode()


def test_newest_supported_first_each_versions_paths_in_order() -> None:
    body = _doc(
        {
            "https://csipaus.org/ns": {"dcap": ["/dcap"]},
            "v1.3": {"dcap": ["/a", "/b"]},
            "https://csipaus.org/ns/v1.3-beta/storage": {"dcap": ["/beta"]},
        }
    )
    assert candidates(body) == [("1.3", "/a"), ("1.3", "/b"), ("1.2", "/dcap")]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{", "not JSON"),
        (b"[]", "no supportedSchemaVersions"),
        (_doc({"v99.99": {"dcap": ["/x"]}}), "the server offers: v99.99"),
        (_doc({"v1.3": {"dcap": []}}), "the server offers: v1.3"),
        (_doc({"v1.3": {"dcap": ["https://evil.example/dcap", "//evil/dcap", 7]}}), "offers"),
        (_doc({"v1.3": None}), "offers: v1.3"),
        (b" " * (MAX_BYTES + 1), "byte cap"),
    ],
)
def test_what_cannot_be_used_is_refused_with_what_was_offered(body: bytes, why: str) -> None:
    with pytest.raises(WellKnownError, match=why):
        candidates(body)


@given(st.binary(max_size=2048))
def test_any_bytes_give_paths_or_the_one_error(body: bytes) -> None:
    try:
        got = candidates(body)
    except WellKnownError:
        return
    assert all(path.startswith("/") and not path.startswith("//") for _, path in got)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )
)
def test_any_json_shape_gives_paths_or_the_one_error(doc: object) -> None:
    try:
        got = candidates(_doc(doc))
    except WellKnownError:
        return
    assert got
    assert all(version in ("1.3", "1.2") and path.startswith("/") for version, path in got)
