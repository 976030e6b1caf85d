"""Third-party warnings that say nothing to a user of the gateway, silenced narrowly."""

from __future__ import annotations

import warnings


def quiet_third_party() -> None:
    """signxml's annotations and openleadr's key-type check name DSA key classes, and
    cryptography deprecates DSA, so importing signxml prints four lines on every command (and
    breaks tools that read the first line), and openleadr warns at each signature. Only that
    message and category, only from those two packages' modules; pyproject.toml has the same
    filter for the tests."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message="DSA is deprecated",
        category=CryptographyDeprecationWarning,
        module=r"(signxml|openleadr|gateway\.north\.openadr2\.signing)\b",
    )
