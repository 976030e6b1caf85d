"""Fixtures for the 2030.5 integration tests; the rig itself is in ``sep2_rig.py``."""

from __future__ import annotations

import pytest

from gateway.north.sep2.pki import PkiFiles, init_pki


@pytest.fixture(scope="session")
def sep2_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """One test PKI for the session: minting certificates is the slow part of a TLS test."""
    return init_pki(tmp_path_factory.mktemp("sep2-pki"), devices=("gateway", "other", "agg"))
