"""The first visit, in a real browser, as a new student meets it: a fresh server with no datasets
(the starter pack) and no network. The app opens on the "Does adaptation help?" preset; one click
launches it; the finished comparison with its verdict appears on the same page. At most 5 clicks."""
import os
import re
import tempfile

import pytest

from conftest import isolated_home
from live_server import CHROMIUM, FLAGS, Server

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]


@pytest.fixture
def fresh_server(tmp_path):
    home = isolated_home(tmp_path / "home")
    srv = Server(home, env={"TL_DATA_DIR": tempfile.mkdtemp(prefix="tl-nodata-"), "TL_OFFLINE": "1",
                            "TL_MAX_RUNS": "1"})
    yield srv
    srv.stop()


def test_first_visit_reaches_the_verdict_in_at_most_five_clicks(fresh_server):
    from playwright.sync_api import sync_playwright

    clicks = 0
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = b.new_page(viewport={"width": 1400, "height": 2200})
        page.goto(fresh_server.url)
        page.get_by_role("heading", name="Experiments").first.wait_for(timeout=60_000)
        page.get_by_text("Does adaptation help?").first.wait_for(timeout=30_000)
        page.get_by_text("starter pack").first.wait_for(timeout=30_000)  # says where the digits come from
        page.get_by_role("button", name="Launch experiment").click()
        clicks += 1
        # the whole grid (2 strategies x 2 seeds) finished: a hang fails, a slow machine does not
        page.get_by_text("status finished").first.wait_for(timeout=480_000)
        verdict = page.get_by_text(re.compile(r"won: .* a gain of"))
        verdict.first.wait_for(timeout=60_000)
        text = verdict.first.inner_text()
        assert "still to finish" not in text
        assert not page.locator("[data-testid='stException']").count()
        b.close()
    assert clicks <= 5
    gain = float(re.search(r"a gain of \+?(-?[\d.]+) points", text).group(1))
    assert gain >= 5.0, text  # DANN over source only on the starter pack's USPS -> MNIST
