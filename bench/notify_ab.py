"""Interleaved A/B of the notification-to-relay-write latency: this tree against a git ref.

    python -m bench.notify_ab REF [--samples 60] [--pairs 3]

On a shared VM the same code's median moves by 10 % or more within an hour, so one run of
``bench.sep2_notify`` before a change and one after cannot show a 3-5 % gain (or loss). This
runs the two versions alternately, A B B A A B ..., each run in a fresh process with fresh peers
(``bench.sep2_notify.run``, SQLite store), and prints each run's median and the pooled median,
p90, p95 and p99 of each side, with B/A ratios. A is ``REF`` (extracted with ``git archive``
into a temporary directory), B the working tree as it is, uncommitted changes included.

Both sides use this tree's virtualenv: the comparison is of the gateway's code (and the peers'
and the bench's as of each version), not of its dependencies. A ref whose ``bench.sep2_notify``
has no ``run(pki, store)`` cannot be compared (it predates this tool).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


def one(root: Path, samples: int) -> None:
    """Child process: one SQLite run of ``root``'s notification bench; JSON on the last line."""
    import asyncio
    import logging

    sys.path[:0] = [str(root / "src"), str(root)]
    import bench.sep2_notify as b
    import gateway

    for mod in (b, gateway):
        if not str(mod.__file__).startswith(str(root)):
            raise SystemExit(f"imported {mod.__file__}, not from {root}")
    b.SAMPLES = samples
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        pki = b.init_pki(Path(tmp) / "pki")
        with b.SqliteStore(Path(tmp) / "gw.db") as store:
            stages, bare, _ = asyncio.run(b.run(pki, store))
    print(json.dumps({"stages": stages, "bare": bare}))


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _run(root: Path, samples: int) -> dict[str, list[float]]:
    # The peers are started as ``python -m bench.sep2_notify`` from the cwd: root's own.
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    cmd = [sys.executable, str(HERE), "--one", str(root), str(samples)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run of {root} failed:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    out: dict[str, list[float]] = data["stages"]
    out["bare"] = data["bare"]
    return out


def _line(label: str, xs: list[float]) -> str:
    return (
        f"{label:10s} n={len(xs):4d}  median {statistics.median(xs):6.2f}  "
        f"p90 {percentile(xs, 90):6.2f}  p95 {percentile(xs, 95):6.2f}  "
        f"p99 {percentile(xs, 99):6.2f} ms"
    )


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        one(Path(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", help="the git ref to compare against (side A)")
    ap.add_argument("--samples", type=int, default=60, help="samples per run (default 60)")
    ap.add_argument("--pairs", type=int, default=3, help="runs per side (default 3)")
    args = ap.parse_args()
    pooled: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "a"
        base.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.ref], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        roots = {"A": base, "B": ROOT}
        print(f"A = {args.ref}, B = the working tree; {args.samples} samples per run")
        for i in range(args.pairs):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                got = _run(roots[side], args.samples)
                for stage, xs in got.items():
                    pooled[side].setdefault(stage, []).extend(xs)
                total = got["total"]
                print(
                    f"  run {i + 1} {side}: median {statistics.median(total):6.2f}  p99 "
                    f"{percentile(total, 99):6.2f} ms  (bare POST median "
                    f"{statistics.median(got['bare']):.2f} ms)",
                    flush=True,
                )
    for side in ("A", "B"):
        print(_line(f"{side} total", pooled[side]["total"]))
    a, b = pooled["A"], pooled["B"]
    print("B/A      ", "  ".join(
        f"{name} {stat(b['total']) / stat(a['total']):.3f}"
        for name, stat in (
            ("median", statistics.median),
            ("p90", lambda xs: percentile(xs, 90)),
            ("p99", lambda xs: percentile(xs, 99)),
        )
    ))  # fmt: skip
    for stage in a:
        if stage not in ("total", "bare") and stage in b:
            ma, mb = statistics.median(a[stage]), statistics.median(b[stage])
            print(f"  {stage:10s} median A {ma:6.2f}  B {mb:6.2f}  B/A {mb / ma:.3f}")
    ba, bb = statistics.median(a["bare"]), statistics.median(b["bare"])
    print(f"  bare POST  median A {ba:6.2f}  B {bb:6.2f}  (the machine, not the code)")


if __name__ == "__main__":
    main()
