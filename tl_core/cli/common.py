"""The pieces the subcommands share: config flags read into a resolved run config, following a run with a
progress bar, and what a finished run reports."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from tl_core import runs
from tl_core.app.text import clock
from tl_core.base import events as ev
from tl_core.base.errors import ConfigError
from tl_core.config import cli_fields, parse_seeds, RunConfig, set_fields
from tl_core.data.domains import get_domain
from tl_core.planning.planner import DEFAULT_BUDGET_S
from tl_core.planning.provenance import run_reading
from tl_core.planning.resolve import resolve
from tl_core.scores.stats import mean_std
from tl_core.store import TERMINAL


def parse_params(items: list[str]) -> dict[str, Any]:
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
    params = {**method.params, **parse_params(args.param)}
    cfg = cfg.replace(data=data, model=model, train=train, method={"name": method.name, "params": params})
    given = file_fields | {f"data.{k}" for k in data} | {f"model.{k}" for k in model} | {f"train.{k}" for k in train}
    budget = 0 if args.config or args.budget == 0 else args.budget  # a file or --budget 0: no plan
    res = resolve(cfg, given, budget_s=budget)
    if res.notes and not getattr(args, "quiet", False):
        print(f"plan: {'; '.join(res.notes)} (flags you give are kept; --budget 0 plans nothing)", file=sys.stderr)
    return res


def seed_list(text: str) -> tuple[int, ...]:
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
            p.add_argument(flag, type=seed_list, metavar="S,S,...", **kw)
        else:
            metavar = None if meta["choices"] else flag[2:].upper().replace("-", "_")
            p.add_argument(flag, type=kind, choices=meta["choices"], metavar=metavar, **kw)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a run config JSON file (flags override it)")
    p.add_argument("--method", help="the adaptation method (`list` shows them)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a method hyperparameter")
    add_config_flags(p)
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                   help="seconds the run may take on this machine (default %(default)g): settings you leave out are planned "
                        "to fit it (steps; for a pretrained backbone also frozen stages, input size, batch); 0 = "
                        "plan nothing, use the plain defaults")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--detach", action="store_true", help="queue the run and return at once")
    p.add_argument("--fresh", action="store_true", help="train even when an identical run (same config, data, "
                   "code and machine) already has the numbers: by default it is reused, marked reused_from")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result last on stdout")
    p.add_argument("--quiet", action="store_true")


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


def report(run_id: str, as_json: bool) -> int:
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


def detached(args) -> int:
    """After queueing with --detach: say who will start what is still queued (a worker never starts the
    next run; only a live server, or a command following its work, does)."""
    if not getattr(args, "quiet", False) and not runs.server_running():
        print("note: no TransferLab server runs on this store, so only what had a free slot started; the "
              "rest stays queued until the app runs (streamlit run app.py) or a command waits on its own "
              "work (train, experiment or runs resume without --detach).", file=sys.stderr)
    return 0


def starter_notes(cfg) -> list[str]:
    """Which of a run's domains come from the offline starter pack (a subset of the real data)."""
    out = []
    for role, name in (("source", cfg.data.source), ("target", cfg.data.target)):
        info = get_domain(name).info()
        if info.get("starter_pack"):
            out.append(f"the {role} {name} is {info['label']}: {info['description'].split(' (put ')[0]}.")
    return out


def seed_stats(values: list[float]) -> dict[str, float | int]:
    """Mean and sample standard deviation (0 for a single value) of per-seed results."""
    mean, std = mean_std(values)
    return {"n": len(values), "mean": float("nan") if mean is None else mean, "std": std or 0.0}
