"""OAuth 2 client credentials for the simulated VTN: roles and the 3.0.1 scopes.

The 3.0.1 API names six scopes (``securitySchemes.oAuth2ClientCredentials``): ``read_all``
(VENs and BL), ``write_programs`` and ``write_events`` (BL only), ``write_reports`` (VENs only),
``write_subscriptions`` and ``write_vens`` (VENs and BL). A client has a role, VEN or BL. A
token asked for no ``scope`` has all its role's; one asked for some (space separated) has
those, and asking for a 3.0.1 scope the role lacks is ``invalid_scope``, so that a client
learns it at once, not at its first 403. Other names (``read_bl``, ``read_targets``, which
openadr3-client's examples ask for) are granted and mean nothing here: the token answer's
``scope`` lists them back, as OAuth clients such as oauthlib insist the granted scope equal
the asked one unless told otherwise.
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


ALL: Final = ROLE_SCOPES["VEN"] | ROLE_SCOPES["BL"]


def grant(role: str, requested: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(the scopes a token gets, the 3.0.1 scopes asked for that the role lacks)."""
    allowed = ROLE_SCOPES.get(role, ROLE_SCOPES["VEN"])
    if requested is None or not requested.strip():
        return allowed, frozenset()
    asked = frozenset(requested.split())
    return asked, (asked & ALL) - allowed
