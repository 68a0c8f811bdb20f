"""`train`: one run (or one per seed), followed to its end."""
from __future__ import annotations

import json
import sys

from tl_core import runs
from tl_core.cli.common import (
    add_train_args, detached, follow, ProgressBar, report, resolved_from_args, run_summary, seed_stats, starter_notes
)
from tl_core.planning.validation import validate


def cmd_train(args) -> int:
    res = resolved_from_args(args)
    cfg = validate(res.config)
    if not args.quiet:
        for note in starter_notes(cfg):
            print(f"note: {note}", file=sys.stderr)
    if cfg.train.seeds:
        return _train_seeds(cfg, args, res.sources)
    run_id = runs.submit(cfg, name=args.name or "", sources=res.sources, fresh=args.fresh)
    if args.detach:
        print(json.dumps({"run_id": run_id, "status": "queued"}) if args.json else run_id)
        return detached(args)
    if not args.quiet:
        print(f"run {run_id} (follow it in the app, or: python -m tl_core runs show {run_id})", file=sys.stderr)
    follow(run_id, ProgressBar(quiet=args.quiet))
    return report(run_id, args.json)


def _train_seeds(cfg, args, sources: dict[str, str] | None = None) -> int:
    """One run per seed (queued together, run as the limit allows), then mean ± std."""
    ids = [runs.submit(c, name=args.name or "", sources=sources, fresh=args.fresh) for c in cfg.per_seed()]
    if args.detach:
        print(json.dumps({"run_ids": ids, "status": "queued"}) if args.json else " ".join(ids))
        return detached(args)
    for rid, seed in zip(ids, cfg.train.seeds):
        if not args.quiet:
            print(f"seed {seed}: run {rid}", file=sys.stderr)
        follow(rid, ProgressBar(quiet=args.quiet))
    outs = [run_summary(rid) for rid in ids]
    done = [o for o in outs if o["status"] == "finished"]
    summary = {"run_ids": ids, "seeds": list(cfg.train.seeds), "finished": len(done),
               "target_acc": seed_stats([o["target_acc"] for o in done]),
               "source_acc": seed_stats([o["source_acc"] for o in done]),
               "wall_s": seed_stats([o["wall_s"] for o in done]),
               "runs": [{k: o[k] for k in ("run_id", "status", "reason", "source_acc", "target_acc", "best_epoch",
                                           "wall_s")} for o in outs]}
    if args.json:
        print(json.dumps(summary))
    else:
        for o, seed in zip(outs, cfg.train.seeds):
            acc = f"target {o['target_acc']:.3f}" if o["status"] == "finished" else f"{o['status']}: {o['reason']}"
            print(f"seed {seed} (run {o['run_id']}): {acc}")
        t = summary["target_acc"]
        if done:
            print(f"target accuracy {100 * t['mean']:.1f} ± {100 * t['std']:.1f} % over {t['n']} seeds")
    return 0 if len(done) == len(ids) else 1


def add_parser(sub) -> None:
    pt = sub.add_parser("train", help="train one run and report source and target accuracy")
    add_train_args(pt)
    pt.set_defaults(fn=cmd_train)
