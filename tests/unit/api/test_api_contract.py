"""The API's routes against its OpenAPI document, and the [api] table's checks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml
from aiohttp.web_urldispatcher import AbstractResource, StaticResource

from gateway.api import config
from gateway.api.server import Api
from gateway.runtime.run_config import RunConfigError, load


class _Site:
    """Just enough of a site for the routes to be built (no route is called)."""

    name = "test"
    cycles = 0

    def on_cycle(self, hook: object) -> None:
        pass


class _Store:
    def audit(self, since_id: int = 0, limit: int | None = None) -> list[object]:
        return []


def _path(resource: AbstractResource) -> str:
    # A static route serves every file under its prefix: documented as {prefix}/{path}.
    if isinstance(resource, StaticResource):
        return resource.canonical + "/{path}"
    return resource.canonical


def _spec() -> dict:
    text = resources.files("gateway.api").joinpath("openapi.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def test_every_route_is_in_the_openapi_document_and_nothing_else() -> None:
    app = Api(_Site(), _Store(), None).app()  # type: ignore[arg-type]
    served = {
        (r.method.lower(), _path(r.resource))
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(method, path) for path, ops in _spec()["paths"].items() for method in ops}
    assert served == documented


def test_every_write_is_documented_with_the_bearer_token_and_its_refusals() -> None:
    for path, ops in _spec()["paths"].items():
        if "post" in ops:
            post = ops["post"]
            assert post["security"] == [{"bearer": []}], path
            assert {"401", "403"} <= set(post["responses"]), path


def _site_file(tmp_path: Path, api: str) -> Path:
    from gateway.conformance import v2h

    site = v2h.write_site(tmp_path, v2h.Script(duration_s=0.0))
    with site.open("a", encoding="utf-8") as f:
        f.write("\n[api]\n" + api)
    return site


def test_a_short_token_and_a_missing_token_file_are_said_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("abc\n", encoding="utf-8")
    with pytest.raises(RunConfigError) as e:
        load(_site_file(tmp_path, 'token_file = "short"\n'))
    assert "has 3 characters; give at least 16" in str(e.value)
    with pytest.raises(RunConfigError) as e:
        load(_site_file(tmp_path, 'token_file = "nowhere"\n'))
    assert "api.token_file: cannot read" in str(e.value)


def test_an_unknown_api_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(RunConfigError) as e:
        load(_site_file(tmp_path, 'token_fle = "x"\n'))
    assert "token_fle" in str(e.value)
    assert "token_file" in str(e.value)


def test_the_defaults_bind_this_machine_only(tmp_path: Path) -> None:
    api, problems = config.parse({}, tmp_path)
    assert problems == []
    assert (api.listen, api.port, api.token()) == ("127.0.0.1", 8780, None)
    loaded = load(_site_file(tmp_path, "port = 0\n")).api
    assert loaded is not None
    assert loaded.listen == "127.0.0.1"
