"""The SunSpec CSIP conformance catalogue (US CSIP, v1.3: 79 rows), as transcribed in
``shared/domain/sep2.md`` §2.2 (the PDF is not redistributable): each row's ID, title, and who
it applies to. ``client`` rows apply to a DER client; the others are listed NOT RUN, saying
whose they are.
"""

from __future__ import annotations

from typing import Final

CLIENT, OPTIONAL, AGGREGATOR, SERVER = "client", "optional", "aggregator", "server"

#: (ID, title, applies to)
ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    ("COMM-001", "xmDNS / DNS-SD discovery", OPTIONAL),
    ("COMM-002", "Out-of-band discovery (configured /dcap URI)", CLIENT),
    ("COMM-003", "Basic security: TLS 1.2 + ECDHE-ECDSA-AES128-CCM-8", CLIENT),
    ("COMM-004", "Advanced security: certificate validation (another CA, expired)", CLIENT),
    ("COMM-004A", "Chain depth 2 (SERCA -> server) accepted", CLIENT),
    ("COMM-004B", "Chain depth 3 (SERCA -> MICA -> server) accepted", CLIENT),
    ("COMM-004C", "Chain depth 4 (SERCA -> MCA -> MICA -> server) accepted", CLIENT),
    ("COMM-004D", "Reject: invalid critical MICA EKU", CLIENT),
    ("COMM-004E", "Reject: invalid non-critical MICA name", CLIENT),
    ("COMM-004F", "Reject: invalid non-critical MICA policy mapping", CLIENT),
    ("COMM-004G", "Reject: self-signed device certificate", CLIENT),
    ("CORE-001", "HTTP request handling", SERVER),
    ("CORE-002", "HTTP response handling, 501, TLS redirect", SERVER),
    ("CORE-003", "Polling (the client re-walks per pollRate)", CLIENT),
    ("CORE-004", "List handling / paging", SERVER),
    ("CORE-005", "Basic time (the client follows /tm)", CLIENT),
    ("CORE-009", "Advanced EndDevice", CLIENT),
    ("CORE-010", "Function Set Assignments (7-level topology)", CLIENT),
    ("CORE-011", "Advanced FSA (15-level topology)", CLIENT),
    ("CORE-012", "Basic DER program / DER control", CLIENT),
    ("CORE-013", "Advanced DER program / DER control", CLIENT),
    ("CORE-014", "DER settings (DERSettings / DERCapability PUT)", CLIENT),
    ("CORE-018", "Basic subscription / notification", AGGREGATOR),
    ("CORE-019", "Advanced subscription / notification", AGGREGATOR),
    ("CORE-021", "Randomized events (randomizeStart, randomizeDuration)", CLIENT),
    ("CORE-022", "Responses (Received, Started, Completed, Cancelled)", CLIENT),
    ("CORE-023", "Superseding (optional)", OPTIONAL),
    ("BASIC-001", "DER identification (SFDI, LFDI, PIN)", CLIENT),
    ("BASIC-002", "Group management (7 FSAs, 7 programs, 3 EndDevices)", CLIENT),
    ("BASIC-003", "Advanced group management (FSA changes mid-run)", CLIENT),
    ("BASIC-004", "LVRT / HVRT curves", CLIENT),
    ("BASIC-005", "LFRT / HFRT curves", CLIENT),
    ("BASIC-006", "Volt-Var", CLIENT),
    ("BASIC-007", "Ramp rates (setGradW, setSoftGradW)", CLIENT),
    ("BASIC-008", "Fixed power factor", CLIENT),
    ("BASIC-009", "Connect / disconnect (opModConnect, opModEnergize)", CLIENT),
    ("BASIC-010", "Limit maximum active power (opModMaxLimW)", CLIENT),
    ("BASIC-011", "Volt-Watt", CLIENT),
    ("BASIC-012", "Frequency-Watt / frequency droop", CLIENT),
    ("BASIC-013", "Set active power % (opModFixedW)", OPTIONAL),
    ("BASIC-014", "Set active power W (opModTargetW)", OPTIONAL),
    ("BASIC-015", "Composed curve modes (e.g. Watt-PF)", CLIENT),
    ("BASIC-016", "2 DERP, 2 DefaultDERControl, 0 DERControl", CLIENT),
    ("BASIC-017", "1 DERP, 0 DefaultDERControl, 1 DERControl", CLIENT),
    ("BASIC-018", "1 DERP, 1 DefaultDERControl, 1 DERControl", CLIENT),
    ("BASIC-019", "1 DERP, 1 DDERC, 2 non-overlapping similar DERControls", CLIENT),
    ("BASIC-020", "2 DERP, 2 DDERC, 2 non-overlapping similar DERControls", CLIENT),
    ("BASIC-021", "Overlapping similar controls: System then Service Point, before start", CLIENT),
    ("BASIC-022", "Overlapping similar controls: Service Point then System", CLIENT),
    ("BASIC-023", "Overlapping similar controls: after start, staggered ends", CLIENT),
    ("BASIC-024", "Overlapping independent controls, before start", CLIENT),
    ("BASIC-025", "Overlapping independent controls, staggered starts", CLIENT),
    ("BASIC-026", "Overlapping independent controls, staggered ends", CLIENT),
    ("BASIC-027", "Alarms (LogEvents)", CLIENT),
    ("BASIC-028", "Inverter status (DERStatus)", CLIENT),
    ("BASIC-029", "Meter readings (MirrorUsagePoint)", CLIENT),
    ("AGG-001", "Aggregator subscription", AGGREGATOR),
    *(
        (f"AGG-{n:03d}", "Aggregator version of a precedence scenario", AGGREGATOR)
        for n in range(2, 13)
    ),
    ("ERR-001", "Error scenario: redirect / server error", CLIENT),
    ("ERR-002", "Subscription survives a server restart", AGGREGATOR),
    ("MAINT-001", "EndDevice out-of-band maintenance", AGGREGATOR),
    ("MAINT-002", "(optional per errata seq 32)", OPTIONAL),
    ("MAINT-003", "Group (FSA) maintenance", AGGREGATOR),
    ("MAINT-004", "Controls maintenance", AGGREGATOR),
    ("MAINT-005", "Program maintenance / primacy swap", AGGREGATOR),
    ("UTIL-001", "Server start-up group assignment", SERVER),
    ("UTIL-002", "Commissioning (aggregator model)", AGGREGATOR),
    ("UTIL-003", "Group retrieval", AGGREGATOR),
    ("UTIL-004", "DER retrieval", AGGREGATOR),
)

#: Why a row that does not apply to a DER client is not run.
NOT_APPLICABLE: Final = {
    SERVER: "not applicable: a server row (the suite tests a DER client)",
    AGGREGATOR: "not applicable: an aggregator-client row (the suite tests a DER client)",
}
