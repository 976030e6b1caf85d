"""``gateway lfdi CERT [CERT...]``: the 2030.5 LFDI and SFDI of certificate files.

One line per file, ``LFDI <40 hex>  SFDI <decimal>  <path>``, in the order given. A file that
cannot be read or is not a certificate (PEM or DER) gets a message on stderr; the others are still
printed, and the exit status is 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from gateway.north.sep2.identity import Identity, IdentityError

# Wide enough for the largest SFDI (687194767359), so that the paths line up.
_SFDI_WIDTH = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "certs",
        nargs="+",
        type=Path,
        metavar="CERT",
        help="a certificate file, PEM or DER (of a PEM bundle, the first certificate)",
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    status = 0
    for path in args.certs:
        try:
            identity = Identity.from_certificate(path.read_bytes())
        except OSError as exc:
            print(f"gateway lfdi: {path}: cannot read: {exc.strerror or exc}", file=err)
            status = 2
        except IdentityError as exc:
            print(f"gateway lfdi: {path}: {exc}", file=err)
            status = 2
        else:
            print(f"LFDI {identity.lfdi}  SFDI {identity.sfdi:<{_SFDI_WIDTH}}  {path}", file=out)
    return status
