"""One OpenADR 2.0b VEN case: a scripted VTN, the simulated home, and the VEN under test.

The VTN is ``gateway.sim.vtn2.ScriptedVtn`` (openleadr's own ``OpenADRServer``) over mutual
TLS with ECDSA XML signatures both ways; the home is the V2H suite's (relay, V2H charger, PV)
at noon on simulated Modbus devices. The VEN under test is this gateway in-process (a site
file with ``[openadr2]``) or any command, told the VTN and its credentials in the environment
(:data:`ENV_KEYS`). A case is judged only from the wire: what the VTN received (``vtn.wire``,
``vtn.registrations``, ``vtn.created``, ``vtn.reports``, ``vtn.cancellations``) and what the
simulated devices did (:class:`Sample`), never from what the target printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.conformance import v2h
from gateway.conformance.target import InProcess, Target
from gateway.conformance.target import environment as with_environment
from gateway.demo.site_home import home_for
from gateway.runtime.run_config import load
from gateway.sim.modbus import SimulatedHome
from gateway.sim.vtn2 import ScriptedVtn, VtnTls, WireMessage
from gateway.sim.vtn2.pki import Oadr2Pki, init_pki

VEN_NAME = "gateway-ven"
VTN_ID = "VTN_CONFORMANCE"
POLL_S = 1.0  # the oadrRequestedOadrPollFreq the VTN asks for, unless a case says otherwise
REGISTER_S = 30.0  # at most this long from the target's start to its registration
SAMPLE_S = 0.1
#: The environment a command target gets (and the suite prints) for each case.
ENV_KEYS = (
    "VTN_URL",
    "VEN_NAME",
    "VEN_ID",
    "CERT",
    "KEY",
    "CA",
    "VTN_FINGERPRINT",
    "POLL_S",
)

OPENADR2 = """
[openadr2]
vtn_url = "{url}"
ven_name = "{ven_name}"
report_interval_s = 1
cert = "{cert}"
key = "{key}"
ca_file = "{ca}"
vtn_fingerprint = "{fingerprint}"

[openadr2.availability]
debounce_s = 1                  # E1_1060: an opt-out within a second of the EV leaving
"""


@dataclass(frozen=True, slots=True)
class Sample:
    """The home as the simulated devices saw it."""

    t: float  # time.monotonic()
    relay: str  # open, closed, moving, fault
    charger: str  # charging, discharging, forming, stopped, ...
    net_w: float  # at the meter, import positive
    pv_w: float

    def row(self, t0: float) -> dict[str, Any]:
        return {
            "t": round(self.t - t0, 2),
            "relay": self.relay,
            "charger": self.charger,
            "net_w": round(self.net_w),
            "pv_w": round(self.pv_w),
        }


@dataclass
class Session:
    vtn: ScriptedVtn
    home: SimulatedHome
    t0: float
    samples: list[Sample] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)  # what the script did, when
    ready: bool = False  # the VEN registered and polls: the case's script may start

    @property
    def ven_id(self) -> str:
        return self.vtn.registrations[-1].ven_id if self.vtn.registrations else ""

    def note(self, what: str) -> float:
        at = time.monotonic()
        self.notes.append({"t": round(at - self.t0, 2), "script": what})
        return at

    def sample(self) -> Sample:
        self.home.sync()
        p = self.home.physics
        s = Sample(time.monotonic(), p.relay_category(), p.charger_category(), p.meter().net_w,
                   p.pv.power_w)  # fmt: skip
        self.samples.append(s)
        return s

    async def watch(self, seconds: float) -> None:
        """Sample the home for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    async def until(self, check: Callable[[], bool], seconds: float) -> bool:
        """Sample the home until ``check`` holds (True) or ``seconds`` pass (False)."""
        end = time.monotonic() + seconds
        while not check():
            if time.monotonic() > end:
                return False
            self.sample()
            await asyncio.sleep(SAMPLE_S)
        return True

    def requests(self, kind: str, since: float = 0.0) -> list[WireMessage]:
        return [w for w in self.vtn.wire if w.request == kind and w.at >= since]

    def responses(self, event_id: str) -> list[tuple[int, str, int, int]]:
        """(modificationNumber, opt, eventResponse code, the message's own code) of every
        eventResponse the VTN got for ``event_id``."""
        return [
            (c.modification_number, c.opt_type, c.response_code, c.message_code)
            for c in self.vtn.responses(event_id)
        ]

    def between(self, start: float, end: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]

    def evidence(self, output: list[str]) -> list[dict[str, Any]]:
        wire = [{"t": round(w.at - self.t0, 2), **w.row()} for w in self.vtn.wire]
        created = [
            {
                "created_event": c.event_id,
                "modification": c.modification_number,
                "opt": c.opt_type,
                "code": c.response_code,
                "message_code": c.message_code,
            }
            for c in self.vtn.created
        ]
        rows = sorted(
            wire + self.notes + [s.row(self.t0) for s in self.samples], key=lambda r: r["t"]
        )
        return rows + created + [{"target": line} for line in output]


