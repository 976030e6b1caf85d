"""SIGKILL a process that is writing the store, again and again, and check that every reopen finds
whole transactions only: the four parts of the last committed batch agree, the audit ids have no
gaps and no report was queued twice.

The writer logs each sequence number after its commit returns, so the test can also check that
nothing it was told is committed went missing. (SIGKILL keeps the OS page cache; a power cut is a
harsher test that synchronous=FULL is there for, and which a unit test cannot stage.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gateway
from gateway.store import SqliteStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

KILLS = 8

WRITER = r"""
import sys
from gateway.store import AuditEntry, SqliteStore

path, log_path = sys.argv[1], sys.argv[2]
with SqliteStore(path) as store, open(log_path, "a", buffering=1) as log:
    progress = store.get_state("progress")
    n = progress["seq"] if progress else 0
    while True:
        n += 1
        with store.transaction():
            store.put_events({"ev": {"seq": n}})
            store.put_state("progress", {"seq": n})
            assert store.enqueue(f"report|{n}", {"seq": n}, float(n))
            if n > 1:
                assert store.ack(f"report|{n - 1}", float(n))
            store.append_audit(
                AuditEntry(float(n), "relay", "position", n, f"step {n}", "commanded", str(n))
            )
        print(n, file=log)
"""


def _logged(log: Path) -> int:
    """The last sequence number the writer saw committed (a torn last line is ignored)."""
    if not log.exists():
        return 0
    lines = log.read_text().split("\n")[:-1]  # only lines that got their newline
    return int(lines[-1]) if lines else 0


def _check(db: Path, log: Path) -> int:
    """Assert the store holds whole transactions only; return the last committed sequence."""
    logged = _logged(log)
    if not db.exists():  # killed before the creation finished: nothing may have been reported
        assert logged == 0
        assert not list(db.parent.glob("state.db-*"))
        return 0
    with SqliteStore(db, create=False) as store:
        progress = store.get_state("progress")
        seq = progress["seq"] if progress else 0
        # Every commit the writer reported survived; at most the one after it was not yet logged.
        assert logged <= seq <= logged + 1
        assert store.events() == ({"ev": {"seq": seq}} if seq else {})
        rows = store.execute("SELECT id, key, acked_at IS NOT NULL FROM outbox ORDER BY id")
        assert [key for _, key, _ in rows] == [f"report|{n}" for n in range(1, seq + 1)]
        assert [acked for _, _, acked in rows] == [True] * (seq - 1) + [False] * (seq > 0)
        assert [p.key for p in store.pending()] == ([f"report|{seq}"] if seq else [])
        audit = store.audit()
        assert [r.id for r in audit] == list(range(1, seq + 1))  # contiguous, no gaps
        assert [r.value for r in audit] == list(range(1, seq + 1))
        assert [r.correlation_id for r in audit] == [str(n) for n in range(1, seq + 1)]
    return seq


def _wait_for_progress(log: Path, beyond: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10.0
    while _logged(log) <= beyond:
        assert proc.poll() is None, "the writer exited on its own"
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.005)


def test_sigkill_never_leaves_a_partial_transaction(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    db, log, err = tmp_path / "state.db", tmp_path / "writer.log", tmp_path / "writer.err"
    # The writer imports the same gateway package as this test, installed or not.
    src = str(Path(gateway.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    seq = 0
    for kill in range(KILLS):
        with err.open("ab") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(db), str(log)],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            if kill % 2:
                # Mid-stream: after this run has committed something of its own.
                _wait_for_progress(log, seq, proc)
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                # Anywhere, including start-up, creation of the file and migration.
                time.sleep(rng.uniform(0.0, 0.4))
            assert proc.poll() is None, f"writer died: {err.read_text()} (seed {seed})"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        seq = _check(db, log)
    assert seq > 0, f"no transaction was ever committed (seed {seed})"
