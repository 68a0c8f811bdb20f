"""`list`: the domains, backbones, methods, presets and settings this machine offers."""
from __future__ import annotations

import json

from tl_core.base.limits import setting, SETTINGS
from tl_core.data.domains import get_domain, list_domains, SHIFTS
from tl_core.experiments import list_presets
from tl_core.methods import get_method, list_methods
from tl_core.models.backbones import backbone_info, list_backbones


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


def add_parser(sub) -> None:
    pl = sub.add_parser("list", help="domains, backbones and methods")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=cmd_list)
