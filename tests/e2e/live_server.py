"""The one way the end-to-end tests and the app benchmarks start the app: a real `streamlit run app.py` on
a private TL_HOME, and Debian's chromium to drive it (playwright, headless, no sandbox). bench/_server.py
re-exports this module."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
START_S = 60.0  # a hang fails; a slow or busy machine does not


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` with TL_HOME=`home` (and `env` on top of this process's), answering on `url` once
    started. Its output goes to `log` (a file, kept for a failure message) or nowhere. `restart()` starts it
    again on the same port, as a teacher restarting the server would."""

    def __init__(self, home: Path, env: dict | None = None, port: int | None = None, log: Path | None = None):
        self.home, self.port, self.log = Path(home), port or free_port(), log
        self.env = {**os.environ, "TL_HOME": str(home), **(env or {})}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
                                      "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT,
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + START_S
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=1).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError(f"streamlit did not answer /_stcore/health within {START_S:.0f} s"
                           + (f"; its log ends: {self.log_tail()}" if self.log else ""))

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:] if self.log else ""
        except OSError:
            return ""

    def cli(self, *args: str) -> str:
        """`python -m tl_core ARGS` on the same TL_HOME and settings; its standard output."""
        return subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()
