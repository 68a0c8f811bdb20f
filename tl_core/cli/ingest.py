"""`ingest`: register a zip of class folders or a folder as a domain (the teacher's: every session may use it)."""
from __future__ import annotations

import json

from tl_core.base.errors import ConfigError, TLError
from tl_core.data.domains import get_domain
from tl_core.policy import uploads
from tl_core.policy.access import CLI_SESSION


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


def add_parser(sub) -> None:
    pi = sub.add_parser("ingest", help="register a zip of class folders or a folder as a domain")
    pi.add_argument("path")
    pi.add_argument("--name", help="a name for the dataset (a zip's file name by default)")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(fn=cmd_ingest)
