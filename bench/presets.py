"""Every preset as a user gets it, plus folder runs with a pretrained backbone: estimated against
actual time, peak memory per run, the results, and a screenshot of each finished experiment.

Each preset runs as `python -m tl_core experiment --preset NAME --json` on a fresh TL_HOME, in the
conditions of a first visit: TL_DATA_DIR pointing at an empty folder and TL_OFFLINE=1 (the starter
pack), except where a preset needs the real folders (freeze: the PACS subset, when present) and for
the full-data comparison rows (`--full`). Then one app server opens each experiment in chromium and
saves docs/screenshots/preset_<name>.png.

    python bench/presets.py [--presets quickstart,alignment,...] [--full] [--folder-runs] [--no-shots]

Every step appends a row to bench/results/presets.jsonl (`_table`, with its provenance); a preset or folder run
measured again, or re-estimated (`--reestimate`), is a new row, and the report reads each one's latest (KEY).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
SHARED = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data"))
PACS = SHARED / "PACS_subset50"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
from tl_core.planning.planner import COMMAND_S  # noqa: E402 - the CLI's own start, once per command

# one row a preset and data, or a folder run: measured again, its latest row counts
KEY = ("kind", "preset", "data", "source", "target", "method", "seed")


def latest_rows() -> list[dict]:
    return _table.latest(_table.read("presets"), KEY)


RESULT_KEYS = ("strategy", "method", "target_acc_mean", "target_acc_std", "n_seeds", "gain",
               "gain_ci", "reference", "negative_transfer", "flags")


def tl(args: list[str], env: dict) -> tuple[dict | None, float, str]:
    return _table.run_cli(args, env)


def run_details(home: Path, run_ids: list[str], env: dict) -> list[dict]:
    out = []
    for rid in run_ids:
        r, _, _ = tl(["runs", "show", rid, "--json"], env)
        out.append({k: r.get(k) for k in ("run_id", "status", "source_acc", "target_acc", "wall_s", "estimate_s",
                                          "peak_mb", "trainable_params")})
    return out


def preset_row(name: str, env: dict, data: str) -> dict:
    out, wall, err = tl(["experiment", "--fresh", "--preset", name, "--json", "--quiet"], env)
    if out is None:
        return {"preset": name, "data": data, "status": "failed", "error": err}
    ids = [run["run_id"] for r in out["results"] for run in r["runs"]]
    details = run_details(Path(env["TL_HOME"]), ids, env)
    return {"preset": name, "data": data, "experiment_id": out["experiment_id"], "status": out["status"],
            "process_wall_s": wall, "estimate_s": COMMAND_S + sum(d["estimate_s"] or 0 for d in details),
            "run_wall_s": sum(d["wall_s"] or 0 for d in details), "peak_mb": max(d["peak_mb"] or 0 for d in details),
            "verdict": out["verdict"], "source": out["source"], "target": out["target"],
            "results": [{k: r[k] for k in RESULT_KEYS} for r in out["results"]],
            "runs": details, "home": env["TL_HOME"]}


def folder_rows(env: dict, seeds: list[int]) -> list[dict]:
    """The acceptance's folder run (PACS photo -> sketch, EfficientNet-Lite0, defaults planned to ~2 min)
    for DANN and source only, and a second pair; with more seeds, photo -> sketch again for each."""
    rows = []
    jobs = [(s, t, 0) for s, t in (("photo", "sketch"), ("photo", "art_painting")) if 0 in seeds]
    jobs += [("photo", "sketch", seed) for seed in seeds if seed != 0]
    for s, t, seed in jobs:
        for m in ("source_only", "dann"):
            args = ["train", "--fresh", "--source", f"folder:{PACS / s}", "--target", f"folder:{PACS / t}", "--backbone",
                    "efficientnet_lite0", "--method", m, *(["--seed", str(seed)] if seed else []), "--json",
                    "--quiet"]
            out, wall, err = tl(args, env)
            row = {"kind": "folder", "source": s, "target": t, "method": m, "seed": seed, "process_wall_s": wall,
                   "home": env["TL_HOME"],
                   "command": "python -m tl_core " + " ".join(args[:-1]).replace(str(SHARED), "$TL_DATA_DIR")}
            if out is None:
                rows.append({**row, "status": "failed", "error": err})
            else:
                rows.append({**row, **{k: out.get(k) for k in ("status", "target_acc", "source_acc", "wall_s",
                                                               "peak_mb", "trainable_params")},
                             "estimate_s": COMMAND_S + (out.get("estimate_s") or 0),
                             "steps": out["config"]["train"]["steps_per_epoch"] * out["config"]["train"]["epochs"],
                             "freeze": out["config"]["model"]["freeze"],
                             "input_size": out["config"]["model"]["input_size"]})
            print(f"folder {s}->{t} {m} seed {seed}: {rows[-1].get('target_acc')} in {wall:.0f} s "
                  f"(estimate {rows[-1].get('estimate_s')})", flush=True)
    return rows


def screenshots(rows: list[dict]) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from _server import CHROMIUM, FLAGS, Server
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    for r in rows:
        if r.get("status") != "finished" or r.get("data") != "starter" and r["preset"] != "freeze":
            continue
        srv = Server(Path(r["home"]), env={"TL_DATA_DIR": r.get("data_dir", ""), "TL_OFFLINE": "1"})
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = b.new_page(viewport={"width": 1400, "height": 2300})
                page.goto(f"{srv.url}/?experiment={r['experiment_id']}")
                page.get_by_text("Download results (JSON)").first.wait_for(timeout=120_000)
                page.wait_for_timeout(4000)  # plotly draws after the script run
                page.screenshot(path=str(SHOTS / f"preset_{r['preset']}.png"))
                b.close()
        finally:
            srv.stop()
        print(f"screenshot preset_{r['preset']}.png", flush=True)


def resummarise(rows: list[dict]) -> None:
    """Each recorded experiment's results and verdict as the code now writes them (from its runs)."""
    for r in rows:
        if r.get("kind", "preset") == "preset" and r.get("experiment_id") and Path(r.get("home", "")).exists():
            env = {**os.environ, "TL_HOME": r["home"], "TL_DATA_DIR": r.get("data_dir", ""), "TL_OFFLINE": "1"}
            out, _, _ = tl(["experiment", "--show", r["experiment_id"], "--json"], env)
            if out:
                r["verdict"] = out["verdict"]
                r["results"] = [{k: x[k] for k in RESULT_KEYS} for x in out["results"]]


