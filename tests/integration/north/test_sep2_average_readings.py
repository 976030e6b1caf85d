"""Readings the reference runner can classify (ALL-06, ALL-10, GEN-01 against cactus).

The reference CSIP-AUS runner counts only *average* readings for W, var and V: ReadingType
``dataQualifier`` 2 (average), ``kind`` 37, each Reading over a whole interval (non-zero,
starting on the boundary) and mRIDs whose last 8 characters are the PEN's decimal digits
(SA TS 5573 §4.2: ``00032473`` for 32473, not the hex ``00007ED9``). Here the EndDevice has no
postRate and each MirrorUsagePoint says 2 s (the reference server's habit), so the readings
are 2 s averages aligned on even seconds. Every body POSTed to the mirrors is valid against
the CSIP-AUS schema.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sep2_rig import GatewayRig, gateway_rig, run, utility_server

from gateway.north.sep2 import codec
from gateway.north.sep2.metering import (
    DataQualifier,
    Kind,
    MirrorMeterReadingList,
    MirrorUsagePoint,
    Uom,
)
from gateway.north.sep2.pki import PkiFiles
from gateway.sim.utility.state import DOC_PEN

INTERVAL = 2
AVERAGED = {Uom.W, Uom.VAR, Uom.V, Uom.HZ}


def _schemas() -> ModuleType:
    """The unit tests' XSD finder (tests/unit/north/conftest.py), to validate the same way."""
    path = Path(__file__).parents[2] / "unit" / "north" / "conftest.py"
    spec = importlib.util.spec_from_file_location("sep2_xsd_finder", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _mirror_posts(r: GatewayRig) -> list[bytes]:
    return [x.body for x in r.recorder.requests("POST", "/mup") if x.status in (201, 204)]


def test_ALL_10_readings_are_aligned_interval_averages_with_decimal_pen_mrids(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    finder = _schemas()
    where, _ = finder.locate_schema_dir()
    if where is None:
        pytest.skip("2030.5 XSD not found (see tests/unit/north/conftest.py)")
    schema = finder._load(where / finder.CSIPAUS_CORE)
    pen = f"{DOC_PEN:08d}"
    assert pen == "00032473"

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            gw = sep2_pki.device("gateway")
            u.state.end_device(gw.lfdi).post_rate = None
            u.state.mup_post_rate = INTERVAL
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                await r.until(
                    lambda: len(r.state.readings(r.lfdi)) >= 16, "readings posted", timeout=20
                )
                readings = r.state.readings(r.lfdi)
                for mup in r.state.mups:
                    assert mup.mrid.endswith(pen), mup.mrid
                kinds: set[int] = set()
                for got in readings:
                    mmr = got.reading
                    assert mmr.mRID.endswith(pen), mmr.mRID
                    rt = mmr.ReadingType
                    assert rt is not None
                    assert rt.uom is not None
                    if rt.uom not in AVERAGED:
                        continue  # stored energy (Wh): instantaneous, as CSIP-AUS asks
                    kinds.add(rt.uom)
                    assert rt.dataQualifier == DataQualifier.AVERAGE, mmr
                    assert rt.kind == Kind.POWER, mmr
                    assert mmr.Reading is not None
                    period = mmr.Reading.timePeriod
                    assert period is not None
                    if rt.intervalLength == INTERVAL:  # the first, before the mirror was read
                        assert period.duration == INTERVAL
                        assert period.start % INTERVAL == 0, period
                        assert period.start + INTERVAL <= got.at + 1  # a whole, past interval
                assert {Uom.W, Uom.V} <= kinds
                at_rate = [
                    g
                    for g in readings
                    if g.reading.ReadingType is not None
                    and g.reading.ReadingType.intervalLength == INTERVAL
                ]
                assert len(at_rate) >= 8
                posted = _mirror_posts(r)
            for raw in posted:
                assert isinstance(codec.decode(raw), MirrorUsagePoint | MirrorMeterReadingList)
                ok = schema.validate(finder.etree.fromstring(raw))
                assert ok, (raw.decode(), [str(e) for e in schema.error_log])

    run(body)
