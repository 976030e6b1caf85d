"""``gateway simulate vtn --openadr 2|3``: a utility's OpenADR VTN on this machine, until Ctrl-C.

* ``--openadr 2``: openleadr's own ``OpenADRServer``, scripted (:mod:`gateway.sim.vtn2`). With
  ``--certs DIR`` it serves TLS and signs its messages with the ECDSA test PKI in DIR (made
  there with :func:`gateway.sim.vtn2.pki.init_pki` if DIR has none); the line it prints gives
  the VTN fingerprint a VEN must pin. Unless ``--no-demo``, every VEN that registers gets a
  short script: an export limit in 10 s, then an island request.
* ``--openadr 3``: the REST/JSON VTN (:mod:`gateway.sim.vtn3`), HTTPS with ``--certs DIR``
  (the same test PKI's server certificate), client credentials ``--client ID:SECRET``.

The first line printed names the URL to put in the ``[openadr2]`` / ``[openadr3]`` table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from gateway.sim.vtn2 import pki as vtn2_pki
from gateway.sim.vtn2.server import ScriptedVtn, VtnTls
from gateway.sim.vtn2.server import serve as serve_vtn2
from gateway.sim.vtn3 import Vtn3Server, VtnState


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--openadr", choices=("2", "3"), required=True, help="2.0b or 3")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: the OS chooses)")
    parser.add_argument(
        "--certs", type=Path, metavar="DIR", help="serve TLS with the test PKI in DIR (made if new)"
    )
    parser.add_argument("--poll-s", type=float, default=1.0, help="2.0b: the poll interval asked")
    parser.add_argument("--no-demo", action="store_true", help="2.0b: no scripted events")
    parser.add_argument(
        "--client", default="gateway:secret", metavar="ID:SECRET", help="3: client credentials"
    )
    parser.add_argument("--program", default="demo", help="3: the program offered")


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
    pki = _pki(args.certs) if args.certs is not None else None
    if args.openadr == "2":
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
    client_id, _, secret = str(args.client).partition(":")
    if not client_id or not secret:
        out.write("--client: expected ID:SECRET\n")
        return 2
    state = VtnState(clients={client_id: secret})
    state.add_program(args.program)
    cert, key = (pki.vtn.cert, pki.vtn.key) if pki is not None else (None, None)
    async with Vtn3Server(state, host=args.host, port=args.port, cert=cert, key=key) as vtn:
        out.write(f"OpenADR 3 VTN at {vtn.url} (program {args.program!r})\n")
        out.flush()
        await stop.wait()
    return 0
