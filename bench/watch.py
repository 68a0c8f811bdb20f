"""What watching costs: the same run trained with 0, 1 and 8 browsers watching it live.

The run is the app's first-visit default (rendered digits -> scikit-learn digits, LeNet, DANN,
8 epochs x 300 steps), queued from the command line so that every browser session can watch
it (`/train?run=ID`). Each browser is a real chromium page kept open on the live Train page
until the run ends. The figure is the run's own wall time; the ratio to the unwatched run is
the share of training speed that survives watching. Browsers run on this machine too (a
classroom's run on the students' computers), so the CPU each part used during the run is
recorded as well: the web server's share is what a classroom server pays per watcher.
Appends a row a sitting to bench/results/watch.jsonl (`_table`; `--name` is its batch).

    python bench/watch.py [--watchers 0,1,8] [--repeats 1] [--name watch]

(Starting chromium at a low CPU priority does not take the browsers out of the picture here:
the kernel shares CPU between sessions' autogroups whatever their nice value. The server's own
share is therefore read from the CPU split.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CHROMIUM, FLAGS, ROOT, Server, fresh_home  # noqa: E402
import _table  # noqa: E402

sys.path.insert(0, str(ROOT))


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for those that are gone)."""
    total = 0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _pids(word: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if word in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore"):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def one(watchers: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tl_core.app.api import APP_DEFAULT
    from tl_core.store import Store

    home = fresh_home()
    server = Server(home, {"TL_MAX_RUNS": "1"})
    try:
        cfg = home / "run.json"
        cfg.write_text(APP_DEFAULT.to_json())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            pages = []
            rid = json.loads(server.cli("train", "--fresh", "--config", str(cfg), "--detach", "--json"))["run_id"]
            for _ in range(watchers):
                pg = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
                pg.goto(f"{server.url}/train?run={rid}")
                pages.append(pg)
            st = Store(home)
            groups = {"server": [server.proc.pid], "browsers": _pids("chromium"),
                      "worker": _pids(f"tl_core worker {rid}")}
            start = {k: _cpu_s(v) for k, v in groups.items()}
            t0 = time.time()
            while (r := st.get(rid))["status"] not in ("finished", "failed", "cancelled", "interrupted"):
                for pg in pages:
                    pg.wait_for_timeout(50)  # lets playwright service the pages' events
                time.sleep(0.5)
                if not groups["worker"]:
                    groups["worker"] = _pids(f"tl_core worker {rid}")
                    start["worker"] = 0.0
            span = time.time() - t0
            cores = {k: round((_cpu_s(v) - start[k]) / span, 3) for k, v in groups.items()}
            seen = []
            for pg in pages:  # each live view notices the end by itself (its panel polls every 3 s)
                try:
                    pg.get_by_text("Finished: target accuracy").first.wait_for(timeout=30_000)
                    seen.append(1)
                except Exception:  # noqa: BLE001 - counted, not fatal
                    seen.append(0)
            browser.close()
        return {"watchers": watchers, "status": r["status"], "wall_s": round(r["wall_s"], 1),
                "target_acc": r["target_acc"], "pages_saw_the_end": sum(seen), "cpu_cores_used": cores}
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchers", default="0,1,8")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--name", default="watch", help="the batch of this sitting's row")
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
           "config": "app default: syndigits -> uci_digits, lenet, dann, 8 x 300 steps",
           "runs": rows,
           "summary": summary}
    _table.append("watch", {**_table.provenance(a.name, "python bench/watch.py " + " ".join(sys.argv[1:])), **out})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
