"""A class launching the first-visit experiment at once, on this machine, for real (issue 18).

N sessions (default 30) each launch the experiment the app opens on (USPS -> MNIST, source only vs
DANN, 2 seeds: 4 runs) at the same moment through the app's own call, with the default quotas; the
job manager trains the runs one at a time (TL_MAX_RUNS=1, as on a 2-core server). Records per
session when it was accepted, when its first run finished and when its whole experiment did.

    python bench/classroom.py [--sessions 30]     # writes bench/results/classroom_<N>.json

With 30 sessions this trains 120 runs (about 40 minutes here); `--sessions 4` shows the same order
in about 5 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tl-classroom-"))
    os.environ.update(TL_HOME=str(home), TL_MAX_RUNS="1")
    for k in ("TL_QUOTA_QUEUED_RUNS", "TL_QUOTA_QUEUED_TOTAL", "TL_QUOTA_QUEUED_SESSIONS"):
        os.environ.pop(k, None)
    from tl_core import app_api as api
    from tl_core import experiments, runs
    from tl_core.access import session_from_token

    students = [session_from_token((f"student{i}-token-" * 8)[:40])[0] for i in range(args.sessions)]
    t0 = time.time()
    launched: dict[str, str] = {}
    refused: list[str] = []

    def launch(s) -> None:
        spec, _ = api.experiment_from_query({}, s)
        try:
            launched[s.owner] = api.launch_experiment(spec, s)
        except Exception as e:  # noqa: BLE001 - recorded: the point is to see whether anyone is refused
            refused.append(str(e))

    threads = [threading.Thread(target=launch, args=(s,)) for s in students]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_s = time.time() - t0
    print(f"{len(launched)} of {args.sessions} accepted in {accepted_s:.1f} s; refused: {len(refused)}")
    first, done = {}, {}
    while len(done) < len(launched):
        for owner, eid in launched.items():
            if owner in done:
                continue
            e = experiments.get(eid)
            fin = [r for r in e["runs"] if r["status"] in ("finished", "failed", "cancelled", "interrupted")]
            if fin and owner not in first:
                first[owner] = time.time() - t0
            if len(fin) == len(e["runs"]):
                done[owner] = time.time() - t0
                print(f"  session {len(done):2d}/{len(launched)} done at {done[owner]:.0f} s", flush=True)
        runs.schedule()
        time.sleep(2)
    rows = [r for r in runs.list_runs(limit=10_000)]
    walls = [r["wall_s"] for r in rows if r["wall_s"]]
    order = sorted(rows, key=lambda r: r["started"] or 0)
    owners = [r["owner"] for r in order]
    firsts_before_seconds = len(set(owners[:len(launched)])) == len(launched)
    out = {"sessions": args.sessions, "accepted": len(launched), "refused": refused, "accepted_s": round(accepted_s, 1),
           "runs": len(rows), "run_wall_s_median": round(statistics.median(walls), 1),
           "first_result_s": sorted(round(v, 1) for v in first.values()),
           "experiment_done_s": sorted(round(v, 1) for v in done.values()),
           "every_first_run_before_any_second": firsts_before_seconds,
           "total_s": round(max(done.values()), 1), "machine": f"{os.cpu_count()} cores"}
    print(json.dumps({k: v for k, v in out.items() if k not in ("first_result_s", "experiment_done_s")}, indent=1))
    print(f"first result per session: median {statistics.median(first.values()):.0f} s, last {max(first.values()):.0f} s")
    (ROOT / "bench" / "results" / f"classroom_{args.sessions}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
