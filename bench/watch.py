"""What watching costs: the same run trained with 0, 1 and 8 browsers watching it live.

The run is the app's first-visit default (rendered digits -> scikit-learn digits, LeNet, DANN,
8 epochs x 300 steps), queued from the command line so that every browser session can watch
it (`/train?run=ID`). Each browser is a real chromium page kept open on the live Train page
until the run ends. The figure is the run's own wall time; the ratio to the unwatched run is
the share of training speed that survives watching. Writes bench/results/watch.json.

    python bench/watch.py [--watchers 0,1,8] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CHROMIUM, FLAGS, ROOT, Server, fresh_home  # noqa: E402

sys.path.insert(0, str(ROOT))


def one(watchers: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tl_core.app_api import APP_DEFAULT
    from tl_core.store import Store

    home = fresh_home()
    server = Server(home, {"TL_MAX_RUNS": "1"})
    try:
        cfg = home / "run.json"
        cfg.write_text(APP_DEFAULT.to_json())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            pages = []
            rid = json.loads(server.cli("train", "--config", str(cfg), "--detach", "--json"))["run_id"]
            for _ in range(watchers):
                pg = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
                pg.goto(f"{server.url}/train?run={rid}")
                pages.append(pg)
            st = Store(home)
            while (r := st.get(rid))["status"] not in ("finished", "failed", "cancelled", "interrupted"):
                for pg in pages:
                    pg.wait_for_timeout(50)  # lets playwright service the pages' events
                time.sleep(0.5)
            seen = [pg.get_by_text("Finished: target accuracy").count() for pg in pages]
            browser.close()
        return {"watchers": watchers, "status": r["status"], "wall_s": round(r["wall_s"], 1),
                "target_acc": r["target_acc"], "pages_saw_the_end": sum(seen)}
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchers", default="0,1,8")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    rows = []
    for _ in range(a.repeats):
        for w in (int(x) for x in a.watchers.split(",")):
            rows.append(one(w))
            print(json.dumps(rows[-1]), flush=True)
    base = [r["wall_s"] for r in rows if r["watchers"] == 0]
    summary = {}
    if base:
        b = min(base)
        for w in sorted({r["watchers"] for r in rows}):
            best = min(r["wall_s"] for r in rows if r["watchers"] == w)
            summary[str(w)] = {"wall_s": best, "speed_vs_unwatched": round(b / best, 3)}
    out = {"bench": "watch", "machine": "2-core CPU, no GPU", "date": time.strftime("%Y-%m-%d"),
           "config": "app default: syndigits -> uci_digits, lenet, dann, 8 x 300 steps", "runs": rows,
           "summary": summary}
    (ROOT / "bench" / "results" / "watch.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
