"""The SunSpec DER driver: discovery by chain walk, binding by name, limits in % of WMax.

The bus is a register dictionary built by ``sunspec.image`` (pure logic; the same driver runs
against the pymodbus simulator in tests/integration). Both the IEEE 1547-2018 models (701-715)
and the legacy ones (103/121/123/124) are covered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from fake_link import RegisterLink

from gateway.core.messages import DerLimit, WriteConfirmed, WriteFailed
from gateway.south import codec, sunspec
from gateway.south.device import Device, WriteRecord
from gateway.south.drivers.der import Der
from gateway.south.errors import DeviceStateError
from gateway.south.profiles import load_shipped

MODERN = [
    (1, {"Mn": "ACME", "Md": "PV-7"}),
    (701, {"W": 4200.0, "W_SF": 0, "ConnSt": "CONNECTED"}),
    (702, {"WMax": 7000.0, "W_SF": 0}),
    (704, {"WMaxLimPct": 100.0, "WMaxLimPct_SF": -1, "WMaxLimPctEna": "DISABLED"}),
]
LEGACY = [
    (1, {"Mn": "OLDCO", "Md": "INV"}),
    (103, {"W": 3000.0, "W_SF": 1}),
    (121, {"WMax": 6000.0, "WMax_SF": 0}),
    (123, {"WMaxLimPct": 100.0, "WMaxLimPct_SF": 0, "WMaxLim_Ena": "DISABLED"}),
]


def driver(
    profile: str, models: list[tuple[int, Mapping[str, codec.Value]]]
) -> tuple[Der, RegisterLink, sunspec.Image, list[WriteRecord]]:
    img = sunspec.image(models)
    link, records = RegisterLink.image(img.registers), []
    dev = Device("pv", load_shipped(profile), link, audit=records.append, now=lambda: 5.0)
    der = Der(dev, now=lambda: 5.0)
    der.der_id = "pv"
    return der, link, img, records


def value(img: sunspec.Image, link: RegisterLink, name: str) -> codec.Value | None:
    p = img.points[name]
    regs = [link.holding(a) for a in range(p.address, p.address + p.count)]
    sf = None
    if p.scale_factor is not None:
        s = img.points[p.scale_factor]
        sf = int(codec.decode(s, [link.holding(s.address)]))  # type: ignore[arg-type]
    return codec.decode(p, regs, sf)


@pytest.mark.parametrize(
    ("profile", "models", "pct", "enable", "power"),
    [
        ("sunspec-der", MODERN, "704.WMaxLimPct", "704.WMaxLimPctEna", 4200.0),
        ("sunspec-legacy-der", LEGACY, "123.WMaxLimPct", "123.WMaxLim_Ena", 3000.0),
    ],
)
def test_discovery_then_a_limit_in_watts_becomes_a_percentage_of_wmax(
    profile: str, models: list, pct: str, enable: str, power: float
) -> None:
    der, link, img, records = driver(profile, models)

    async def body() -> tuple[object, object]:
        await der.connect()
        result = await der.execute(DerLimit("c1", "pv", 1_500.0, 0.0, "export limit"))
        return result, await der.observe()

    result, telemetry = asyncio.run(body())
    assert isinstance(result, WriteConfirmed), result
    w_max = 7000.0 if profile == "sunspec-der" else 6000.0
    assert value(img, link, pct) == pytest.approx(1_500.0 / w_max * 100, abs=0.1)
    assert value(img, link, enable) == 1  # ENABLED, resolved from the model's symbols
    assert telemetry.power_w == pytest.approx(power)  # type: ignore[attr-defined]
    outcomes = [(r.point, r.outcome) for r in records if r.correlation_id == "c1"]
    if profile == "sunspec-der":  # neighbours (704 offsets 14, 15): one request, one read-back
        assert outcomes == [
            (pct, "writing"), (enable, "writing"), (pct, "confirmed"), (enable, "confirmed")
        ]  # fmt: skip
    else:  # 123.WMaxLimPct and 123.WMaxLim_Ena are four registers apart: one after the other
        assert outcomes == [
            (pct, "writing"), (pct, "confirmed"), (enable, "writing"), (enable, "confirmed")
        ]  # fmt: skip
    # Optional models the device lacks drop their roles instead of failing discovery.
    assert not der.has("soc")


def test_a_device_without_a_required_model_says_what_it_has() -> None:
    der, *_ = driver("sunspec-legacy-der", LEGACY[:2])  # 1 and 103 only
    with pytest.raises(DeviceStateError, match=r"lacks required SunSpec model\(s\) 121, 123"):
        asyncio.run(der.connect())


def test_an_unreadable_wmax_fails_the_limit_with_a_reason() -> None:
    models = [MODERN[0], MODERN[1], (702, {"W_SF": 0}), MODERN[3]]  # WMax not implemented
    der, link, *_ = driver("sunspec-der", models)

    async def body() -> object:
        await der.connect()
        link.clear()  # the profile's init write (704.WSetMod = WATTS)
        return await der.execute(DerLimit("c2", "pv", 1_000.0, 0.0, "limit"))

    result = asyncio.run(body())
    assert isinstance(result, WriteFailed)
    assert "w_max reads None" in result.error
    assert link.writes == []  # no limit was guessed


RATED_702 = (702, {"WMax": 7000.0, "WMaxRtg": 6500.0, "W_SF": 0})
RATED_CHARGE_702 = (702, {"WMax": 7000.0, "WChaRteMaxRtg": 3300.0, "W_SF": 0})


@pytest.mark.parametrize(
    ("profile", "models", "want"),
    [
        ("sunspec-der", [*MODERN[:2], RATED_702, MODERN[3]], 6500),
        ("sunspec-legacy-der", [*LEGACY, (120, {"WRtg": 5500.0, "WRtg_SF": 1})], 5500),
        ("sunspec-der", MODERN, None),  # WMaxRtg not implemented: no rating
        ("sunspec-legacy-der", LEGACY, None),  # no model 120: the role is left unbound
    ],
)
def test_MUL_03_the_rated_w_role_reads_the_nameplate_not_the_setting(
    profile: str, models: list, want: float | None
) -> None:
    """``rated_w`` is the nameplate (702.WMaxRtg; legacy 120.WRtg, with its scale factor),
    not the WMax setting; a device without one reports no rating."""
    der, *_ = driver(profile, models)

    async def body() -> float | None:
        await der.connect()
        return await der.rating()

    assert asyncio.run(body()) == want


@pytest.mark.parametrize(
    ("models", "want"),
    [
        ([*MODERN[:2], RATED_CHARGE_702, MODERN[3]], 3300),
        (MODERN, None),  # a PV inverter: WChaRteMaxRtg not implemented, no charge rating
    ],
)
def test_MUL_03_the_rated_charge_w_role_reads_702_wcha_rte_max_rtg(
    models: list, want: float | None
) -> None:
    """A storage inverter's own charge rating is 702.WChaRteMaxRtg (the nameplate, not the
    WChaRteMax setting); a PV-only one reports none."""
    der, *_ = driver("sunspec-der", models)

    async def body() -> float | None:
        await der.connect()
        return await der.rating("rated_charge_w")

    assert asyncio.run(body()) == want
