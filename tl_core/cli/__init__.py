"""The command line: `python -m tl_core list|train|...`. User mistakes print a message, not a traceback."""
from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

from tl_core.advice import advisor
from tl_core.base import events as ev
from tl_core import experiments, runs
from tl_core.store import seats
from tl_core.policy import uploads
from tl_core.policy.access import CLI_SESSION
from tl_core.app.text import clock
from tl_core.models.backbones import backbone_info, list_backbones
from tl_core.config import RunConfig, cli_fields, finite_number, loads_bounded, parse_seeds, set_fields
from tl_core.data.domains import SHIFTS, get_domain, list_domains
from tl_core.base.errors import ConfigError, TLError
from tl_core.experiments import list_presets
from tl_core.base.limits import SETTINGS, setting
from tl_core.methods import get_method, list_methods
from tl_core.planning.provenance import run_reading
from tl_core.planning.resolve import resolve
from tl_core.runs.worker import worker_main
from tl_core.scores.stats import accuracy_ci
from tl_core.store import TERMINAL
from tl_core.planning.validation import validate


def _domains_info() -> list[dict]:
    return [get_domain(n).info() for n in list_domains()]


def _backbones_info() -> list[dict]:
    out = []
    for n in list_backbones():
        b = backbone_info(n)
        ok, msg = b.weights_status()
        out.append({"name": n, "label": b.label, "description": b.description, "stages": list(b.stages),
                    "feat_dim": b.feat_dim, "default_size": b.default_size, "has_pretrained": b.has_pretrained,
                    "weights_available": ok, "weights_note": msg})
    return out


def _methods_info() -> list[dict]:
    return [get_method(n).describe() for n in list_methods()]


def cmd_list(args) -> int:
    info = {"domains": _domains_info(), "backbones": _backbones_info(), "methods": _methods_info(),
            "presets": list_presets(),
            "settings": [{"name": k, "value": setting(k), "default": v.default, "help": v.help}
                         for k, v in SETTINGS.items()]}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("Domains (--source / --target; a shifted variant is NAME+SHIFT:SEVERITY, e.g. mnist+rotate:3):")
    for d in info["domains"]:
        note = "" if d["available"] else "  [not on this machine]"
        print(f"  {d['name']:<14} {d['label']}: {d['description']}{note}")
    print(f"  shifts: {', '.join(SHIFTS)}; severity 1-5")
    print("Backbones (--backbone; --freeze N freezes the first N stages):")
    for b in info["backbones"]:
        w = "" if not b["has_pretrained"] else ("  [ImageNet weights here]" if b["weights_available"]
                                                 else "  [ImageNet weights not here: --no-pretrained]")
        print(f"  {b['name']:<20} stages: {', '.join(b['stages'])}{w}")
    print("Methods (--method; --param NAME=VALUE):")
    for m in info["methods"]:
        lab = " [needs target labels]" if m["needs_target_labels"] else ""
        params = ", ".join(f"{k}={v['default']}" for k, v in m["params"].items())
        print(f"  {m['name']:<14} {m['label']}{lab}" + (f"  ({params})" if params else ""))
    print("Presets (experiment --preset NAME):")
    for pr in info["presets"]:
        print(f"  {pr['name']:<14} {pr['title']}")
    print("Settings (environment variables of the server's owner; * = set here):")
    for v in info["settings"]:
        mark = "*" if v["value"] != v["default"] else " "
        print(f" {mark}{v['name']:<27} {v['help']} (default: {v['default'] if v['default'] not in ('', None) else 'unset'})")
    return 0


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise ConfigError(f"--param takes NAME=VALUE (got {it!r}).")
        out[k.strip()] = v.strip()
    return out


def config_from_args(args):
    """The RunConfig that CLI flags ask for (on top of --config FILE when given), resolved."""
    return resolved_from_args(args).config


