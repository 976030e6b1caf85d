"""Run cactus-client's CSIP-AUS server procedures against ``gateway simulate utility``.

Run it with the cactus-client venv's Python (``make peers`` builds ``.venv-cactus-client``)::

    .venv-cactus-client/bin/python conformance/cactus_admin/run_procedures.py \
        --gateway .venv/bin/gateway [--out DIR] [--timeout S] [ID ...]

It mints a test PKI (``gateway certs init``: two device certificates, two aggregators), starts
the simulated utility on free ports with its runtime admin interface (``--admin-port``,
``--empty``), writes a cactus-client config for those clients and runs ``cactus run`` once per
procedure (no ID: all of them), with the gateway admin plugin (``GATEWAY_ADMIN_URL``) setting
the server up. It prints one line per procedure (PASS, FAIL with cactus-client's reason, SKIP
when the procedure needs what this rig does not serve) and the counts, and writes them to
``DIR/summary.json``. Exit status 0 when no procedure failed, 1 otherwise, 2 on a bad argument.
It never imports the gateway: the simulator is a subprocess, as any server under test would be.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cactus_client import sep2
from cactus_test_definitions.server.test_procedures import (
    TestProcedureId,
    get_test_procedure,
)

DEVICES = ("cactus-dev-a", "cactus-dev-b")
AGGREGATORS = ("cactus-agg-a", "cactus-agg-b")
PIN = 111115  # 11111 and its check digit (CSIP-AUS ALL-01)
MAX_W = 5000
# Procedures the rig cannot serve, with the reason: reported SKIP, never PASS.
NOTIFICATIONS = (
    "needs cactus-client-notifications (the webhook relay the client subscribes through): "
    "give --notifications its venv's Python (make peers builds .venv-cactus-notifications)"
)
LONG = {"S-ALL-50": "simulates a client for 72 hours (--long runs it)"}
ANNOUNCED = re.compile(r"utility server at (https://\S+)|admin interface at (http://\S+)")


def _lfdi_of(cert: Path) -> str:
    return str(sep2.lfdi_from_cert_file(str(cert))).upper()


def make_pki(gateway: Path, certs: Path) -> None:
    args = [str(gateway), "certs", "init", str(certs), "--force"]
    for name in DEVICES + AGGREGATORS:
        args += ["--device", name]
    subprocess.run(args, check=True, capture_output=True, text=True)
    for name in DEVICES + AGGREGATORS:  # leaf then chain: what load_cert_chain presents
        chain = (certs / f"{name}.pem").read_text() + (certs / f"{name}-chain.pem").read_text()
        (certs / f"{name}-full.crt").write_text(chain)


def config(certs: Path, out: Path, dcap: str, notify: str | None) -> dict[str, Any]:
    clients = []
    for n, name in enumerate(DEVICES + AGGREGATORS):
        cert_lfdi = _lfdi_of(certs / f"{name}.pem")
        aggregator = name in AGGREGATORS
        # An aggregator's EndDevice LFDI must differ from its certificate's (cactus-client
        # reserves that one for the aggregator's own /edev/0).
        lfdi = f"{0xABCDEF00 + n:08X}" + cert_lfdi[8:] if aggregator else cert_lfdi
        clients.append(
            {
                "id": name,
                "type": "aggregator" if aggregator else "device",
                "certificate_file": str(certs / f"{name}-full.crt"),
                "key_file": str(certs / f"{name}.key"),
                "lfdi": lfdi,
                "sfdi": sep2.convert_lfdi_to_sfdi(lfdi),
                "pen": 32473,
                "pin": PIN,
                "max_watts": MAX_W,
            }
        )
    return {
        "output_dir": str(out),
        "server": {
            "device_capability_uri": dcap,
            "verify_ssl": True,
            "verify_host_name": False,
            "serca_pem_file": str(certs / "serca.pem"),
            "pen": 32473,
            "notification_uri": notify,
        },
        "clients": clients,
    }


def _yaml(value: Any, indent: int = 0) -> str:
    """Just enough YAML for the config (JSON scalars are YAML scalars)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list):
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{k}: {json.dumps(v)}")
        return "\n".join(lines)
    items = []
    for v in value:
        body = _yaml(v, indent + 2).lstrip()
        items.append(f"{pad}- {body}")
    return "\n".join(items)


