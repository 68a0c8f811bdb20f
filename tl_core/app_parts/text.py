"""Names and text as people read them: domain and run labels, markdown escaping."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any




def domain_label(name: str) -> str:
    """A domain as people read it: `upload:<owner>/photos` -> `photos (upload)`, a folder by its name."""
    base, plus, rest = name.partition("+")
    if base.startswith("upload:"):
        base = base.rsplit("/", 1)[-1] + " (upload)"
    elif base.startswith("folder:"):
        base = Path(base[len("folder:"):]).name + " (folder)"
    return base + (plus + rest if plus else "")


def run_label(r: dict[str, Any]) -> str:
    return f"{r['id']} · {r['method']} · {domain_label(r['source'])}→{domain_label(r['target'])} · {r['status']}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """A user's name escaped for markdown: shown as written, never as formatting, links or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))
