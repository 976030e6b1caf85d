"""``gateway simulate vtn --openadr 2|3``: a utility's OpenADR VTN on this machine, until Ctrl-C.

* ``--openadr 2``: openleadr's own ``OpenADRServer``, scripted (:mod:`gateway.sim.vtn2`). With
  ``--certs DIR`` it serves TLS and signs its messages with the ECDSA test PKI in DIR (made
  there with :func:`gateway.sim.vtn2.pki.init_pki` if DIR has none); the line it prints gives
  the VTN fingerprint a VEN must pin. Unless ``--no-demo``, every VEN that registers gets a
  short script: an export limit in 10 s, then an island request.
* ``--openadr 3``: the REST/JSON VTN (:mod:`gateway.sim.vtn3`). HTTPS by default, with the test
  PKI in ``--certs DIR`` (default ``./vtn-pki``, made there if new; the VEN trusts its
  ``ca.pem``); ``--http`` serves plain HTTP instead. Two clients: a VEN (``--client
  ID:SECRET``, default ``gateway:secret``) and a business logic one (``--bl-client``, default
  ``bl:bl-secret``) that may write programs and events. ``--program FILE|NAME``,
  ``--event FILE`` and ``--scenario FILE`` load JSON objects (:mod:`gateway.sim.vtn3.files`;
  ``docs/openadr3.md`` gives the formats). What it prints at start: the base URL, the port,
  the CA file and both clients' credentials and scopes.

The first line printed names the URL to put in the ``[openadr2]`` / ``[openadr3]`` table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import signal
import sys
from pathlib import Path
from typing import TextIO

from gateway.north.openadr3.model import ProtocolError
from gateway.sim.vtn2 import pki as vtn2_pki
from gateway.sim.vtn2.server import ScriptedVtn, VtnTls
from gateway.sim.vtn2.server import serve as serve_vtn2
from gateway.sim.vtn3 import Vtn3Server, VtnState, auth, files
from gateway.sim.vtn3.objects import ConflictError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--openadr", choices=("2", "3"), required=True, help="2.0b or 3")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port (default %(default)s; 0: the OS chooses)"
    )
    parser.add_argument(
        "--certs",
        type=Path,
        metavar="DIR",
        help="serve TLS with the test PKI in DIR (made if new); 3: default ./vtn-pki",
    )
    parser.add_argument("--http", action="store_true", help="3: plain HTTP instead of HTTPS")
    parser.add_argument(
        "--poll-s",
        type=float,
        default=1.0,
        help="2.0b: the poll interval asked (default %(default)s s)",
    )
    parser.add_argument("--no-demo", action="store_true", help="2.0b: no scripted events")
    parser.add_argument(
        "--client",
        default=":".join(auth.DEFAULT_VEN),
        metavar="ID:SECRET",
        help="3: the VEN client's credentials (default %(default)s)",
    )
    parser.add_argument(
        "--bl-client",
        default=":".join(auth.DEFAULT_BL),
        metavar="ID:SECRET",
        help="3: the business logic client's (may write programs and events; default %(default)s)",
    )
    parser.add_argument(
        "--program",
        action="append",
        metavar="FILE|NAME",
        help="3: a program: a JSON file (.json), or just its name (repeatable; default: "
        "one program named demo)",
    )
    parser.add_argument(
        "--event", action="append", type=Path, metavar="FILE", help="3: events (JSON; repeatable)"
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="3: programs, events, VENs and timed steps (JSON)",
    )


def _pki(folder: Path) -> vtn2_pki.Oadr2Pki:
    """The test PKI in ``folder`` (``ca.pem``, ``<name>.pem``/``.key``), made if missing."""
    if not (folder / "ca.pem").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        return vtn2_pki.init_pki(folder)

    def party(name: str) -> vtn2_pki.Party:
        return vtn2_pki.Party(folder / f"{name}.pem", folder / f"{name}.key")

    return vtn2_pki.Oadr2Pki(
        ca=folder / "ca.pem", vtn=party("vtn"), ven=party("ven"), other=party("other")
    )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    stop = _stop_on_signals()
    if args.openadr == "2":
        if args.http:
            print("gateway simulate vtn: --http is for --openadr 3", file=sys.stderr)
            return 2
        pki = _pki(args.certs) if args.certs is not None else None
        tls = None
        if pki is not None:
            tls = VtnTls(str(pki.vtn.cert), str(pki.vtn.key), str(pki.ca))

        def ready(vtn: ScriptedVtn) -> None:
            out.write(f"OpenADR 2.0b VTN at {vtn.url}\n")
            if pki is not None:
                out.write(f"  vtn_fingerprint = {pki.vtn.fingerprint!r}; VEN: {pki.ven.cert}\n")
            out.flush()

        await serve_vtn2(
            host=args.host,
            port=args.port,
            poll_interval_s=args.poll_s,
            tls=tls,
            stop=stop,
            demo=not args.no_demo,
            on_ready=ready,
        )
        return 0
    return await _run_vtn3(args, stop, out)


def _credentials(text: str, flag: str) -> tuple[str, str]:
    client_id, _, secret = text.partition(":")
    if not client_id or not secret:
        raise files.FileError(f"{flag}: expected ID:SECRET, got {text!r}")
    return client_id, secret


def _load(args: argparse.Namespace, state: VtnState, out: TextIO) -> list[files.Step]:
    """Programs, events and scenario from the command line into ``state``."""
    loader = files.Loader(state)
    steps: list[files.Step] = []
    if args.scenario is not None:
        steps = loader.scenario_file(args.scenario)
    for item in args.program or ():
        if item.endswith(".json") or "/" in item:
            loader.program_file(Path(item))
        else:
            try:
                state.check_refs("programs", {"programName": item})
            except ConflictError as e:
                raise files.FileError(f"--program {item}: {e}") from None
            state.add_program(item)
    if not state.programs:
        state.add_program("demo")
    for path in args.event or ():
        loader.event_file(path)
    for p in state.programs.values():
        out.write(f"  program {p['id']}: {p['programName']!r}\n")
    for ev in state.events.values():
        period = ev.get("intervalPeriod") or {}
        out.write(
            f"  event {ev['id']}: {ev.get('eventName')!r} on {ev['programID']}, "
            f"start {period.get('start', '-')}\n"
        )
    for v in state.vens.values():
        out.write(f"  ven {v['id']}: {v['venName']!r}\n")
    for step in steps:
        out.write(f"  at +{step.at_s:g} s: {step.action}\n")
    return steps


async def _play(loader: files.Loader, steps: list[files.Step], t0: float, out: TextIO) -> None:
    for step in steps:
        delay = t0 + step.at_s - loader.state.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            line = loader.play(step)
        except (ProtocolError, ConflictError) as e:
            line = f"step failed: {e}"
        out.write(f"+{step.at_s:g} s: {line}\n")
        out.flush()


async def _run_vtn3(args: argparse.Namespace, stop: asyncio.Event, out: TextIO) -> int:
    if args.http and args.certs is not None:
        print("gateway simulate vtn: --http and --certs exclude each other", file=sys.stderr)
        return 2
    try:
        ven = _credentials(str(args.client), "--client")
        bl = _credentials(str(args.bl_client), "--bl-client")
        if ven[0] == bl[0]:
            raise files.FileError("--client and --bl-client need different ids")
        state = VtnState(clients=dict([ven, bl]), roles={bl[0]: "BL"})
        header = io.StringIO()
        steps = _load(args, state, header)
        pki = None if args.http else _pki(args.certs or Path("vtn-pki"))
    except (files.FileError, OSError, ValueError) as e:
        print(f"gateway simulate vtn: {e}", file=sys.stderr)
        return 2
    cert, key = (pki.vtn.cert, pki.vtn.key) if pki is not None else (None, None)
    async with Vtn3Server(state, host=args.host, port=args.port, cert=cert, key=key) as vtn:
        names = ", ".join(repr(p["programName"]) for p in state.programs.values())
        out.write(f"OpenADR 3 VTN at {vtn.url} (programs {names})\n")
        out.write(f"  port {vtn.port}; token URL {vtn.url}/oauth/token (or /auth/token)\n")
        if pki is not None:
            out.write(f"  TLS: the VEN trusts {pki.ca.resolve()} ([openadr3] ca_file)\n")
        else:
            out.write("  plain HTTP (--http): the gateway itself needs https://\n")
        for (cid, secret), role in ((ven, "VEN"), (bl, "BL")):
            scopes = " ".join(sorted(auth.ROLE_SCOPES[role]))
            out.write(f"  {role} client: client_id {cid!r}, client_secret {secret!r} ({scopes})\n")
        out.write(header.getvalue())
        out.flush()
        player = asyncio.create_task(_play(files.Loader(state), steps, state.clock(), out))
        try:
            await stop.wait()
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
    return 0
