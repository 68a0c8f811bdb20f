"""The command line: `python -m tl_core list|train|...`. User mistakes print a message, not a traceback."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .errors import ConfigError, TLError


def _domains_info() -> list[dict]:
    from .domains import get_domain, list_domains

    return [get_domain(n).info() for n in list_domains()]


def _backbones_info() -> list[dict]:
    from .backbones import backbone_info, list_backbones

    out = []
    for n in list_backbones():
        b = backbone_info(n)
        ok, msg = b.weights_status()
        out.append({"name": n, "label": b.label, "description": b.description, "stages": list(b.stages),
                    "feat_dim": b.feat_dim, "default_size": b.default_size, "has_pretrained": b.has_pretrained,
                    "weights_available": ok, "weights_note": msg})
    return out


def _methods_info() -> list[dict]:
    from .methods import get_method, list_methods

    return [get_method(n).describe() for n in list_methods()]


def cmd_list(args) -> int:
    info = {"domains": _domains_info(), "backbones": _backbones_info(), "methods": _methods_info()}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("Domains (--source / --target; a shifted variant is NAME+SHIFT:SEVERITY, e.g. mnist+rotate:3):")
    for d in info["domains"]:
        note = "" if d["available"] else "  [not on this machine]"
        print(f"  {d['name']:<14} {d['label']}: {d['description']}{note}")
    from .domains import SHIFTS

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
    """Build a RunConfig from CLI flags (on top of --config FILE when given)."""
    from pathlib import Path

    from .config import RunConfig

    if args.config:
        try:
            cfg = RunConfig.from_json(Path(args.config).read_text())
        except OSError as e:
            raise ConfigError(f"Cannot read the config file {args.config}: {e.strerror}.") from None
    else:
        cfg = RunConfig()
    data = {k: v for k, v in {"source": args.source, "target": args.target, "target_labels": args.target_labels,
                              "max_per_domain": args.max_per_domain}.items() if v is not None}
    model = {k: v for k, v in {"backbone": args.backbone, "freeze": args.freeze, "input_size": args.input_size,
                               "pretrained": False if args.no_pretrained else None}.items() if v is not None}
    train = {k: v for k, v in {"epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size,
                               "lr": args.lr, "seed": args.seed, "device": args.device, "optimizer": args.optimizer,
                               "embedding": args.embedding}.items() if v is not None}
    if args.no_augment:
        train["augment"] = False
    method = cfg.method
    if args.method is not None and args.method != method.name:
        method = type(method)(args.method, {})
    params = {**method.params, **_parse_params(args.param)}
    return cfg.replace(data=data, model=model, train=train, method={"name": method.name, "params": params})


class ProgressBar:
    """A one-line progress bar with ETA on stderr, and a line per finished epoch."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, e) -> None:
        if self.quiet:
            return
        from . import events as ev

        if isinstance(e, ev.RunStarted):
            print(f"training on {e.device}: {e.total_steps} steps, {e.trainable_params:,} trainable of "
                  f"{e.total_params:,} parameters", file=sys.stderr)
        elif isinstance(e, ev.Progress) and self.tty:
            frac = e.step / max(e.total_steps, 1)
            bar = "#" * int(30 * frac)
            loss = e.losses.get("total", float("nan"))
            print(f"\r  epoch {e.epoch} [{bar:<30}] {frac:5.1%} loss {loss:.3f} "
                  f"{e.images_per_s:,.0f} img/s ETA {_fmt(e.eta_s)}   ", end="", file=sys.stderr, flush=True)
        elif isinstance(e, ev.EpochEnd):
            m = e.metrics
            losses = " ".join(f"{k}={v:.3f}" for k, v in m["losses"].items())
            print(("\r" if self.tty else "") + f"epoch {e.epoch}: source {m['source_acc']:.3f} target "
                  f"{m['target_acc']:.3f} A-dist {m['a_distance']:.2f} | {losses} | {_fmt(m['wall_s'])}"
                  + " " * 10, file=sys.stderr, flush=True)
        elif isinstance(e, ev.RunFailed):
            print(f"\nrun failed: {e.reason}", file=sys.stderr)


def _fmt(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def cmd_train(args) -> int:
    from .trainer import train

    cfg = config_from_args(args).validate()
    bar = ProgressBar(quiet=args.quiet)
    res = train(cfg, on_event=bar)
    out = {"run_id": cfg.config_id(), **res.to_dict(), "config": cfg.to_dict()}
    out.pop("history")
    out["history"] = [{k: v for k, v in h.items() if k not in ("target_confusion",)} for h in res.history]
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{res.status}: source accuracy {res.source_acc:.3f}, target accuracy {res.target_acc:.3f} "
              f"in {res.wall_s:.0f} s" if res.target_acc is not None else f"{res.status}: {res.reason}")
    return 0 if res.status == "finished" else 1


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a run config JSON file (flags override it)")
    p.add_argument("--source")
    p.add_argument("--target")
    p.add_argument("--backbone")
    p.add_argument("--method")
    p.add_argument("--freeze", type=int, help="number of leading backbone stages to freeze")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int, help="steps per epoch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["adam", "sgd"])
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument("--target-labels", help="none, K (labelled target images per class) or all")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a method hyperparameter")
    p.add_argument("--max-per-domain", type=int, help="use at most N training images per domain")
    p.add_argument("--input-size", type=int)
    p.add_argument("--no-pretrained", action="store_true", help="start from random weights")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--embedding", choices=["tsne", "pca", "none"])
    p.add_argument("--json", action="store_true", help="print one JSON object with the result last on stdout")
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tl_core", description="TransferLab: guided transfer learning.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="domains, backbones and methods")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=cmd_list)
    pt = sub.add_parser("train", help="train one run and report source and target accuracy")
    add_train_args(pt)
    pt.set_defaults(fn=cmd_train)
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
