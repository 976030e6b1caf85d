"""``tls.verified_chain`` where Python cannot give the verified chain: empty, and said once.

The chain checks themselves (COMM-004E) run over real handshakes in
tests/integration/north/test_sep2_comm_004.py; this is the fallback they cannot reach on
CPython, where the chain is always there."""

from __future__ import annotations

import logging

import pytest

from gateway.north.sep2 import tls


class NoChain:
    """A TLS object of a Python that exposes no verified chain (no public or private getter)."""


def test_without_a_verified_chain_the_check_is_skipped_and_the_log_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tls._warn_no_chain.cache_clear()
    with caplog.at_level(logging.WARNING, logger="gateway.north.sep2.tls"):
        assert tls.verified_chain(NoChain()) == []  # type: ignore[arg-type]
        tls.check_chain(NoChain())  # type: ignore[arg-type]  # nothing to refuse
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "COMM-004E" in warnings[0]
    assert "skipped" in warnings[0]
