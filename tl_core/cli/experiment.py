"""`experiment`: a comparison, strategies x seeds on one pair with the source-only baseline, followed to
its verdict."""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from tl_core import experiments
from tl_core.app.text import clock
from tl_core.base.errors import ConfigError
from tl_core.cli.common import detached, starter_notes
from tl_core.config import parse_seeds


def _parse_seeds(text: str | None) -> tuple[int, ...] | None:
    return parse_seeds(text, "--seeds") or None if text else None


def experiment_spec_from_args(args):
    """The experiment a command line asks for: a preset, or a custom grid of methods on one pair."""
    seeds = _parse_seeds(args.seeds)
    if args.preset:
        if args.methods or args.source or args.target:
            raise ConfigError("Give either --preset NAME or --source, --target and --methods, not both.")
        return experiments.get_preset(args.preset).spec(seeds)
    if not (args.source and args.target and args.methods):
        raise ConfigError("An experiment needs --preset NAME (python -m tl_core list shows them) or --source S "
                          "--target T --methods a,b,c.")
    base: dict[str, dict] = {"model": {}, "train": {}}
    if args.backbone:
        base["model"]["backbone"] = args.backbone
    for flag, key in (("epochs", "epochs"), ("steps", "steps_per_epoch")):
        if getattr(args, flag) is not None:
            base["train"][key] = getattr(args, flag)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return experiments.from_methods(args.source, args.target, methods, seeds or (0,), base,
                                    target_only=args.target_only, budget_s=float(args.budget or 0))


def _print_experiment(out: dict[str, Any]) -> None:
    print(f"experiment {out['experiment_id']} ({out['name']}): {out['status']} in {clock(out['wall_s'] or 0)}")
    for r in out["results"]:
        if r["target_acc_mean"] is None:
            print(f"  {r['strategy']:<28} no finished run")
            continue
        gain = "baseline" if r["role"] == "baseline" else f"gain {100 * r['gain']:+.1f}"
        ref = f"  published {100 * r['reference']:.1f}%" if r["reference"] is not None else ""
        print(f"  {r['strategy']:<28} {100 * r['target_acc_mean']:5.1f} ± {100 * r['target_acc_std']:.1f} % "
              f"(n={r['n_seeds']})  {gain}{ref}")
        for f in r["flags"]:
            print(f"      ! {f}")
    print(out["verdict"].replace("**", ""))


def cmd_experiment(args) -> int:
    if args.show:
        e = experiments.get(args.show)
        out = experiments.cli_result(e)
        print(json.dumps(out)) if args.json else _print_experiment(out)
        return 0
    spec = experiment_spec_from_args(args)
    members = spec.configs()  # validates every run before anything is queued
    if not args.quiet:
        for note in starter_notes(members[0][2]):
            print(f"note: {note}", file=sys.stderr)
    t0 = time.perf_counter()
    exp_id = experiments.launch(spec, name=args.name or "", fresh=args.fresh)
    if args.detach:
        print(json.dumps({"experiment_id": exp_id, "status": "queued"}) if args.json else exp_id)
        return detached(args)
    if not args.quiet:
        print(f"experiment {exp_id}: {len(spec.strategies)} strategies × {len(spec.seeds)} seed(s) = "
              f"{len(members)} runs (follow it in the app, or: python -m tl_core experiment --show {exp_id})",
              file=sys.stderr)
    last: dict[str, Any] = {"line": "", "done": -1}

    def tick(e) -> None:
        if args.quiet:
            return
        p = experiments.progress(e)
        line = (f"{p['runs_done']}/{p['runs']} runs, {100 * p['fraction']:.0f}% of the grid, ETA "
                f"{clock(p['eta_s'])}")
        if sys.stderr.isatty() and line != last["line"]:
            print("\r" + line + "   ", end="", file=sys.stderr, flush=True)
        elif not sys.stderr.isatty() and p["runs_ended"] != last["done"]:
            print(line, file=sys.stderr, flush=True)  # a log gets a line per ended run
        last.update(line=line, done=p["runs_ended"])

    try:
        e = experiments.wait(exp_id, on_tick=tick)
    except KeyboardInterrupt:
        print(f"\ncancelling experiment {exp_id} ...", file=sys.stderr)
        experiments.cancel(experiments.get(exp_id))
        e = experiments.get(exp_id)
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    out = experiments.cli_result(e, wall_s=time.perf_counter() - t0)
    print(json.dumps(out)) if args.json else _print_experiment(out)
    return 0 if out["status"] == "finished" else 1


def add_parser(sub) -> None:
    pe = sub.add_parser("experiment", help="a comparison: strategies x seeds on one pair, with the source-only "
                        "baseline, summarised with gains and a verdict")
    pe.add_argument("--preset", help="a ready experiment: quickstart, alignment, freeze, labels, hurts")
    pe.add_argument("--source")
    pe.add_argument("--target")
    pe.add_argument("--methods", help="methods to compare, e.g. dann,cdan,mmd (source_only is always added)")
    pe.add_argument("--target-only", action="store_true", help="add the target-only upper bound (all target labels)")
    pe.add_argument("--backbone")
    pe.add_argument("--epochs", type=int)
    pe.add_argument("--steps", type=int, help="steps per epoch")
    pe.add_argument("--seeds", help="seeds, e.g. 0,1,2: every strategy runs once per seed")
    pe.add_argument("--budget", type=float, default=0, help="seconds per run: plan what is left out as `train "
                    "--budget` does (default 0: the plain defaults)")
    pe.add_argument("--name", help="a name for the experiment")
    pe.add_argument("--show", metavar="ID", help="print an experiment's results (finished or not)")
    pe.add_argument("--detach", action="store_true", help="queue the runs and return at once")
    pe.add_argument("--fresh", action="store_true", help="train every run even where an identical one already has "
                    "the numbers (by default those are reused)")
    pe.add_argument("--json", action="store_true", help="print one JSON object with the results last on stdout")
    pe.add_argument("--quiet", action="store_true")
    pe.set_defaults(fn=cmd_experiment)
