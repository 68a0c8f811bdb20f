"""The server and its sessions: start-up, identity, store health, the machine and the queue."""
from __future__ import annotations

import time
from typing import Any


from tl_core.policy import access
from tl_core import runs
from tl_core.policy.access import Session
from tl_core.config import RunConfig
from tl_core.base.errors import StoreBusy
from tl_core.base.machine import cpu_count
from tl_core.base.paths import tl_home
from tl_core.runs.executors import current, executor_name, ray_executor

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["APP_DEFAULT", "default_config", "start_server", "open_session", "seat_session", "seat_words",
           "store_busy", "device_summary", "queue_summary", "executor_summary"]


# The guide's default run is one where the method helps and that works offline: USPS -> MNIST with DANN,
# the first-visit experiment's pair and schedule (DANN about 12 points above source only on the starter
# pack, 2 seeds)
APP_DEFAULT = RunConfig().replace(
    data={"source": "usps", "target": "mnist"},
    method={"name": "dann", "params": {}},
    train={"epochs": 4, "steps_per_epoch": 200, "embed_points": 300},
)


def default_config() -> dict[str, Any]:
    return APP_DEFAULT.to_dict()


def start_server(port: object = None) -> tuple[bool, str]:
    """Once per page run: make this process the web server of its TL_HOME (lock, scheduler thread,
    short store timeouts). (False, why) when another server already uses the same TL_HOME."""
    runs.set_interactive(True)
    ok, holder = runs.claim_server({"port": port})
    if not ok:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder["started"])) if holder.get("started") else "?"
        return False, (f"Another TransferLab server (process {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                       f"port {holder.get('port', '?')}, started {when}) already uses the run store in {tl_home()}. "
                       f"Two servers on one store would each take the other's runs for dead. Stop the other "
                       f"server, or start this one with its own store: TL_HOME=/another/folder streamlit run app.py")
    runs.start_scheduler()
    return True, ""


def open_session(token: str | None, local: bool) -> tuple[Session, str, bool]:
    """The session of a browser from its cookie's token: (session, token, whether the token is new)."""
    return access.session_from_token(token, local=local)


def seat_session(seat_token: object, user: tuple[str, str] | None, local: bool,
                 from_link: bool = False) -> tuple[Session | None, str]:
    """The seated session of a browser, if it has one: a signed-in user (`user` = (subject, name)) comes
    first, then a join link's token (from the link itself or the seat cookie). (session or None, a note
    for the page: why a link did not seat it, "" otherwise)."""
    if user is not None:
        s = access.session_from_user(user[0], user[1], local=local)
        if s is not None:
            return s, ""
    if not seat_token:
        return None, ""
    s = access.session_from_seat(seat_token, local=local)
    if s is not None:
        return s, ""
    return None, ("This join link does not open a seat (it was mistyped, or the teacher withdrew it). You can "
                  "still look around; ask your teacher for a new link to train." if from_link else
                  "The seat this browser had was withdrawn by the teacher: you can look around, and train within "
                  "what browsers without a seat may use. Ask your teacher for a new link.")


def seat_words(session: Session) -> str:
    """What the sidebar says of this browser's seat (to its own holder only)."""
    if session.is_cli:
        return ""
    if session.seated and access.has_seat(session):
        return f"Your seat: {session.who}" if session.seat else f"Signed in: {session.who}"
    if session.seated:
        return "Your seat was withdrawn: you can look around and watch shared runs."
    if session.local:
        return ""
    return ("No seat: you can look around, watch the class's shared runs and try within the small allowance "
            "of browsers without a seat. Open your teacher's join link (or sign in) to train.")


def store_busy() -> str:
    """"" when the run store answers; else the message to show (checked before a page runs, so that a
    store locked by another program gives a notice, not a hang or a traceback)."""
    try:
        runs.store().ping()
        return ""
    except StoreBusy as e:
        return str(e)


def device_summary() -> str:
    """GPU name(s) or the CPU's cores, without importing torch in the web server."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            if out:
                return "GPU: " + ", ".join(out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    return f"CPU: {cpu_count()} cores (no GPU found)"


def executor_summary() -> dict[str, Any]:
    """Where runs train, in words, for the sidebar: this machine, or the Ray cluster (reachable or not)."""
    if executor_name() == "local":
        return {"executor": "local", "ok": True, "text": "Runs train on this machine (local worker processes)"}
    s = ray_executor(runs.store().home).status()
    if not s["ok"]:
        return {"executor": "ray", "ok": False, "text": s["message"]}
    return {"executor": "ray", "ok": True,
            "text": f"Runs train on the Ray cluster at {s['address']}: {s['nodes']} node(s), {s['cpus']:g} CPUs"
                    + (f", {s['gpus']:g} GPUs" if s["gpus"] else "")}


def run_limit() -> int:
    """Runs that train at once: the local limit, or what the Ray cluster holds (0 while unreachable)."""
    return current(runs.store().home).capacity()


def queue_summary(session: Session) -> dict[str, Any]:
    """How busy the server is (counts of everyone's runs) and this session's own runs in the queue."""
    rows = runs.store().waiting_runs()
    mine = [r for r in rows if r["owner"] == session.owner]
    return {"running": sum(r["status"] != "queued" for r in rows), "queued": sum(r["status"] == "queued" for r in rows),
            "mine": mine, "limit": run_limit()}