def resolved_from_args(args):
    """Build a config from CLI flags (on top of --config FILE when given) and resolve it as every door
    does (`resolve.resolve`): the method's recipe for what was left out, then, unless --config or
    --budget 0, a plan that fits --budget seconds. Prints what was decided."""
    from pathlib import Path

    file_fields: set[str] = set()
    if args.config:
        try:
            text = Path(args.config).read_text()
            cfg = RunConfig.from_json(text)
        except OSError as e:
            raise ConfigError(f"Cannot read the config file {args.config}: {e.strerror}.") from None
        file_fields = set_fields(json.loads(text))
    else:
        cfg = RunConfig()
    sections: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for section, name, _, _ in cli_fields():
        value = getattr(args, f"{section}.{name}")
        if value is not None:
            sections[section][name] = value
    data, model, train = sections["data"], sections["model"], sections["train"]
    method = cfg.method
    if args.method is not None and args.method != method.name:
        method = type(method)(args.method, {})
    params = {**method.params, **_parse_params(args.param)}
    cfg = cfg.replace(data=data, model=model, train=train, method={"name": method.name, "params": params})
    given = file_fields | {f"data.{k}" for k in data} | {f"model.{k}" for k in model} | {f"train.{k}" for k in train}
    budget = 0 if args.config or args.budget == 0 else args.budget  # a file or --budget 0: no plan
    res = resolve(cfg, given, budget_s=budget)
    if res.notes and not getattr(args, "quiet", False):
        print(f"plan: {'; '.join(res.notes)} (flags you give are kept; --budget 0 plans nothing)", file=sys.stderr)
    return res


