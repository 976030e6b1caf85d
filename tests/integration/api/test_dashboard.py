"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), on ``gateway run``
with a simulated home over Modbus TCP: the page renders the live state, and an island request
from the page reaches the simulated relay.

``make test`` installs Chromium (``make browser``); without it the test is skipped, saying so.
``UPDATE_SCREENSHOT=1`` writes docs/dashboard.png from the islanded home.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

import pytest
from api_rig import TOKEN, api_url, site_file, until

from gateway.conformance import v2h
from gateway.demo.site_home import home_for
from gateway.runtime import cli_run
from gateway.runtime.run_config import load

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).parents[3] / "docs" / "dashboard.png"
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make browser"),
]
# Chromium as root in a container, with no network beyond loopback: no sandbox, and none of
# the background connections this machine's closed network would refuse.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_page_shows_the_live_home_and_islands_it_on_a_click(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    site = site_file(tmp_path)
    config = load(site)
    out = io.StringIO()

    async def main() -> None:
        home = home_for(config, start=v2h.NOON, speed=1.0)
        async with home:
            run = asyncio.create_task(cli_run.run(config, out, seconds=90))
            url = await api_url(out)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                page = await browser.new_page(viewport={"width": 1200, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(f"{url}/")
                # The live state, as the devices read it: on the grid, relay closed, the sun
                # on the PV, the EV's charge.
                await expect(page.get_by_test_id("phase")).to_have_text("grid connected")
                await expect(page.locator("#relay-text")).to_have_text("relay closed")
                await expect(page.locator("#w-pv")).to_have_text(re.compile(r"^[1-9][\d,]* W$"))
                await expect(page.locator("#soc")).to_contain_text("%")
                await expect(page.locator("#live")).to_have_class("live on")
                await expect(page.locator("#allowance")).to_contain_text("backfeed allowance")
                assert home.physics.relay_category() == "closed"

                # A click without the token is refused, and the page says why.
                await page.get_by_test_id("island").click()
                await expect(page.get_by_test_id("answer")).to_contain_text("refused")
                assert home.physics.relay_category() == "closed"

                await page.fill("#token", TOKEN)
                await page.get_by_test_id("island").click()
                await expect(page.get_by_test_id("answer")).to_contain_text("the home islands")
                await until(home, "relay", "open", 10)
                await until(home, "charger", "forming", 10)
                await expect(page.get_by_test_id("phase")).to_have_text("islanded", timeout=10_000)
                await expect(page.locator("#relay-text")).to_have_text("relay open")
                # The timeline tells what happened and why: the relay's command, with reason.
                await expect(page.get_by_test_id("timeline")).to_contain_text("relay")
                await expect(page.get_by_test_id("timeline")).to_contain_text("phase: islanded")
                if os.environ.get("UPDATE_SCREENSHOT"):
                    await asyncio.sleep(3)  # a few chart points
                    await page.screenshot(path=str(SCREENSHOT), full_page=True)
                assert errors == []
                await browser.close()
            run.cancel()

    asyncio.run(main())
