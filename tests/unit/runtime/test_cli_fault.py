"""``gateway fault-reset``'s waiting rules, on a real store file and a fake clock: a request the
gateway has taken is waited for a little longer (it is being acted on, and cannot be withdrawn);
one nobody took is withdrawn at the deadline."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

from gateway.runtime.cli_fault import TAKEN_GRACE_S, run
from gateway.store.sqlite import SqliteStore

WALL = 1_700_000_000.0


class Clock:
    """time.time and time.sleep, where each sleep may let a 'gateway' act on the store."""

    def __init__(self, gateway: Callable[[float], None]) -> None:
        self.t = WALL
        self.gateway = gateway

    def wall(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        self.gateway(self.t)


def ask(db: Path, gateway: Callable[[float], None], wait: float = 10.0) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    clock = Clock(gateway)
    args = argparse.Namespace(site=None, store=db, by="installer Ana", wait=wait)
    rc = run(args, out, err, wall=clock.wall, sleep=clock.sleep)
    return rc, out.getvalue(), err.getvalue()


def test_taken_at_the_last_moment_is_waited_for_and_its_answer_printed(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    with SqliteStore(db) as gw:

        def gateway(t: float) -> None:
            if WALL + 9.95 <= t < WALL + 10.05:
                gw.take_requests(t)
            if t >= WALL + 25:  # its device steps took 15 s
                gw.answer_request(1, accepted=True, reason="relay read back closed", now=t)

        rc, out, err = ask(db, gateway)
        assert rc == 0, err
        assert "fault reset accepted: relay read back closed" in out
        r = gw.request(1)
        assert r is not None
        assert r.status == "accepted"


def test_taken_and_never_answered_says_where_to_look(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    with SqliteStore(db) as gw:
        rc, _, err = ask(db, lambda t: gw.take_requests(t) if t > WALL + 1 else None)
        assert rc == 2
        assert f"gave no answer within {TAKEN_GRACE_S:g} s more" in err
        assert "correlation id request-1" in err
        r = gw.request(1)
        assert r is not None
        assert r.status == "taken"


def test_refused_prints_each_reason_on_its_own_line(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    with SqliteStore(db) as gw:

        def gateway(t: float) -> None:
            for r in gw.take_requests(t):
                reason = "the charger reports a fault: clear it; the relay reads neither open"
                gw.answer_request(r.id, accepted=False, reason=reason, now=t)

        rc, out, _ = ask(db, gateway)
        assert rc == 1
        assert out.splitlines()[1:] == [
            "fault reset refused:",
            "  - the charger reports a fault: clear it",
            "  - the relay reads neither open",
        ]


def test_nobody_takes_it_it_is_withdrawn_at_the_deadline(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    SqliteStore(db).close()
    rc, _, err = ask(db, lambda t: None, wait=2.0)
    assert rc == 2
    assert "no gateway answered within 2 s" in err
    with SqliteStore(db) as s:
        r = s.request(1)
        assert r is not None
        assert r.status == "withdrawn"
        assert r.expires_at == WALL + 2.0  # and it would have expired then anyway


def test_bad_arguments(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    SqliteStore(db).close()
    out, err = io.StringIO(), io.StringIO()
    assert run(argparse.Namespace(site=None, store=db, by="x", wait=float("nan")), out, err) == 2
    assert "--wait must be a positive number" in err.getvalue()
    assert run(argparse.Namespace(site=None, store=db, by="  ", wait=1.0), out, err) == 2
    assert "--by must name who asks" in err.getvalue()


def test_the_site_file_names_the_store(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    bad = tmp_path / "site.toml"
    bad.write_text("[site]\nnope = 1\n", encoding="utf-8")
    assert run(argparse.Namespace(site=bad, store=None, by="x", wait=1.0), out, err) == 2
    assert "invalid site file" in err.getvalue()
    err = io.StringIO()
    assert run(argparse.Namespace(site=None, store=None, by="x", wait=1.0), out, err) == 2
    assert "name the site file" in err.getvalue()
