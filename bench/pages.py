"""How fast the app answers: each page's first render in a new tab of one browser profile, and
page switches while a run trains. Figures only (the tests check that pages render, not how fast).
Appends a row a sitting to bench/results/pages.jsonl (`_table`).

    python bench/pages.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CHROMIUM, FLAGS, ROOT, Server, fresh_home  # noqa: E402
import _table  # noqa: E402

sys.path.insert(0, str(ROOT))
PAGES = [("", "Experiments"), ("data", "1 · Data"), ("model", "2 · Model"), ("strategy", "3 · Strategy"), ("train", "4 · Train"),
         ("compare", "5 · Compare"), ("predict", "6 · Predict")]


def idle(page) -> None:
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=120_000)


def main() -> int:
    from playwright.sync_api import sync_playwright

    from tl_core.app.api import APP_DEFAULT

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    home = fresh_home()
    server = Server(home, {"TL_MAX_RUNS": "1"})
    first, switch = {}, {"5 · Compare": [], "4 · Train": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            for path, name in PAGES:
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(f"{server.url}/{path}")
                page.get_by_role("heading", name=name).first.wait_for(timeout=60_000)
                first[name] = round(time.perf_counter() - t, 2)
                idle(page)
                page.close()
            cfg = home / "run.json"
            cfg.write_text(APP_DEFAULT.to_json())
            rid = json.loads(server.cli("train", "--fresh", "--config", str(cfg), "--detach", "--json"))["run_id"]
            page = ctx.new_page()
            page.goto(f"{server.url}/train?run={rid}")
            page.get_by_text("images/s").first.wait_for(timeout=120_000)  # it trains
            for _ in range(a.rounds):
                for name in switch:
                    idle(page)
                    t = time.perf_counter()
                    page.get_by_role("link", name=name).first.click()
                    page.get_by_role("heading", name=name).first.wait_for(timeout=60_000)
                    switch[name].append(round(time.perf_counter() - t, 2))
            browser.close()
        server.cli("runs", "cancel", rid)
    finally:
        server.stop()
    out = {"bench": "pages", "machine": "2-core CPU, no GPU", "date": time.strftime("%Y-%m-%d"),
           "first_render_s": first, "switch_while_training_s": switch,
           "switch_median_s": {k: statistics.median(v) for k, v in switch.items()}}
    _table.append("pages", {**_table.provenance("pages", "python bench/pages.py " + " ".join(sys.argv[1:])), **out})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