class ProgressBar:
    """A one-line progress bar with ETA on stderr, and a line per finished epoch."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def __call__(self, e) -> None:
        if self.quiet:
            return
        if isinstance(e, ev.RunStarted):
            print(f"training on {e.device}: {e.total_steps} steps, {e.trainable_params:,} trainable of "
                  f"{e.total_params:,} parameters", file=sys.stderr)
        elif isinstance(e, ev.Progress) and self.tty:
            frac = e.step / max(e.total_steps, 1)
            bar = "#" * int(30 * frac)
            loss = e.losses.get("total", float("nan"))
            print(f"\r  epoch {e.epoch} [{bar:<30}] {frac:5.1%} loss {loss:.3f} "
                  f"{e.images_per_s:,.0f} img/s ETA {clock(e.eta_s)}   ", end="", file=sys.stderr, flush=True)
        elif isinstance(e, ev.EpochEnd):
            m = e.metrics
            losses = " ".join(f"{k}={v:.3f}" for k, v in m["losses"].items())
            print(("\r" if self.tty else "") + f"epoch {e.epoch}: source {m['source_acc']:.3f} target "
                  f"{m['target_acc']:.3f} A-dist {m['a_distance']:.2f} | {losses} | {clock(m['wall_s'])}"
                  + " " * 10, file=sys.stderr, flush=True)
        elif isinstance(e, ev.RunFailed):
            print(f"\nrun failed: {e.reason}", file=sys.stderr)


def run_summary(run_id: str) -> dict[str, Any]:
    """What `train --json` and `runs show --json` print for a run."""
    r = runs.get_run(run_id)
    history, _ = runs.read_metrics(run_id)
    keep = ("run_id", "status", "reason", "epoch", "epochs", "source_acc", "target_acc", "best_epoch",
            "wall_s", "device", "trainable_params", "total_params", "name", "created",
            "queue_position", "progress", "estimate_s", "peak_mb", "experiment_id", "executor", "node",
            "reused_from", "reused_words", "run_key", "reuse_note")
    out = {k: r.get(k) for k in keep}
    out["run_id"] = run_id
    out["best_target_acc"] = r.get("target_acc")  # = target_acc (the selected epoch's): kept for older readers
    out.update(run_reading(r))
    out["config"] = r["config"]
    out["run_dir"] = str(runs.store().run_dir(run_id))
    out["history"] = [{k: v for k, v in h.items() if k not in ("target_confusion", "target_correct")}
                      for h in history]
    return out


def follow(run_id: str, bar: "ProgressBar") -> dict[str, Any]:
    """Poll the store and print progress until the run ends; Ctrl-C cancels it."""
    cursor, last_step, started = 0, -1, False
    try:
        while True:
            runs.schedule()  # a terminal following its run keeps the queue moving when no app is running
            r = runs.get_run(run_id)
            if not started and r["status"] == "running" and r["device"]:
                started = True
                bar(ev.RunStarted(device=r["device"], total_steps=r["epochs"] * r["config"]["train"]["steps_per_epoch"],
                                  trainable_params=r["trainable_params"] or 0, total_params=r["total_params"] or 0))
            p = r["progress"]
            if p and p["step"] != last_step:
                last_step = p["step"]
                bar(ev.Progress(epoch=p["epoch"], step=p["step"], total_steps=p["total_steps"],
                                images_per_s=p["images_per_s"], eta_s=p["eta_s"], losses=p["losses"]))
            rows, cursor = runs.read_metrics(run_id, cursor)
            for m in rows:
                bar(ev.EpochEnd(epoch=m["epoch"], metrics=m))
            if r["status"] in TERMINAL:
                if r["status"] != "finished":
                    bar(ev.RunFailed(reason=r["reason"] or r["status"]))
                return r
            time.sleep(0.25)
    except KeyboardInterrupt:
        print(f"\ncancelling run {run_id} ...", file=sys.stderr)
        return runs.cancel(run_id, wait_s=runs.CANCEL_GRACE_S + 2)


def _report(run_id: str, as_json: bool) -> int:
    out = run_summary(run_id)
    if as_json:
        print(json.dumps(out))
    elif out["status"] == "finished":
        print(f"run {run_id} finished: source accuracy {out['source_acc']:.3f}, target accuracy "
              f"{out['target_acc']:.3f} in {out['wall_s']:.0f} s" + (f" ({out['reused_words']})"
                                                                     if out["reused_words"] else ""))
        if out.get("target_acc_estimate") is not None:
            ci = out.get("target_acc_estimate_ci") or [None, None]
            print(f"  estimated without target labels (ATC): {out['target_acc_estimate']:.3f}"
                  + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else ""))
    else:
        print(f"run {run_id} {out['status']}: {out['reason']}")
    return 0 if out["status"] == "finished" else 1


def starter_notes(cfg) -> list[str]:
    """Which of a run's domains come from the offline starter pack (a subset of the real data)."""
    out = []
    for role, name in (("source", cfg.data.source), ("target", cfg.data.target)):
        info = get_domain(name).info()
        if info.get("starter_pack"):
            out.append(f"the {role} {name} is {info['label']}: {info['description'].split(' (put ')[0]}.")
    return out


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
        return _detached(args)
    if not args.quiet:
        print(f"run {run_id} (follow it in the app, or: python -m tl_core runs show {run_id})", file=sys.stderr)
    follow(run_id, ProgressBar(quiet=args.quiet))
    return _report(run_id, args.json)


def _detached(args) -> int:
    """After queueing with --detach: say who will start what is still queued (a worker never starts the
    next run; only a live server, or a command following its work, does)."""
    if not getattr(args, "quiet", False) and not runs.server_running():
        print("note: no TransferLab server runs on this store, so only what had a free slot started; the "
              "rest stays queued until the app runs (streamlit run app.py) or a command waits on its own "
              "work (train, experiment or runs resume without --detach).", file=sys.stderr)
    return 0


