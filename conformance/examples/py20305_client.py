"""py20305 (an open IEEE 2030.5 / CSIP client, Apache-2.0) as the client under test of
``gateway conformance run --suite csip-aus`` (or ``--suite csip``):

    gateway conformance run --suite csip-aus \
        --target "python conformance/examples/py20305_client.py" --case ALL-01

The suite starts this once per case with the server, the certificates and the PIN in the
environment (CSIP_AUS_SERVER, _CERT, _KEY, _CHAIN, _CA, _PIN, _LFDI; conformance/README.md),
and stops it with SIGTERM at the case's end. An example of wrapping someone else's client:
nothing here is the gateway's. Needs py20305 (`pip install py20305`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

from py20305.client.csip_client import CsipClient
from py20305.client.tls import TlsConfig


async def main() -> int:
    env = os.environ
    try:
        dcap, lfdi, pin = env["CSIP_AUS_SERVER"], env["CSIP_AUS_LFDI"], int(env["CSIP_AUS_PIN"])
        chain, key, ca = env["CSIP_AUS_CHAIN"], env["CSIP_AUS_KEY"], env["CSIP_AUS_CA"]
    except KeyError as e:
        print(f"py20305_client: {e.args[0]} is not set: run me as a --target", file=sys.stderr)
        return 2
    parts = urlsplit(dcap)
    base = f"{parts.scheme}://{parts.netloc}"
    # py20305 loads one PEM for its certificate: the chain (leaf first). The test PKI's server
    # certificate names no host this client dials by IP: no hostname check.
    tls = TlsConfig(client_cert=chain, client_key=key, ca_cert=ca, check_hostname=False)
    client = CsipClient(
        base, tls=tls, server_2018_compat=True, registration_pins={lfdi.lower(): pin}
    )
    client.http.csip_aus_mode = True  # CSIP-AUS 1.2's elements, whatever it guesses
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await client.connect()
    if not client.state.end_devices:  # not registered out of band: register in band
        await client.register_end_device(lfdi=lfdi)
        await client.connect()
    running = asyncio.create_task(client.run())
    await stop.wait()
    await client.shutdown()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main()))
