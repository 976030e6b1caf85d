"""Third-party warnings that say nothing to a user of the gateway, silenced narrowly."""

from __future__ import annotations

import warnings


def quiet_third_party() -> None:
    """signxml (through openleadr) names DSA key types in its annotations, and cryptography
    deprecates DSA, so importing it prints four lines on every command (and breaks tools that
    read the first line). Only that category, only from signxml's modules; pyproject.toml has
    the same filter for the tests."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message="DSA is deprecated",
        category=CryptographyDeprecationWarning,
        module=r"signxml\b",
    )
