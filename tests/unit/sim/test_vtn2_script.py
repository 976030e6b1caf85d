"""The scripted OpenADR 2.0b VTN's own bookkeeping, without sockets: which answer confirms a
cancellation (and so ends the event's distribution)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.sim.vtn2.server import ScriptedVtn

VEN = "VEN_1"


def answer(event_id: str, modification: int) -> dict[str, Any]:
    return {
        "ven_id": VEN,
        "response": {"response_code": 200},
        "event_responses": [
            {
                "event_id": event_id,
                "modification_number": modification,
                "opt_type": "optIn",
                "response_code": 200,
            }
        ],
    }


def listed(vtn: ScriptedVtn) -> list[tuple[str, int, str]]:
    return [
        (e.event_descriptor.event_id, e.event_descriptor.modification_number,
         e.event_descriptor.event_status)
        for e in vtn._list(VEN)
    ]  # fmt: skip


def test_a_late_answer_to_an_earlier_version_does_not_end_a_cancelled_event() -> None:
    # Found by test_oadr2_restart under load: the VEN's answer to modification 0 arrived after
    # the cancellation (modification 1), the VTN took it for the cancellation's and dropped the
    # event, and the VEN, seeing it gone, had no cancellation to answer.
    vtn = ScriptedVtn()
    start = datetime.now(UTC) + timedelta(minutes=1)
    eid = vtn.add_event(VEN, "LOAD_DISPATCH", "setpoint", [(start, timedelta(minutes=5), -2.0)])
    assert vtn.cancel_event(eid) == 1
    asyncio.run(vtn._on_created(answer(eid, 0)))
    assert listed(vtn) == [(eid, 1, "cancelled")]  # still distributed, as cancelled
    asyncio.run(vtn._on_created(answer(eid, 1)))
    assert listed(vtn) == []  # the cancellation itself was answered
    assert [(c.modification_number, c.opt_type) for c in vtn.created] == [
        (0, "optIn"),
        (1, "optIn"),
    ]
