"""Step 5, compare: rows with gains, seed groups, checkpoint export."""
from __future__ import annotations

import io
import time
import zipfile
from typing import Any


from tl_core import runs
from tl_core.policy.access import Session
from tl_core.config import RunConfig
from tl_core.scores.stats import accuracy_ci, mean_std, normal_gain
from tl_core.app.run_views import visible_run
from tl_core.app.text import domain_label, short_run_label

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["compare_rows", "checkpoint_bytes", "seed_groups"]


def compare_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs as table rows, each with its gain over the source-only run on the same source, target and
    backbone (the newest finished one) and that gain's 95 % interval from both runs' evaluation sets;
    the one rule of the verdicts: negative transfer only when the whole interval is below zero."""
    baselines: dict[tuple, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["created"]):
        if r["method"] == "source_only" and r["status"] == "finished" and r["target_acc"] is not None:
            baselines[(r["source"], r["target"], r["backbone"])] = r
    out = []
    for r in rows:
        base = baselines.get((r["source"], r["target"], r["backbone"]))
        gain, ci = None, None
        if base is not None and r["target_acc"] is not None and r["method"] != "source_only":
            gain, lo, hi = normal_gain(r["target_acc"], 0.0, 1, base["target_acc"], 0.0, 1, r.get("target_n"),
                                       base.get("target_n"))
            ci = (lo, hi) if r.get("target_n") and base.get("target_n") else None
        verdict = ("" if gain is None else "cannot tell (one run each, no interval)" if ci is None
                   else "negative transfer: worse than source only" if ci[1] < 0
                   else "gain over source only" if ci[0] > 0 else "cannot tell: within the noise")
        out.append({"id": r["id"], "run": short_run_label(r), "status": r["status"], "method": r["method"],
                    "source": domain_label(r["source"]), "target": domain_label(r["target"]), "backbone": r["backbone"],
                    "freeze": r["config"]["model"]["freeze"], "labels": r["target_labels"], "seed": r["seed"],
                    "epochs": f"{r['epoch']}/{r['epochs']}", "source_acc": r["source_acc"],
                    "target_acc": r["target_acc"], "target_acc_ci": accuracy_ci(r["target_acc"], r.get("target_n")),
                    "gain": gain, "gain_ci": list(ci) if ci else None, "verdict": verdict,
                    "best_epoch": r["best_epoch"],
                    "wall_s": r["wall_s"], "trainable_params": r["trainable_params"], "device": r["device"],
                    "executor": r.get("executor") or "local", "node": r.get("node") or "",
                    "shared": "yours, shared" if r.get("mine") and r.get("published") else
                              "yours" if r.get("mine") else "shared with you",
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))})
    seen: dict[str, int] = {}
    for row in out:  # a label names one run: twins (same name, seed and minute) are numbered
        seen[row["run"]] = seen.get(row["run"], 0) + 1
        if seen[row["run"]] > 1:
            row["run"] = f"{row['run']} ({seen[row['run']]})"
        row["choice"] = f"{row['run']} · {row['source']} → {row['target']}"  # how a run picker offers it
    return out


def checkpoint_bytes(session: Session, run_id: str) -> tuple[bytes, str] | None:
    """A zip of the run's best checkpoint (safetensors + JSON) and config, for download."""
    visible_run(session, run_id)
    folder = runs.checkpoint_path(run_id, "best")
    if folder is None:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in ("model.safetensors", "model.json"):
            z.write(folder / f, f)
        cfg = runs.store().run_dir(run_id) / "config.json"
        if cfg.exists():
            z.write(cfg, "config.json")
    return buf.getvalue(), f"transferlab-{run_id}.zip"


def seed_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs whose configs differ only in the seed, as mean ± std of their accuracies
    (groups of two or more)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] != "finished" or r.get("target_acc") is None:
            continue
        c = RunConfig.from_dict(r["config"]).replace(train={"seed": 0, "seeds": ()})
        groups.setdefault(c.config_id(), []).append(r)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        acc = [m["target_acc"] for m in members]
        src = [m["source_acc"] for m in members]
        first = members[0]
        out.append({"source": domain_label(first["source"]), "target": domain_label(first["target"]),
                    "backbone": first["backbone"],
                    "method": first["method"], "seeds": sorted(m["seed"] for m in members), "n": len(members),
                    **dict(zip(("target_acc_mean", "target_acc_std"), mean_std(acc))),
                    **dict(zip(("source_acc_mean", "source_acc_std"), mean_std(src))),
                    "runs": [m["id"] for m in members]})
    return sorted(out, key=lambda g: (g["source"], g["target"], g["backbone"], g["method"]))