def seed_stats(values: list[float]) -> dict[str, float | int]:
    """Mean and sample standard deviation (0 for a single value) of per-seed results."""
    import statistics

    return {"n": len(values), "mean": statistics.mean(values) if values else float("nan"),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _train_seeds(cfg, args, sources: dict[str, str] | None = None) -> int:
    """One run per seed (queued together, run as the limit allows), then mean ± std."""
    ids = [runs.submit(c, name=args.name or "", sources=sources, fresh=args.fresh) for c in cfg.per_seed()]
    if args.detach:
        print(json.dumps({"run_ids": ids, "status": "queued"}) if args.json else " ".join(ids))
        return _detached(args)
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
            return _detached(args)
        follow(args.id, ProgressBar(quiet=args.quiet or args.json))
        return _report(args.id, args.json)
    if args.action == "rm":
        runs.delete(args.id)
        print(json.dumps({"run_id": args.id, "deleted": True}) if args.json else f"deleted run {args.id}")
        return 0
    raise ConfigError(f"unknown action {args.action}")


def cmd_ingest(args) -> int:
    """Register a zip of class folders, or a folder, as a domain (the app's ingest path). Datasets
    ingested here are the teacher's: every app session can train on them."""
    from pathlib import Path

    src = Path(args.path).expanduser()
    try:
        if src.is_file():
            res = uploads.ingest_zip(src, args.name or src.stem, CLI_SESSION)
        elif src.is_dir():
            res = {"skipped": [], **uploads.add_folder(str(src), CLI_SESSION)}
        else:
            raise ConfigError(f"{src} is neither a zip file nor a folder.")
        dom = get_domain(res["domain"])
        d = dom.load()
    except TLError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever else goes wrong, the user gets a sentence, not a traceback
        raise ConfigError(f"{src.name} could not be ingested ({type(e).__name__}: {e}). Nothing was kept.") from None
    out = {"domain": res["domain"], "path": str(dom.root), "classes": d.classes,
           "train_counts": d.class_counts("train"), "test_counts": d.class_counts("test"),
           "ignored": res["skipped"], "unreadable": [{"file": f, "why": w} for f, w in getattr(dom, "skipped", [])],
           "warnings": res.get("warnings", [])}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"accepted {sum(out['train_counts'].values()) + sum(out['test_counts'].values())} images in "
              f"{len(d.classes)} classes ({', '.join(d.classes)}) as domain {res['domain']}")
        for f in out["ignored"]:
            print(f"  ignored (not an image, or a system file): {f}")
        for u in out["unreadable"]:
            print(f"  skipped (unreadable): {u['file']}: {u['why']}")
        for w in out["warnings"]:
            print(f"  warning: {w}")
        print(f"use it with: --source '{res['domain']}' or --target '{res['domain']}'")
    return 0


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
        return _detached(args)
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
        for r in experiments.get(exp_id)["runs"]:
            if r["status"] not in TERMINAL:
                runs.cancel(r["id"])
        e = experiments.get(exp_id)
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    out = experiments.cli_result(e, wall_s=time.perf_counter() - t0)
    print(json.dumps(out)) if args.json else _print_experiment(out)
    return 0 if out["status"] == "finished" else 1


