"""Names and text as people read them: domain and run labels, markdown escaping."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tl_core.data.domains.names import parse, shifted
from tl_core.base.errors import ConfigError


def domain_label(name: str) -> str:
    """A domain as people read it: `upload:<owner>/photos` -> `photos (upload)`, a folder by its name."""
    try:
        n = parse(name)
    except ConfigError:
        return str(name)[:80]
    base = {"upload": f"{n.dataset} (upload)", "folder": f"{Path(n.path).name} (folder)"}.get(n.kind, n.base)
    return shifted(base, n.shifts)


def clock(seconds: float) -> str:
    """A duration as m:ss (an ETA, a run's time)."""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def run_label(r: dict[str, Any]) -> str:
    return f"{r['id']} · {r['method']} · {domain_label(r['source'])}→{domain_label(r['target'])} · {r['status']}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: object) -> str:
    """A user's name escaped for markdown: shown as written, never as formatting, links or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))