def write_site(folder: Path, vtn: ScriptedVtn, pki: Oadr2Pki, ven_id: str | None) -> Path:
    """The in-process VEN's site file: the V2H suite's home with an ``[openadr2]`` link to the
    scripted VTN. No ``poll_interval_s``: the VEN polls at the interval the VTN asks for."""
    text = v2h.site_text(folder) + OPENADR2.format(
        url=vtn.url,
        ven_name=VEN_NAME,
        cert=pki.ven.cert.as_posix(),
        key=pki.ven.key.as_posix(),
        ca=pki.ca.as_posix(),
        fingerprint=pki.vtn.fingerprint,
    )
    if ven_id is not None:
        text = text.replace(
            "\n[openadr2.availability]", f'ven_id = "{ven_id}"\n\n[openadr2.availability]'
        )
    path = folder / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def environment(
    vtn: ScriptedVtn, pki: Oadr2Pki, ven_id: str | None, poll_s: float
) -> dict[str, str]:
    values = (vtn.url, VEN_NAME, ven_id or "", pki.ven.cert, pki.ven.key, pki.ca,
              pki.vtn.fingerprint, f"{poll_s:g}")  # fmt: skip
    return {f"OADR2_{k}": str(v) for k, v in zip(ENV_KEYS, values, strict=True)}


@contextlib.asynccontextmanager
async def session(
    target: Target,
    folder: Path,
    output: list[str],
    *,
    seconds: float,
    poll_s: float = POLL_S,
    ven_id: str | None = None,
) -> AsyncIterator[Session]:
    """The VTN and the home served, the target started with them, and (``ready``) registered
    and polling within :data:`REGISTER_S`; ``output`` gets what the target printed, at the
    end."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = init_pki(folder / "pki")
    tls = VtnTls(str(pki.vtn.cert), str(pki.vtn.key), str(pki.ca))
    pre = {ven_id: pki.ven.fingerprint} if ven_id else None
    vtn = ScriptedVtn(vtn_id=VTN_ID, poll_interval_s=poll_s, tls=tls, pre_allocated=pre)
    async with vtn:
        site = write_site(folder, vtn, pki, ven_id)
        home = home_for(load(site), start=v2h.NOON, speed=1.0)
        env = environment(vtn, pki, ven_id, poll_s)
        if not isinstance(target, InProcess):
            print(" ".join(f"{k}={v}" for k, v in env.items()), file=sys.stdout, flush=True)
        async with home:
            s = Session(vtn, home, time.monotonic())
            with with_environment(env):
                await target.start(site, REGISTER_S + seconds + 10.0)
            try:
                # Registered, and done with its start (reports, oadrRequestEvent): the first
                # poll, as the harness's checkActiveRegistration, before the script starts.
                s.ready = await s.until(
                    lambda: bool(vtn.registrations and s.requests("oadrPoll")), REGISTER_S
                )
                if s.ready:
                    s.note(f"registered as {s.ven_id}, polling")
                yield s
            finally:
                output.extend(await target.stop())


def now() -> datetime:
    return datetime.now(UTC)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
