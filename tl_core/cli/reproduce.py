"""`reproduce`: re-run a recorded result with its exact config and say whether the new value lies within
the recorded interval."""
from __future__ import annotations

import argparse
import json
from typing import Any

from tl_core import runs
from tl_core.base.errors import ConfigError
from tl_core.cli.common import add_train_args, follow, ProgressBar, resolved_from_args, run_summary
from tl_core.config import finite_number, loads_bounded, RunConfig
from tl_core.planning.validation import validate
from tl_core.scores.stats import accuracy_ci


def recorded_reading(path: str, row: int = 0) -> dict[str, Any]:
    """(config, recorded value, its interval, what it is) from a run's `train --json` or a benchmark row."""
    from pathlib import Path

    try:
        text = Path(path).read_text()
    except (OSError, ValueError) as e:
        raise ConfigError(f"Cannot read {path} ({type(e).__name__}).") from None
    d = loads_bounded(text, str(path))
    if isinstance(d, list):
        if not 0 <= row < len(d):
            raise ConfigError(f"{path} holds {len(d)} rows; --row must be 0 to {len(d) - 1}.")
        d = d[row]
    if not isinstance(d, dict) or not finite_number(d.get("target_acc")):
        raise ConfigError(f"{path} is not a recorded result: it needs a target_acc (a number) and a config or a "
                          f"command.")
    ci = d.get("target_acc_ci")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(map(finite_number, ci))):
        raise ConfigError(f"{path}: target_acc_ci must be two numbers [low, high] (got {str(ci)[:40]}).")
    if isinstance(d.get("config"), dict):
        cfg = RunConfig.from_dict(d["config"])
    elif isinstance(d.get("command"), str):
        import shlex

        argv = shlex.split(d["command"])
        argv = argv[argv.index("train") + 1:] if "train" in argv else argv
        parser = argparse.ArgumentParser(prog="python -m tl_core train")
        add_train_args(parser)
        args = parser.parse_args(argv + ["--quiet"])
        cfg = resolved_from_args(args).config
    else:
        raise ConfigError(f"{path} names no config (a run's JSON has `config`, a benchmark row `command`).")
    n = d.get("target_n")
    ci = ci or accuracy_ci(d["target_acc"], n if isinstance(n, int) and not isinstance(n, bool) else None)
    return {"config": cfg, "target_acc": float(d["target_acc"]), "interval": ci,
            "provenance": d.get("provenance") if isinstance(d.get("provenance"), dict) else {}}


def cmd_reproduce(args) -> int:
    """Re-run a recorded result with its exact config; exit 0 when the new value is within its interval."""
    rec = recorded_reading(args.file, args.row)
    cfg = validate(rec["config"])
    run_id = runs.submit(cfg, name="reproduce", fresh=True)  # reproducing is training again
    follow(run_id, ProgressBar(quiet=args.quiet))
    out = run_summary(run_id)
    new, ci = out["target_acc"], rec["interval"]
    ok = out["status"] == "finished" and new is not None and ci is not None and ci[0] <= new <= ci[1]
    then = rec["provenance"].get("machine", {})
    now = out["provenance"].get("machine", {})
    verdict = ("no recorded interval to compare with" if ci is None else
               f"reproduced: {new:.4f} lies within the recorded interval {ci[0]:.4f}..{ci[1]:.4f}" if ok else
               f"not reproduced: {new} is outside the recorded interval {ci[0]:.4f}..{ci[1]:.4f}"
               if new is not None else f"the run {out['status']}: {out['reason']}")
    result = {"reproduced": ok, "verdict": verdict, "recorded": rec["target_acc"], "recorded_ci": ci,
              "new": new, "new_ci": out["target_acc_ci"], "run_id": run_id,
              "recorded_machine": then, "machine": now}
    print(json.dumps(result) if args.json else verdict)
    return 0 if ok else 1


def add_parser(sub) -> None:
    pp = sub.add_parser("reproduce", help="re-run a recorded result (a run's --json, or a benchmark row) with its "
                        "exact config and say whether the new value lies within the recorded interval")
    pp.add_argument("file", help="a JSON file: one run's `train --json`, a benchmark row, or a list of rows")
    pp.add_argument("--row", type=int, default=0, help="which row of a list to reproduce (default 0)")
    pp.add_argument("--json", action="store_true")
    pp.add_argument("--quiet", action="store_true")
    pp.set_defaults(fn=cmd_reproduce)