class Simulator:
    """``gateway simulate utility`` as a subprocess, on ports the OS chooses."""

    def __init__(self, gateway: Path, certs: Path, log: Path) -> None:
        args = [str(gateway), "simulate", "utility", "--certs", str(certs), "--port", "0"]
        args += ["--admin-port", "0", "--empty", "--record", str(log)]
        # Notifications retried for 511 s: S-ALL-46 cuts the client's webhook for 300 s and
        # expects the Notification to arrive once it is back.
        args += ["--notify-retries", "9"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.dcap, self.admin = self._announced()

    def _announced(self, timeout: float = 30.0) -> tuple[str, str]:
        assert self.proc.stdout is not None
        found: dict[int, str] = {}
        # Blocking reads (a buffered pipe defeats select); a timer kills a server that hangs.
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            while len(found) < 2 and (line := self.proc.stdout.readline()):
                if m := ANNOUNCED.search(line):
                    found[1 if m.group(1) else 2] = m.group(1) or m.group(2)
        finally:
            timer.cancel()
        if len(found) < 2:
            self.stop()
            raise RuntimeError("gateway simulate utility did not announce its URLs")
        # Drain stdout from now on, so the server never blocks on a full pipe.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        return found[1], found[2]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return int(self.proc.wait())


class Notifications:
    """cactus-client-notifications (plain HTTP on loopback, as its README has it behind a TLS
    terminator) on a free port: the webhooks our server POSTs Notifications to."""

    def __init__(self, python: Path, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        env = os.environ | {"APP_PORT": str(port), "SERVER_URL": self.url.rstrip("/")}
        args = [str(python), "-m", "cactus_client_notifications.server.main"]
        self._log = log.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"cactus-client-notifications did not listen on {port} (log {log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def clients_for(pid: TestProcedureId) -> list[str] | None:
    """cactus client ids for the procedure's required clients, in order (None: not enough)."""
    pools = {"device": list(DEVICES), "aggregator": list(AGGREGATORS)}
    chosen = []
    for required in get_test_procedure(pid).preconditions.required_clients:
        pool = pools[str(required.client_type or "device")]  # unset: any; a device
        if not pool:
            return None
        chosen.append(pool.pop(0))
    return chosen


def skip_reason(pid: TestProcedureId, notifications: bool, long: bool = False) -> str | None:
    tp = get_test_procedure(pid)
    if str(pid) in LONG and not long:
        return LONG[str(pid)]
    for step in tp.steps:
        pubsub = ("create-subscription", "notifications", "delete-subscription")
        if step.action.type in pubsub and not notifications:
            return NOTIFICATIONS
    if clients_for(pid) is None:
        return "needs more clients of one type than the rig has"
    return None


def run_one(
    cactus: Path, cfg: Path, pid: TestProcedureId, out: Path, timeout: int
) -> tuple[str, str]:
    clients = clients_for(pid) or []
    args = [str(cactus), "run", "-c", str(cfg), "--headless", "--timeout", str(timeout)]
    args += [str(pid), *clients]
    started = time.monotonic()
    log = out / f"{pid}.log"
    with log.open("w") as sink:
        try:
            rc = subprocess.run(
                args, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout + 60, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            return "FAIL", f"cactus run did not end within {timeout + 60} s"
    took = time.monotonic() - started
    if rc == 0:
        return "PASS", f"{took:.0f} s"
    return "FAIL", f"{_reason(log.read_text())} ({took:.0f} s; log {log})"


def _reason(text: str) -> str:
    """cactus-client's last word on what went wrong, compacted to one line: an abort, or the
    last step log that is neither a success nor routine progress."""
    routine = ("Success", "Requesting", "Beginning execution", "Waiting", "marked as successful")
    found = None
    for line in text.splitlines():
        if "Aborting test" in line:
            return " ".join(line.split(" - ", 1)[-1].split())[:300]
        if " add_log - " in line and not any(r in line for r in routine):
            found = line.split(" add_log - ", 1)[1]
    if found is not None:
        return " ".join(found.split())[:300]
    return "cactus run exited non-zero (no failure line in its output)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", type=Path, required=True, help="the gateway console script")
    parser.add_argument(
        "--cactus",
        type=Path,
        default=Path(sys.executable).with_name("cactus"),
        help="the cactus console script (default: beside this Python)",
    )
    parser.add_argument(
        "--notifications",
        type=Path,
        metavar="PYTHON",
        help="the Python of a cactus-client-notifications venv, for the pub/sub procedures "
        "(without it they are skipped, with the reason)",
    )
    parser.add_argument("--long", action="store_true", help="run S-ALL-50 (72 hours) too")
    parser.add_argument("--out", type=Path, help="where logs and summary.json go (default: tmp)")
    parser.add_argument("--timeout", type=int, default=120, help="per-procedure limit, seconds")
    parser.add_argument("ids", nargs="*", help="procedure IDs (default: every one)")
    args = parser.parse_args(argv)
    known = {str(p): p for p in TestProcedureId}
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        print(f"run_procedures: unknown procedure(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if not args.gateway.exists() or not args.cactus.exists():
        print(f"run_procedures: no {args.gateway} or {args.cactus}", file=sys.stderr)
        return 2
    # SIGTERM ends the run through the finally below, so the simulator is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = args.out or Path(tempfile.mkdtemp(prefix="cactus-server-"))
    out.mkdir(parents=True, exist_ok=True)
    certs = out / "pki"
    make_pki(args.gateway, certs)
    sim = Simulator(args.gateway, certs, out / "exchanges.jsonl")
    relay = None
    if args.notifications is not None:
        relay = Notifications(args.notifications, out / "notifications.log")
    cfg = out / "cactus.yaml"
    (out / "cactus-out").mkdir(exist_ok=True)
    notify = None if relay is None else relay.url
    cfg.write_text(_yaml(config(certs, out / "cactus-out", sim.dcap, notify)) + "\n")
    os.environ["GATEWAY_ADMIN_URL"] = sim.admin
    print(f"server {sim.dcap}  admin {sim.admin}  output {out}", flush=True)
    results: dict[str, dict[str, str]] = {}
    try:
        for pid in [known[i] for i in args.ids] or list(TestProcedureId):
            reason = skip_reason(pid, relay is not None, args.long)
            if reason is not None:
                outcome, why = "SKIP", reason
            else:
                outcome, why = run_one(args.cactus, cfg, pid, out, args.timeout)
            results[str(pid)] = {"outcome": outcome, "reason": why}
            print(f"{pid:<10} {outcome:<5} {why}", flush=True)
    finally:
        sim.stop()
        if relay is not None:
            relay.stop()
    counts = {k: sum(r["outcome"] == k for r in results.values()) for k in ("PASS", "FAIL", "SKIP")}
    (out / "summary.json").write_text(json.dumps({"counts": counts, "results": results}, indent=1))
    print(f"{len(results)} procedures: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
