"""`class`: a class on one server: join links (seats), listed and revoked."""
from __future__ import annotations

import json
import socket
import sys
import time

from tl_core.base.errors import ConfigError
from tl_core.store import seats


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


def add_parser(sub) -> None:
    pc = sub.add_parser("class", help="a class on one server: make join links (seats), list or revoke them")
    pc.add_argument("action", choices=["seats", "list", "revoke"])
    pc.add_argument("what", nargs="*", help="seats: how many join links to make (default 30); revoke: the seat ids")
    pc.add_argument("--url", help="seats: the address students open (default http://THIS-HOST:8501)")
    pc.add_argument("--label", default="seat", help="seats: how the seats are named (seat 1, seat 2, ...)")
    pc.add_argument("--all", action="store_true", help="revoke: every seat")
    pc.add_argument("--purge", action="store_true", help="revoke: also forget revoked seats")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(fn=cmd_class)
