"""Shared by the app benchmarks: the app started as the end-to-end tests start it (tests/e2e/live_server.py:
a real `streamlit run app.py` on a private TL_HOME, and chromium), and a fresh TL_HOME that skips decoding."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from live_server import CHROMIUM, FLAGS, Server  # noqa: E402

__all__ = ["CHROMIUM", "FLAGS", "ROOT", "Server", "fresh_home"]


def fresh_home() -> Path:
    """A new TL_HOME that shares the decoded-domain cache of the default one (decoding is not measured)."""
    home = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    shared = Path(os.environ.get("TL_HOME") or Path.home() / ".transferlab") / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared)
    return home
