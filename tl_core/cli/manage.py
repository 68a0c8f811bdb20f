"""`runs`: list, show, cancel, resume or delete runs."""
from __future__ import annotations

import json

from tl_core import runs
from tl_core.base.errors import ConfigError
from tl_core.cli.common import detached, follow, ProgressBar, report, run_summary


def cmd_runs(args) -> int:
    runs.schedule()  # reap dead workers first, so that what is listed is true
    if args.action == "list":
        rows = runs.list_runs(status=args.status, method=args.method)
        if args.json:
            print(json.dumps([{k: r[k] for k in ("id", "status", "source", "target", "backbone", "method", "seed",
                                                  "epoch", "epochs", "source_acc", "target_acc", "wall_s", "reason",
                                                  "created")} for r in rows]))
            return 0
        if not rows:
            print("no runs yet: python -m tl_core train ... starts one")
        for r in rows:
            acc = f"target {r['target_acc']:.3f}" if r["target_acc"] is not None else ""
            print(f"{r['id']:<12} {r['status']:<11} {r['source']}->{r['target']} {r['backbone']} {r['method']} "
                  f"seed {r['seed']} epoch {r['epoch']}/{r['epochs']} {acc}")
        return 0
    if not args.id:
        raise ConfigError(f"runs {args.action} needs a run id (python -m tl_core runs list shows them).")
    if args.action == "show":
        out = run_summary(args.id)
        if args.json:
            print(json.dumps(out))
        else:
            for k in ("run_id", "status", "reason", "epoch", "epochs", "source_acc", "target_acc", "best_epoch",
                      "wall_s", "device", "run_dir"):
                print(f"{k:>12}: {out[k]}")
        return 0
    if args.action == "cancel":
        r = runs.cancel(args.id, wait_s=runs.CANCEL_GRACE_S + 2)
        print(json.dumps({"run_id": args.id, "status": r["status"]}) if args.json else f"run {args.id}: {r['status']}")
        return 0
    if args.action == "resume":
        runs.resume(args.id, extra_epochs=args.epochs or 0)
        if args.detach:
            print(json.dumps({"run_id": args.id, "status": "queued"}) if args.json else args.id)
            return detached(args)
        follow(args.id, ProgressBar(quiet=args.quiet or args.json))
        return report(args.id, args.json)
    if args.action == "rm":
        runs.delete(args.id)
        print(json.dumps({"run_id": args.id, "deleted": True}) if args.json else f"deleted run {args.id}")
        return 0
    raise ConfigError(f"unknown action {args.action}")


def add_parser(sub) -> None:
    pr = sub.add_parser("runs", help="list, show, cancel, resume or delete runs")
    pr.add_argument("action", choices=["list", "show", "cancel", "resume", "rm"])
    pr.add_argument("id", nargs="?")
    pr.add_argument("--status", help="list: only runs with this status")
    pr.add_argument("--method", help="list: only runs of this method")
    pr.add_argument("--epochs", type=int, help="resume: train this many more epochs (for a finished run)")
    pr.add_argument("--detach", action="store_true", help="resume: queue and return at once")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(fn=cmd_runs)
