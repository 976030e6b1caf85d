"""``gateway fault-reset --store PATH [--by NAME] [--wait SECONDS]``: ask the running gateway to
leave FAULT, after a person has inspected the site.

The command adds a ``fault_reset`` request to the gateway's store (:mod:`gateway.runtime.requests`
answers it at the next control cycle) and waits for the answer. The engine decides: it refuses
while the fault's condition persists, with every reason, and audits the request either way.

Exit status: 0 accepted; 1 refused (the reasons are printed); 2 no answer: no gateway took the
request within ``--wait`` seconds (it is then *withdrawn*, so a reset asked while no gateway was
running can never fire later; it also expires at that time should this command be killed), or
the store could not be used. A request the gateway took is always answered: the command then
waits a little longer for that answer.
"""

from __future__ import annotations

import argparse
import getpass
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TextIO

from gateway.core.messages import REASONS_JOINED_BY
from gateway.runtime.requests import FAULT_RESET, correlation_id
from gateway.store.api import Request, Store, StoreError, StoreNotFoundError

DEFAULT_WAIT_S: Final = 10.0
# Once the gateway has taken the request it is acting on it: the reset's own device steps
# (a relay confirmed open, ...) can take a step timeout or two before the answer is written.
TAKEN_GRACE_S: Final = 30.0
POLL_S: Final = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "site",
        nargs="?",
        type=Path,
        metavar="SITE.toml",
        help="the running gateway's site file (its [store] path is used)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="the running gateway's SQLite store, instead of a site file",
    )
    parser.add_argument(
        "--by",
        default=None,
        metavar="NAME",
        help="who asks, for the audit log (default: the login name)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long to wait for the gateway's answer (default {DEFAULT_WAIT_S:g})",
    )


def run(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    wait = float(args.wait)
    if not math.isfinite(wait) or wait <= 0:
        err.write(f"--wait must be a positive number of seconds, got {args.wait}\n")
        return 2
    by = args.by if args.by is not None else _login()
    if not by.strip():
        err.write("--by must name who asks (it goes into the audit log)\n")
        return 2
    if (args.site is None) == (args.store is None):
        err.write("name the site file (gateway fault-reset SITE.toml) or --store PATH\n")
        return 2
    path: Path
    if args.site is not None:
        from gateway.runtime.run_config import RunConfigError, load

        try:
            path = load(args.site).store
        except RunConfigError as e:
            err.write(f"{e}\n")
            return 2
    else:
        path = args.store
    from gateway.store.sqlite import SqliteStore

    try:
        store = SqliteStore(path, create=False)
    except StoreNotFoundError:
        err.write(
            f"no gateway store at {path}: give the `store` file of the running gateway's "
            "configuration\n"
        )
        return 2
    except StoreError as e:
        err.write(f"cannot use the store: {e}\n")
        return 2
    try:
        return _ask(store, path, by.strip(), wait, out, err, wall, sleep)
    except StoreError as e:
        err.write(f"the store failed while waiting for the answer: {e}\n")
        return 2
    finally:
        store.close()


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the user database
        return "local user"


def _ask(
    store: Store,
    path: Path,
    by: str,
    wait: float,
    out: TextIO,
    err: TextIO,
    wall: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    asked = wall()
    rid = store.add_request(FAULT_RESET, by, asked, expires_at=asked + wait)
    out.write(f"fault reset asked (request {rid}, by {by}); waiting up to {wait:g} s\n")
    out.flush()
    try:
        r = _await(store, rid, asked + wait, wall, sleep, lambda r: r.status != "pending")
        if r.status == "pending" and store.withdraw_request(rid, wall()):
            err.write(
                f"no gateway answered within {wait:g} s: is one running on {path}? "
                "The request was withdrawn: it will not be acted on later.\n"
            )
            return 2
        r = _request(store, rid)
        if r.status == "taken":
            r = _await(store, rid, wall() + TAKEN_GRACE_S, wall, sleep, lambda r: r.answered)
    except KeyboardInterrupt:
        if store.withdraw_request(rid, wall()):
            err.write("interrupted: the request was withdrawn, it will not be acted on\n")
        else:
            err.write(f"interrupted: the gateway had taken request {rid} already\n")
        return 2
    return _report(r, path, out, err)


def _await(
    store: Store,
    rid: int,
    until: float,
    wall: Callable[[], float],
    sleep: Callable[[float], None],
    done: Callable[[Request], bool],
) -> Request:
    while True:
        r = _request(store, rid)
        if done(r) or wall() >= until:
            return r
        sleep(POLL_S)


def _request(store: Store, rid: int) -> Request:
    r = store.request(rid)
    if r is None:  # pragma: no cover - requests are never deleted
        raise StoreError(f"request {rid} disappeared from the store", path=str(rid))
    return r


def _report(r: Request, path: Path, out: TextIO, err: TextIO) -> int:
    reason = r.reason or "no reason given"
    match r.status:
        case "accepted":
            out.write(f"fault reset accepted: {reason}\n")
            return 0
        case "refused":
            out.write("fault reset refused:\n")
            for why in reason.split(REASONS_JOINED_BY):
                out.write(f"  - {why}\n")
            return 1
        case "taken":
            err.write(
                f"the gateway took request {r.id} but gave no answer within "
                f"{TAKEN_GRACE_S:g} s more (has it stopped?); its log and the audit log of "
                f"{path} (correlation id {correlation_id(r.id)}) tell what it did\n"
            )
            return 2
        case _:  # expired or withdrawn: never acted on
            err.write(f"no gateway answered in time: request {r.id} {r.status} ({reason})\n")
            return 2
