"""A class of browsers on one server: 30 browser contexts (each a stranger with its own cookies) open
the Experiments page, staggered, and reload it 3 times each. Measures the web server's resident memory
before, after and once every browser has closed, and the time from navigation to the page's heading
(p50 / p95 over every load), the server's CPU seconds, and the load average it ran at. The browsers run
on the same machine as the server, so on 2 cores the times include chromium drawing 30 pages: the
server's own share is `server_cpu_s`. It waits for a quiet machine (1-minute load below 1) first. Figures only; writes
bench/results/classroom_browsers.json.

    python bench/classroom_browsers.py [--browsers 30] [--reloads 3] [--stagger 0.5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CHROMIUM, FLAGS, Server, fresh_home  # noqa: E402
import _table  # noqa: E402

HEADING = "Experiments: does transfer help"


def rss_mb(pid: int) -> float:
    """Resident memory of the server process (MB), from /proc."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float = 1.0, patience_s: float = 300.0) -> float:
    """Wait (up to `patience_s`) for the 1-minute load average to fall below `limit`; returns it."""
    deadline = time.time() + patience_s
    while os.getloadavg()[0] >= limit and time.time() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def student(browser, url: str, delay: float, reloads: int, times: list[float], errors: list[str]) -> None:
    await asyncio.sleep(delay)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})  # its own cookies: a stranger
    page = await ctx.new_page()
    page.set_default_navigation_timeout(300_000)  # 30 browsers and the server share 2 cores: slow, not stuck
    try:
        for i in range(reloads + 1):
            t = time.perf_counter()
            if i == 0:
                await page.goto(url, wait_until="commit")
            else:
                await page.reload(wait_until="commit")
            await page.get_by_role("heading", name=HEADING).first.wait_for(timeout=300_000)
            times.append(time.perf_counter() - t)
            await page.wait_for_timeout(500)
    except Exception as e:  # noqa: BLE001 - counted and reported, the others go on
        errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    finally:
        await ctx.close()


async def run(a, url: str, pid: int) -> dict:
    from playwright.async_api import async_playwright

    times: list[float] = []
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        before, cpu0 = rss_mb(pid), cpu_s(pid)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        peak = [before]

        async def watch() -> None:
            while True:
                peak[0] = max(peak[0], rss_mb(pid))
                await asyncio.sleep(0.5)

        w = asyncio.create_task(watch())
        await asyncio.gather(*(student(browser, url, i * a.stagger, a.reloads, times, errors)
                               for i in range(a.browsers)))
        wall = time.perf_counter() - t0
        after, cpu1 = rss_mb(pid), cpu_s(pid)
        load1 = os.getloadavg()
        await browser.close()
        await asyncio.sleep(a.settle)  # the server drops closed sessions
        w.cancel()
        closed = rss_mb(pid)
    return {"browsers": a.browsers, "reloads_each": a.reloads, "stagger_s": a.stagger, "loads": len(times),
            "errors": errors, "wall_s": round(wall, 1),
            "heading_s": {"p50": round(statistics.median(times), 2), "p95": round(pct(times, 0.95), 2),
                          "max": round(max(times), 2)} if times else {},
            "server_rss_mb": {"before": round(before, 1), "peak": round(peak[0], 1), "after": round(after, 1),
                              "after_closing": round(closed, 1)},
            "server_cpu_s": round(cpu1 - cpu0, 1),
            "server_cpu_s_per_load": round((cpu1 - cpu0) / max(len(times), 1), 2),
            "load_average_1min": {"start": round(load0[0], 2), "end": round(load1[0], 2)}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--browsers", type=int, default=30)
    ap.add_argument("--reloads", type=int, default=3)
    ap.add_argument("--stagger", type=float, default=0.5, help="seconds between two browsers' first visits")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds after closing before the last reading")
    a = ap.parse_args()
    server = Server(fresh_home(), {"TL_MAX_RUNS": "1"})
    try:
        # one visit first, as the teacher's own check: the server's imports and caches are warm
        out = asyncio.run(run(argparse.Namespace(**{**vars(a), "browsers": 1, "reloads": 0, "stagger": 0,
                                                    "settle": 1}), server.url, server.proc.pid))
        quiet = wait_quiet()
        res = asyncio.run(run(a, server.url, server.proc.pid))
        res["load_average_before_start"] = round(quiet, 2)
        res["warm_up_visit_s"] = out["heading_s"].get("p50")
    finally:
        server.stop()
    res.update(bench="classroom_browsers", date=time.strftime("%Y-%m-%d"), cpus=os.cpu_count(),
               command="python bench/classroom_browsers.py " + " ".join(sys.argv[1:]))
    _table.append("classroom_browsers", {**_table.provenance("classroom_browsers", res["command"].strip()), **res})
    print(json.dumps(res, indent=1))
    return 0 if not res["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
