"""Shared by the app benchmarks: a real `streamlit run app.py` on a private TL_HOME, and chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def fresh_home() -> Path:
    """A new TL_HOME that shares the decoded-domain cache of the default one (decoding is not measured)."""
    home = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    shared = Path(os.environ.get("TL_HOME") or Path.home() / ".transferlab") / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared)
    return home


class Server:
    def __init__(self, home: Path, env: dict | None = None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {**os.environ, "TL_HOME": str(home), **(env or {})}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
                                      str(self.port), "--server.address", "127.0.0.1"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=1).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("streamlit did not start")

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
