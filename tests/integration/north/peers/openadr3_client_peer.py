"""Run by ``test_oadr3_peer_openadr3_client.py`` in a Python >= 3.12 that has ElaadNL's
openadr3-client (not in this project's lock: it needs 3.12). Drives the simulated VTN as a BL
and as a VEN through the library's own models, which refuse any object the VTN serves without
the fields 3.0.1 requires; prints one JSON line of what it saw.

Usage: python3.12 openadr3_client_peer.py BASE_URL CA_FILE VEN_ID:SECRET BL_ID:SECRET
"""

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr301._vtn.interfaces.filters import PaginationFilter, TargetFilter
from openadr3_client.oadr301.models.event.event import EventUpdate, NewEvent
from openadr3_client.oadr301.models.event.event_payload import EventPayload, EventPayloadType
from openadr3_client.oadr301.models.program.program import NewProgram
from openadr3_client.oadr301.models.report.report import NewReport, ReportResource
from openadr3_client.oadr301.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr301.models.subscriptions.subscription import (
    NewSubscription,
    Object,
    ObjectOperation,
    Operation,
)
from openadr3_client.oadr301.models.ven.resource import NewResource
from openadr3_client.oadr301.models.ven.ven import NewVen
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion


def main() -> None:
    base, ca = sys.argv[1], Path(sys.argv[2])
    ven_id, _, ven_secret = sys.argv[3].partition(":")
    bl_id, _, bl_secret = sys.argv[4].partition(":")
    token_url = base + "/auth/token"
    # The library's token request ignores verify_vtn_tls_certificate (2.4.2: OAuthTokenManager
    # builds its own session); requests' own variable makes it trust the test CA.
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca)
    version = OADRVersion.OADR_301
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=base,
        client_id=bl_id,
        client_secret=bl_secret,
        token_url=token_url,
        scopes=["read_all", "read_bl", "write_events", "write_programs"],  # the README's
        verify_vtn_tls_certificate=ca,
        version=version,
    )
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=base,
        client_id=ven_id,
        client_secret=ven_secret,
        token_url=token_url,
        scopes=["read_all", "write_reports", "write_subscriptions", "write_vens"],
        verify_vtn_tls_certificate=ca,
        version=version,
    )
    seen: dict[str, object] = {}

    program = bl.programs.create_program(new_program=NewProgram(program_name="peer-program"))
    seen["program_by_id"] = ven.programs.get_program_by_id(program.id).program_name
    start = datetime.now(UTC)
    payload = EventPayload(type=EventPayloadType.EXPORT_CAPACITY_LIMIT, values=(2.0,))
    event = bl.events.create_event(
        new_event=NewEvent(
            programID=program.id,
            event_name="peer-limit",
            interval_period=IntervalPeriod(start=start, duration=timedelta(hours=1)),
            intervals=(Interval(id=0, payloads=(payload,)),),
        )
    )
    updated = bl.events.update_event_by_id(event.id, event.update(EventUpdate(priority=2)))
    seen["created_kept"] = updated.created_date_time == event.created_date_time
    seen["modified_moved"] = updated.modification_date_time > event.modification_date_time
    seen["event_by_id_priority"] = ven.events.get_event_by_id(event.id).priority
    seen["events_of_program"] = [
        e.event_name
        for e in ven.events.get_events(target=None, pagination=None, program_id=program.id)
    ]
    seen["events_page"] = len(
        ven.events.get_events(
            target=None, pagination=PaginationFilter(skip=0, limit=1), program_id=None
        )
    )
    seen["programs_targeted"] = len(
        ven.programs.get_programs(
            target=TargetFilter(target_type="GROUP", target_values=["x"]), pagination=None
        )
    )

    made_ven = ven.vens.create_ven(new_ven=NewVen(ven_name="peer-ven"))
    seen["ven_by_id"] = ven.vens.get_ven_by_id(made_ven.id).ven_name
    resource = ven.vens.create_ven_resource(
        made_ven.id, NewResource(resource_name="peer-ev", venID=made_ven.id)
    )
    seen["resource_by_id"] = ven.vens.get_ven_resource_by_id(made_ven.id, resource.id).resource_name
    seen["vens_named"] = [
        v.ven_name for v in ven.vens.get_vens(ven_name="peer-ven", target=None, pagination=None)
    ]

    reading = ReportPayload(type=ReportPayloadType.READING, values=(1.5,))
    report = ven.reports.create_report(
        new_report=NewReport(
            programID=program.id,
            eventID=event.id,
            client_name="peer-ven",
            resources=(
                ReportResource(
                    resource_name="site", intervals=(Interval(id=0, payloads=(reading,)),)
                ),
            ),
        )
    )
    seen["report_by_id"] = ven.reports.get_report_by_id(report.id).client_name
    seen["reports_of_event"] = len(
        ven.reports.get_reports(
            pagination=None, program_id=None, event_id=event.id, client_name=None
        )
    )
    seen["reports_of_other_event"] = len(
        ven.reports.get_reports(
            pagination=None, program_id=None, event_id="no-such-event", client_name=None
        )
    )

    sub = ven.subscriptions.create_subscription(
        new_subscription=NewSubscription(
            client_name="peer-ven",
            programID=program.id,
            object_operations=(
                ObjectOperation(
                    objects=(Object.EVENT,),
                    operations=(Operation.POST,),
                    callback_url="https://127.0.0.1:9/notify",
                    bearer_token="t",
                ),
            ),
        )
    )
    seen["subscription_by_id"] = ven.subscriptions.get_subscription_by_id(sub.id).client_name
    seen["subscription_deleted"] = ven.subscriptions.delete_subscription_by_id(sub.id).id == sub.id
    seen["event_deleted"] = bl.events.delete_event_by_id(event.id).id == event.id
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
