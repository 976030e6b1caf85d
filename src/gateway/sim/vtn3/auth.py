"""OAuth 2 client credentials for the simulated VTN: roles and the 3.0.1 scopes.

The 3.0.1 API names six scopes (``securitySchemes.oAuth2ClientCredentials``): ``read_all``
(VENs and BL), ``write_programs`` and ``write_events`` (BL only), ``write_reports`` (VENs only),
``write_subscriptions`` and ``write_vens`` (VENs and BL). A client has a role, VEN or BL; its
token carries the scopes it asked for (``scope``, space separated) that its role allows, or all
of them when it asked for none. Asking only for scopes the role lacks is ``invalid_scope``.
"""

from __future__ import annotations

from typing import Final, Literal

Role = Literal["VEN", "BL"]

READ: Final = "read_all"
ROLE_SCOPES: Final[dict[str, frozenset[str]]] = {
    "VEN": frozenset({READ, "write_reports", "write_subscriptions", "write_vens"}),
    "BL": frozenset({READ, "write_programs", "write_events", "write_subscriptions", "write_vens"}),
}

# What `gateway simulate vtn --openadr 3` starts with (printed at start).
DEFAULT_VEN: Final = ("gateway", "secret")
DEFAULT_BL: Final = ("bl", "bl-secret")


def grant(role: str, requested: str | None) -> frozenset[str] | None:
    """The scopes a token gets, or None (``invalid_scope``)."""
    allowed = ROLE_SCOPES.get(role, ROLE_SCOPES["VEN"])
    if requested is None or not requested.strip():
        return allowed
    granted = allowed & set(requested.split())
    return frozenset(granted) if granted else None
