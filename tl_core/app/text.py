"""Names and text as people read them: domain and run labels, markdown escaping."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tl_core.data.domains import DOMAINS
from tl_core.data.domains.names import parse
from tl_core.base.errors import ConfigError

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["domain_label", "run_label", "escape_markdown", "clock"]


def domain_label(name: str) -> str:
    """A domain as people read it: a built-in one by its catalogue label (`usps` -> `USPS`), an upload as
    `photos (upload)`, a folder by its name, each shift in words (`USPS + rotate 3`)."""
    try:
        n = parse(name)
    except ConfigError:
        return str(name)[:80]
    base = {"upload": f"{n.dataset} (upload)", "folder": f"{Path(n.path).name} (folder)"}.get(n.kind, n.base)
    if n.kind == "builtin" and n.base in DOMAINS:
        base = DOMAINS.get(n.base).label
    return base + "".join(f" + {kind} {severity}" for kind, severity in n.shifts)


def clock(seconds: float) -> str:
    """A duration as m:ss (an ETA, a run's time)."""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def run_label(r: dict[str, Any]) -> str:
    """How a person tells runs apart in a list: its name (else its method), the pair, the seed, its state and
    when it was made. Never the raw id: that stays in the page's address."""
    parts = [r.get("name") or r["method"], f"{domain_label(r['source'])} → {domain_label(r['target'])}"]
    if r.get("seed") is not None:
        parts.append(f"seed {r['seed']}")
    parts.append(r["status"])
    if r.get("created"):
        parts.append(time.strftime("%d %b %H:%M", time.localtime(r["created"])))
    return " · ".join(parts)


def short_run_label(r: dict[str, Any]) -> str:
    """A run in a table row or a chart legend, beside its method, pair and seed columns: its name (else
    its method), its seed and when it was made."""
    when = time.strftime("%H:%M", time.localtime(r["created"])) if r.get("created") else ""
    return " · ".join(p for p in (r.get("name") or r["method"], f"seed {r.get('seed')}", when) if p)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: object) -> str:
    """A user's name escaped for markdown: shown as written, never as formatting, links or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))
