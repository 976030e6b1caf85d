"""OpenADR 3 reports and restarts, end to end (R1_* and G1_* in spirit: the 2.0b IDs do not
apply to 3.0's REST reports one to one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from oadr3_rig import PROGRAM, make_pki, oadr3_rig, run, vtn_server

from gateway.core.messages import EventReceived, NorthLinkLost, NorthLinkRestored

REPORTED = ["DEMAND", "STORAGE_CHARGE_LEVEL", "OPERATING_STATE"]


def _values(report: dict[str, Any], resource: str, kind: str) -> list[Any]:
    out = []
    for res in report["resources"]:
        if res["resourceName"] == resource:
            for interval in res["intervals"]:
                for p in interval["payloads"]:
                    if p["type"] == kind:
                        out += p["values"]
    return out


def _indexes(reports: list[dict[str, Any]]) -> list[int]:
    return [r["resources"][0]["intervals"][0]["id"] for r in reports]


def _kinds(r: Any) -> list[type]:
    return [type(i) for i in r.inputs if isinstance(i, NorthLinkLost | NorthLinkRestored)]


def test_R1_reports_carry_site_and_der_telemetry_as_the_event_asks(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            await r.observed()
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [5.0]}], report=REPORTED)
            await r.until(lambda: len(r.state.reports_for(eid)) >= 3, "three reports")
            reports = r.state.reports_for(eid)
            indexes = _indexes(reports)
            assert indexes == sorted(set(indexes)), indexes  # one per period, in order
            last = reports[-1]
            assert last["programID"] == r.pid
            assert last["clientName"] == "gateway-1"
            kinds = {d["payloadType"]: d for d in last["payloadDescriptors"]}
            assert set(kinds) == set(REPORTED)
            assert kinds["DEMAND"]["units"] == "KW"
            # Site power in kW, + = import: the simulated home exports its PV surplus.
            meter_kw = r.site.home.physics.meter().net_w / 1000
            (site_kw,) = _values(last, "site", "DEMAND")
            assert abs(site_kw - meter_kw) < 1.0, (site_kw, meter_kw)
            assert site_kw < 0  # PV ~2.7 kW against ~1 kW of load
            (pv_kw,) = _values(last, "pv", "DEMAND")
            assert pv_kw < -1.0  # generating
            (soc,) = _values(last, "ev", "STORAGE_CHARGE_LEVEL")
            assert abs(soc - r.site.home.physics.charger.soc_pct) < 2
            assert _values(last, "site", "OPERATING_STATE") == ["GRID_CONNECTED"]

    run(body)


def test_R1_no_report_descriptors_no_reports(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path) as r:
            await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
            r.add([{"EXPORT_CAPACITY_LIMIT": [5.0]}])
            other = r.add([{"IMPORT_CAPACITY_LIMIT": [9.0]}], report=["DEMAND"])
            await r.until(lambda: len(r.state.reports_for(other)) >= 2, "reports for the other")
            assert {x["eventID"] for x in r.state.reports.values()} == {other}

    run(body)


def test_G1_restart_mid_event_resumes_without_duplicates(tmp_path: Path) -> None:
    """A report period of 30 s: the restart falls in the period already reported, so a
    gateway that forgot what it sent would send period 0 again."""

    async def body() -> None:
        async with vtn_server(make_pki(tmp_path / "pki")) as vtn:
            async with oadr3_rig(tmp_path, vtn=vtn, report_period_s=30) as r:
                await r.until(lambda: len(r.state.subscriptions) == 1, "subscribed")
                eid = r.add([{"EXPORT_CAPACITY_LIMIT": [2.0]}], report=["DEMAND"], duration_s=120)
                await r.until(lambda: r.export_limit() == 2000.0, "in force")
                await r.until(lambda: len(vtn.state.reports_for(eid)) == 1, "period 0 reported")
            async with oadr3_rig(tmp_path, vtn=vtn, report_period_s=30, poll_s=0.2) as r2:
                # The limit is back in force from the store, before and after the polls.
                await r2.until(lambda: r2.export_limit() == 2000.0, "in force after restart")
                n = len(r2.state.requests_to("GET", "/events"))
                await r2.until(
                    lambda: len(r2.state.requests_to("GET", "/events")) >= n + 3, "three polls"
                )
                assert r2.export_limit() == 2000.0
                assert [i for i in r2.inputs if isinstance(i, EventReceived)] == []
                # The first run's subscription was replaced, not duplicated.
                assert len(vtn.state.subscriptions) == 1
            assert _indexes(vtn.state.reports_for(eid)) == [0]

    run(body)


def test_G1_restart_after_the_vtn_gave_the_program_a_new_id_ends_the_old_events(
    tmp_path: Path,
) -> None:
    """The VTN restarts without its store while the gateway is down: same program name, new
    id. The remembered event's limit would otherwise stay in force, unseen, until its end:
    the restarted gateway follows the new id only, so no poll lists the old event again."""

    async def body() -> None:
        async with vtn_server(make_pki(tmp_path / "pki")) as vtn:
            async with oadr3_rig(tmp_path, vtn=vtn) as r:
                r.add([{"EXPORT_CAPACITY_LIMIT": [2.0]}], duration_s=600)
                await r.until(lambda: r.export_limit() == 2000.0, "in force")
            for table in (vtn.state.programs, vtn.state.events, vtn.state.subscriptions):
                table.clear()
            vtn.program_id = vtn.state.add_program(PROGRAM)
            async with oadr3_rig(tmp_path, vtn=vtn, poll_s=0.2) as r2:
                await r2.until(lambda: bool(r2.gateway.client.programs), "connected")
                assert list(r2.gateway.client.programs) == [vtn.program_id]
                await r2.until(lambda: r2.export_limit() is None, "the old limit ended")
                r2.add([{"EXPORT_CAPACITY_LIMIT": [1.5]}])
                await r2.until(lambda: r2.export_limit() == 1500.0, "the new id's event")

    run(body)


def test_G1_vtn_busy_or_failing_backs_off_and_recovers(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.2, webhook=False) as r:
            await r.until(lambda: len(r.state.requests_to("GET", "/events")) >= 1, "polling")
            r.state.fail(500, 3)
            await r.until(lambda: _kinds(r) == [NorthLinkLost], "link lost")
            r.state.fail(429, 1, retry_after_s=1)
            t0 = time.monotonic()
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [2.5]}])
            await r.until(lambda: r.export_limit() == 2500.0, "followed after the outage")
            assert time.monotonic() - t0 >= 0.9  # Retry-After honoured
            await r.until(
                lambda: _kinds(r) == [NorthLinkLost, NorthLinkRestored], "link restored once"
            )
            assert eid in r.gateway.client.tracker.known

    run(body)


def test_G1_expired_token_is_fetched_again_and_a_cut_link_is_reported(tmp_path: Path) -> None:
    async def body() -> None:
        async with oadr3_rig(tmp_path, poll_s=0.2, webhook=False) as r:
            await r.until(lambda: len(r.state.requests_to("GET", "/events")) >= 1, "polling")
            r.state.tokens.clear()  # the VTN forgets every token: the next call answers 401
            eid = r.add([{"EXPORT_CAPACITY_LIMIT": [2.5]}])
            await r.until(lambda: r.export_limit() == 2500.0, "followed with a new token")
            assert [c.status for c in r.state.requests_to("POST", "/oauth/token")] == [200, 200]
            assert 401 in [c.status for c in r.state.requests_to("GET", "/events")]
            assert _kinds(r) == []  # a 401 answered by a new token is not a link loss
            r.state.cut = True
            await r.until(lambda: _kinds(r) == [NorthLinkLost], "link lost when cut")
            r.state.cut = False
            r.state.delete_event(eid, notify=False)
            await r.until(lambda: r.export_limit() is None, "the deletion seen after the cut")
            await r.until(
                lambda: _kinds(r) == [NorthLinkLost, NorthLinkRestored], "link restored once"
            )

    run(body)
