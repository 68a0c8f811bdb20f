"""A class launching the first-visit experiment at once, on this machine, for real (issues 18 and 30).

N seated sessions (default 30; seats made as `python -m tl_core class seats N` makes them) each launch
the experiment the app opens on (USPS -> MNIST, source only vs DANN, 2 seeds: 4 runs) at the same
moment through the app's own call, with the default quotas and the default placement (on 2 cores: one
run at a time on both cores; `TL_MAX_RUNS=2 python bench/classroom.py ...` for two at once). Identical
work is trained once, so the 30 sessions share one training; for comparison, a single session's experiment is measured first, in the same run, on a
store of its own. With `--distinct`, each session launches its own seed pair instead (nothing to
reuse: 4 x N runs, about 40 minutes for 30 here). Records per session when it was accepted, when its
first run finished and when its whole experiment did.

    python bench/classroom.py [--sessions 30] [--distinct]   # a row in bench/results/classroom.jsonl
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
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
sys.path.insert(0, str(ROOT))
ENDED = ("finished", "failed", "cancelled", "interrupted")


def fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="tl-classroom-"))
    os.environ["TL_HOME"] = str(home)  # TL_MAX_RUNS as given (unset: the server's default)
    return home


def class_of(n: int, distinct: bool) -> dict:
    """Launch the first-visit experiment for `n` seated sessions at once; follow until all have a verdict."""
    from tl_core.app import api
    from tl_core import experiments, runs
    from tl_core.store import seats
    from tl_core.policy.access import session_from_seat

    students = [session_from_seat(s["token"]) for s in seats.make(n)]
    t0 = time.time()
    launched: dict[str, str] = {}
    refused: list[str] = []

    def launch(i: int, s) -> None:
        query = {"preset": "quickstart", "seeds": f"{2 * i},{2 * i + 1}"} if distinct else {}
        spec, _ = api.experiment_from_query(query, s)
        try:
            launched[s.owner] = api.launch_experiment(spec, s)
        except Exception as e:  # noqa: BLE001 - recorded: the point is to see whether anyone is refused
            refused.append(str(e))

    threads = [threading.Thread(target=launch, args=(i, s)) for i, s in enumerate(students)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_s = time.time() - t0
    print(f"{len(launched)} of {n} accepted in {accepted_s:.1f} s; refused: {len(refused)}", flush=True)
    first, done = {}, {}
    while len(done) < len(launched):
        runs.schedule()  # this process plays the server's scheduler thread
        for owner, eid in launched.items():
            if owner in done:
                continue
            e = experiments.get(eid)
            fin = [r for r in e["runs"] if r["status"] in ENDED]
            if fin and owner not in first:
                first[owner] = time.time() - t0
            if len(fin) == len(e["runs"]):
                done[owner] = time.time() - t0
                print(f"  session {len(done):2d}/{len(launched)} done at {done[owner]:.0f} s", flush=True)
        time.sleep(1)
    rows = runs.list_runs(limit=10_000)
    trained = [r for r in rows if not r.get("reused_from")]
    walls = [r["wall_s"] for r in trained if r["wall_s"]]
    order = [r["owner"] for r in sorted(trained, key=lambda r: r["started"] or 0)]
    return {"sessions": n, "accepted": len(launched), "refused": refused, "accepted_s": round(accepted_s, 1),
            "runs": len(rows), "runs_trained": len(trained), "runs_reused": len(rows) - len(trained),
            "run_wall_s_median": round(statistics.median(walls), 1) if walls else None,
            "first_result_s": sorted(round(v, 1) for v in first.values()),
            "experiment_done_s": sorted(round(v, 1) for v in done.values()),
            # with shared work one session's runs are everyone's: the round-robin order is a --distinct figure
            "every_first_run_before_any_second": len(set(order[:len(launched)])) == len(launched) if distinct else None,
            "total_s": round(max(done.values()), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--distinct", action="store_true", help="each session its own seeds: nothing to reuse")
    args = ap.parse_args()
    for k in ("TL_QUOTA_QUEUED_RUNS", "TL_QUOTA_QUEUED_TOTAL", "TL_QUOTA_QUEUED_SESSIONS"):
        os.environ.pop(k, None)
    fresh_home()
    single = class_of(1, False)
    print(f"one session alone: {single['total_s']:.0f} s", flush=True)
    fresh_home()  # a store of its own: nothing of the single session's experiment to reuse
    out = class_of(args.sessions, args.distinct)
    out.update(single_session_s=single["total_s"], slowest_over_single=round(out["total_s"] / single["total_s"], 2),
               runs_per_minute=round(out["runs"] / (out["total_s"] / 60), 1), machine=f"{os.cpu_count()} cores",
               date=time.strftime("%Y-%m-%d"), max_runs=os.environ.get("TL_MAX_RUNS", "default"),
               command="python bench/classroom.py " + " ".join(sys.argv[1:]))
    print(json.dumps({k: v for k, v in out.items() if k not in ("first_result_s", "experiment_done_s")}, indent=1))
    batch = f"classroom_{args.sessions}{'_distinct' if args.distinct else ''}"
    _table.append("classroom", {**_table.provenance(batch, out["command"].strip()), **out})


if __name__ == "__main__":
    main()
