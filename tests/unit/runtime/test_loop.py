"""runtime.loop: which event loop ``gateway run`` gets, and the errors a person can act on."""

from __future__ import annotations

import asyncio

import pytest

from gateway.runtime import loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_is_uvloop_where_installed_and_asyncio_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if loop.available():
        assert loop.resolve("auto") == "uvloop"
        assert loop.run(_loop_module()).startswith("uvloop")
    monkeypatch.setattr(loop, "available", lambda: False)
    assert loop.resolve("auto") == "asyncio"
    assert loop.run(_loop_module()).startswith("asyncio")


def test_asyncio_is_asyncio_even_where_uvloop_is_installed() -> None:
    assert loop.resolve("asyncio") == "asyncio"
    assert loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_asked_for_but_missing_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "available", lambda: False)
    coro = _loop_module()
    with pytest.raises(loop.LoopUnavailableError, match="--event-loop asyncio"):
        loop.run(coro, "uvloop")
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"


def test_an_unknown_loop_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, uvloop, asyncio"):
        loop.resolve("trio")


def test_the_cli_refuses_a_missing_uvloop_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway import cli
    from gateway.runtime import run_config

    monkeypatch.setattr(loop, "available", lambda: False)
    monkeypatch.setattr(run_config, "load", lambda path: object())
    assert cli.main(["run", "site.toml", "--event-loop", "uvloop"]) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