def cmd_worker(args) -> int:
    return worker_main(args.run_id)


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return parse_seeds(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per config field that offers one (config.flag): names, types, choices and help come
    from the dataclasses; a flag left out stays None, so the planner knows what was given."""
    for section, name, flag, meta in cli_fields():
        kw = {"dest": f"{section}.{name}", "default": None, "help": meta["help"]}
        kind = meta["kind"]
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind is tuple:
            p.add_argument(flag, type=_seed_list, metavar="S,S,...", **kw)
        else:
            metavar = None if meta["choices"] else flag[2:].upper().replace("-", "_")
            p.add_argument(flag, type=kind, choices=meta["choices"], metavar=metavar, **kw)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a run config JSON file (flags override it)")
    p.add_argument("--method", help="the adaptation method (`list` shows them)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a method hyperparameter")
    add_config_flags(p)
    p.add_argument("--budget", type=float, default=120.0,
                   help="seconds the run may take on this machine (default 120): settings you leave out are planned "
                        "to fit it (steps; for a pretrained backbone also frozen stages, input size, batch); 0 = "
                        "plan nothing, use the plain defaults")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--detach", action="store_true", help="queue the run and return at once")
    p.add_argument("--fresh", action="store_true", help="train even when an identical run (same config, data, "
                   "code and machine) already has the numbers: by default it is reused, marked reused_from")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result last on stdout")
    p.add_argument("--quiet", action="store_true")


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
        argv = argv[argv.index("train"):] if "train" in argv else argv
        args = build_parser().parse_args(argv + ["--quiet"])
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


def cmd_advise(args) -> int:
    """Rank (backbone, freeze depth, method) for a pair before training; --launch checks the advice."""
    out = advisor.advise(args.source, args.target, seed=args.seed, probe=not args.no_probe)
    if args.launch:
        spec = advisor.grid(out, seeds=parse_seeds(args.seeds) or (0, 1, 2))
        out["experiment_id"] = experiments.launch(spec, name=spec.title)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.source} -> {args.target}: {out['summary']}")
    if out["warning"]:
        print(f"note: {out['warning']}")
    print("candidate                                  method        predicted target acc (95 %)   gain over source only"
          + ("   probe: composite, ATC (no target labels)" if out.get("probes") else ""))
    for r in out["recommendations"][:8]:
        pred = gain = ""
        if r.get("predicted_acc") is not None:
            lo, hi = r["predicted_acc_ci"]
            glo, ghi = r["predicted_gain_ci"]
            pred = f"{100 * r['predicted_acc']:5.1f} % [{100 * lo:.0f}, {100 * hi:.0f}]"
            gain = f"{100 * r['predicted_gain']:+5.1f} [{100 * glo:+.0f}, {100 * ghi:+.0f}]"
        p = r.get("probe")
        probe = "" if not p else f"   {p['composite']:.2f}, " + ("-" if p["atc"] is None else
                                                              f"{100 * p['atc']:.0f} % [{100 * p['atc_ci'][0]:.0f}, "
                                                              f"{100 * p['atc_ci'][1]:.0f}]")
        print(f"{r['candidate'][:42]:42s} {r['method']:13s} {pred:28s}  {gain:21s}{probe}")
    if out["recommendations"]:
        print("why: " + " ".join(out["recommendations"][0]["reasons"]))
    print("scores (no target label read):")
    for s in out["scores"]:
        print(f"  {s['label']}: k-NN {100 * s['knn']:.0f} %, LogME {s['logme']:.2f}, H-score {s['h_score']:.1f}, "
              f"centroid margin {s['centroid_margin']:.2f}, A-distance {s['a_distance']:.2f}, MMD {s['mmd']:.3f}, "
              f"target entropy {s['target_entropy']:.2f}, balance {s['target_balance']:.2f}")
    tr = out["track_record"]
    if tr:
        print(f"track record (held out, {tr['cells']} measured cells over {tr['pairs']} pairs): median Kendall tau "
              f"{tr['kendall_tau_median']:.2f}, AUROC {tr['auroc_beats_source_only'] or float('nan'):.2f} "
              f"(docs/BENCHMARKS.md)")
    if out.get("probes"):
        print(f"probes: {len(out['probes'])} trained or read back in {out['probe_s']:.0f} s, ranked by the composite of "
              f"label-free validators (ensemble agreement, batch nuclear norm, ClassAMI, source hold-out)")
    if out.get("experiment_id"):
        print(f"checking it: experiment {out['experiment_id']} (python -m tl_core experiment --show {out['experiment_id']})")
    print(f"({out['wall_s']:.0f} s)")
    return 0


def cmd_class(args) -> int:
    """A class on one server: make join links (seats), list them, revoke them."""
    if args.action == "seats":
        base = (args.url or f"http://{socket.gethostname()}:8501").rstrip("/")
        if len(args.what) > 1 or (args.what and not args.what[0].isdigit()):
            raise ConfigError("class seats takes one number: how many join links to make (e.g. class seats 30).")
        made = seats.make(int(args.what[0]) if args.what else 30, label=args.label)
        links = [{"id": m["id"], "label": m["label"], "link": f"{base}/?seat={m['token']}"} for m in made]
        if args.json:
            print(json.dumps(links))
            return 0
        print(f"{len(links)} join links (each opens one seat; the token is shown only now, so keep this list; "
              f"revoke one with: python -m tl_core class revoke ID):", file=sys.stderr)
        for row in links:
            print(f"{row['id']}  {row['label']:<12}  {row['link']}")
        return 0
    if args.action == "list":
        rows = seats.list_seats()
        if args.json:
            print(json.dumps(rows))
            return 0
        if not rows:
            print("no seats yet: python -m tl_core class seats 30 makes 30 join links")
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])) if r.get("created") else "?"
            state = "revoked " + time.strftime("%Y-%m-%d %H:%M", time.localtime(r["revoked"])) if r["revoked"] \
                else "live"
            print(f"{r['id']}  {r['label']:<12}  made {when}  {state}")
        return 0
    if args.action == "revoke":
        if not args.what and not args.all and not args.purge:
            raise ConfigError("class revoke needs seat ids (class list shows them), or --all.")
        n = seats.revoke(None if args.all else args.what, purge=args.purge)
        print(json.dumps({"changed": n}) if args.json else f"{n} seat(s) changed")
        return 0
    raise ConfigError(f"unknown action {args.action}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tl_core", description="TransferLab: guided transfer learning.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="domains, backbones and methods")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=cmd_list)
    pt = sub.add_parser("train", help="train one run and report source and target accuracy")
    add_train_args(pt)
    pt.set_defaults(fn=cmd_train)
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
    pi = sub.add_parser("ingest", help="register a zip of class folders or a folder as a domain")
    pi.add_argument("path")
    pi.add_argument("--name", help="a name for the dataset (a zip's file name by default)")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(fn=cmd_ingest)
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
    pp = sub.add_parser("reproduce", help="re-run a recorded result (a run's --json, or a benchmark row) with its "
                        "exact config and say whether the new value lies within the recorded interval")
    pp.add_argument("file", help="a JSON file: one run's `train --json`, a benchmark row, or a list of rows")
    pp.add_argument("--row", type=int, default=0, help="which row of a list to reproduce (default 0)")
    pp.add_argument("--json", action="store_true")
    pp.add_argument("--quiet", action="store_true")
    pp.set_defaults(fn=cmd_reproduce)
    pa = sub.add_parser("advise", help="before training: rank backbones, freeze depths and methods for a pair, "
                        "with predicted accuracies and their intervals")
    pa.add_argument("--source", required=True)
    pa.add_argument("--target", required=True)
    pa.add_argument("--seed", type=int, default=0, help="which images the scores read")
    pa.add_argument("--launch", action="store_true", help="launch the grid that checks the advice (the "
                    "recommendation, the runner-up and source only, over --seeds)")
    pa.add_argument("--seeds", default="0,1,2")
    pa.add_argument("--no-probe", action="store_true", help="scores and the predictor only: no probe trains")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(fn=cmd_advise)
    pc = sub.add_parser("class", help="a class on one server: make join links (seats), list or revoke them")
    pc.add_argument("action", choices=["seats", "list", "revoke"])
    pc.add_argument("what", nargs="*", help="seats: how many join links to make (default 30); revoke: the seat ids")
    pc.add_argument("--url", help="seats: the address students open (default http://THIS-HOST:8501)")
    pc.add_argument("--label", default="seat", help="seats: how the seats are named (seat 1, seat 2, ...)")
    pc.add_argument("--all", action="store_true", help="revoke: every seat")
    pc.add_argument("--purge", action="store_true", help="revoke: also forget revoked seats")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(fn=cmd_class)
    paw = sub.add_parser("advice-worker", help=argparse.SUPPRESS)
    paw.add_argument("job_id")
    paw.set_defaults(fn=lambda args: advisor.job_main(args.job_id))
    pw = sub.add_parser("worker", help=argparse.SUPPRESS)
    pw.add_argument("run_id")
    pw.set_defaults(fn=cmd_worker)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
