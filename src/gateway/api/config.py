"""The ``[api]`` table of the site file::

    [api]
    listen = "127.0.0.1"         # the default: only this machine reaches it
    port = 8780                  # 0: any free port (it is printed at start)
    token_file = "api-token"     # the bearer token the writes need; relative to the site
                                 # file. Without it the API is read-only.

The table's shape is checked by the site file's JSON Schema; this checks what it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8780
#: A token shorter than this is refused: it would be guessable from another local account.
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class ApiConfig:
    listen: str = DEFAULT_LISTEN
    port: int = DEFAULT_PORT
    token_file: Path | None = None

    def token(self) -> str | None:
        """The bearer token (the file's first line), or None: writes are off."""
        if self.token_file is None:
            return None
        return self.token_file.read_text(encoding="utf-8").strip()


def parse(table: dict[str, Any], base: Path) -> tuple[ApiConfig, list[str]]:
    problems: list[str] = []
    token_file: Path | None = None
    if "token_file" in table:
        token_file = Path(table["token_file"])
        token_file = token_file if token_file.is_absolute() else (base / token_file).resolve()
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"api.token_file: cannot read {token_file}: {e}")
        else:
            if len(token) < MIN_TOKEN_CHARS:
                problems.append(
                    f"api.token_file: the token in {token_file} has {len(token)} characters; "
                    f"give at least {MIN_TOKEN_CHARS} (e.g. python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
    config = ApiConfig(
        listen=str(table.get("listen", DEFAULT_LISTEN)),
        port=int(table.get("port", DEFAULT_PORT)),
        token_file=token_file,
    )
    return config, problems