def reestimate(rows: list[dict]) -> None:
    """Each recorded run's estimate from the planner as it is now (`estimate_now`), from the run's own
    config in its TL_HOME: how the current constants do against the measured times."""
    from tl_core.config import RunConfig
    from tl_core.planning.planner import estimate_seconds

    os.environ["TL_HOME"] = tempfile.mkdtemp(prefix="tl-reestimate-")  # nothing decoded yet, as at launch
    folder_decoded: set[str] = set()  # the folder runs share one home, in the order they ran
    for r in rows:
        home = Path(r.get("home", ""))
        if r.get("kind") == "folder":
            homes = sorted(Path(tempfile.gettempdir()).glob("tl-folder-*"))
            home = Path(r.get("home") or (homes[-1] if homes else ""))
            for d in (home / "runs").glob("*/config.json"):
                c = json.loads(d.read_text())
                if (c["method"]["name"], Path(c["data"]["source"].split(":", 1)[-1]).name,
                        Path(c["data"]["target"].split(":", 1)[-1]).name, c["train"]["seed"]) == (
                        r["method"], r["source"], r["target"], r.get("seed", 0)):
                    os.environ["TL_DATA_DIR"] = str(SHARED)
                    cfg = RunConfig.from_dict(c)
                    r["estimate_now"] = COMMAND_S + estimate_seconds(cfg, folder_decoded)
                    folder_decoded |= {cfg.data.source, cfg.data.target}
            continue
        os.environ["TL_DATA_DIR"] = r.get("data_dir", "")
        decoded: set[str] = set()
        for run in r.get("runs", []):
            cfg = home / "runs" / run["run_id"] / "config.json"
            if cfg.exists():
                c = RunConfig.from_dict(json.loads(cfg.read_text()))
                run["estimate_now"] = estimate_seconds(c, decoded)
                decoded |= {c.data.source, c.data.target}
        r["estimate_now"] = COMMAND_S + sum(x.get("estimate_now", 0) for x in r.get("runs", []))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="quickstart,alignment,freeze,labels,hurts")
    ap.add_argument("--full", action="store_true", help="also run the digit presets on the full datasets")
    ap.add_argument("--folder-runs", action="store_true", help="also the PACS folder runs with planned defaults")
    ap.add_argument("--folder-seeds", default="0", help="the folder runs' seeds: 0 = both pairs, others photo -> "
                                                         "sketch again (e.g. 0,1,2)")
    ap.add_argument("--no-shots", action="store_true")
    ap.add_argument("--reestimate", action="store_true", help="only recompute the estimates of recorded runs")
    ap.add_argument("--shots-only", action="store_true", help="only the screenshots of recorded experiments")
    a = ap.parse_args()
    command = "python bench/presets.py " + " ".join(sys.argv[1:])
    rows = latest_rows()
    if a.reestimate:
        resummarise(rows)
        reestimate(rows)
        for r in rows:
            _table.append("presets", {**r, "batch": "reestimate", "command": command.strip()})
        for r in rows:
            if r.get("process_wall_s") and r.get("estimate_now"):
                print(r.get("preset") or r.get("method"), r.get("data", r.get("source")),
                      f"estimate {r['estimate_now']:.0f} s, process {r['process_wall_s']:.0f} s, "
                      f"ratio {r['estimate_now'] / r['process_wall_s']:.2f}")
        return 0
    if a.shots_only:
        screenshots([r for r in rows if r.get("kind", "preset") == "preset" and r.get("preset") in a.presets.split(",")])
        return 0
    empty = tempfile.mkdtemp(prefix="tl-nodata-")

    def save(row: dict) -> None:
        _table.append("presets", {**_table.provenance("presets", command.strip()), "kind": "preset", "seed": 0,
                                  **row})
        rows[:] = latest_rows()

    for name in filter(None, a.presets.split(",")):  # --presets "" --folder-runs: the folder runs alone
        uses_pacs = name == "freeze" and PACS.exists()
        data_dir = str(SHARED) if uses_pacs else empty
        env = {**os.environ, "TL_HOME": tempfile.mkdtemp(prefix=f"tl-preset-{name}-"), "TL_DATA_DIR": data_dir,
               "TL_OFFLINE": "1"}
        row = {**preset_row(name, env, "PACS folders" if uses_pacs else "starter"), "data_dir": data_dir}
        save(row)
        print(f"{name}: {row['status']} in {row.get('process_wall_s', 0):.0f} s (estimate "
              f"{row.get('estimate_s', 0):.0f} s): {row.get('verdict', row.get('error'))}", flush=True)
        if a.full and name not in ("freeze", "hurts"):  # hurts uses rendered digits only
            env_full = {**env, "TL_HOME": tempfile.mkdtemp(prefix=f"tl-preset-{name}-full-"),
                        "TL_DATA_DIR": str(SHARED)}
            full = {**preset_row(name, env_full, "full"), "data_dir": str(SHARED)}
            save(full)
            print(f"{name} (full data): {full['status']} in {full.get('process_wall_s', 0):.0f} s", flush=True)
    if a.folder_runs and PACS.exists():
        env = {**os.environ, "TL_HOME": tempfile.mkdtemp(prefix="tl-folder-"), "TL_DATA_DIR": str(SHARED)}
        for row in folder_rows(env, [int(x) for x in a.folder_seeds.split(",") if x.strip()]):
            save(row)
    if not a.no_shots:
        screenshots([r for r in rows if r.get("kind", "preset") == "preset" and r.get("preset") in a.presets.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
