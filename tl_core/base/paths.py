"""Where TransferLab keeps its data, caches and runs (all overridable by env vars)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from tl_core.base.limits import megabytes, setting


PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder tl_core is in


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child `python -m tl_core...` (run from PACKAGE_PARENT): the same
    package first on its path, so the child runs this code whatever the caller's working folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return {**env, **extra}


def tl_home() -> Path:
    """Root of caches and runs: `TL_HOME`, default `~/.transferlab`."""
    p = Path(setting("TL_HOME") or Path.home() / ".transferlab").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def data_dir() -> Path:
    """Where the raw datasets live (torchvision layouts): `TL_DATA_DIR`, default `TL_HOME/data`."""
    env = setting("TL_DATA_DIR")
    return Path(env).expanduser().resolve() if env else tl_home() / "data"


def uploads_root() -> Path:
    """Where sessions' uploads live: `TL_HOME/uploads/<owner>/`."""
    return tl_home() / "uploads"


def cache_dir(kind: str) -> Path:
    p = tl_home() / "cache" / kind
    p.mkdir(parents=True, exist_ok=True)
    return p


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, fsync, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer: threads of one server (and processes) may write the same file at once
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def prune_cache(folder: Path, pattern: str, setting_name: str, keep: Path | None = None) -> int:
    """Hold the files of a disk cache (`pattern` in `folder`) under the size setting `setting_name` (MB; 0: no
    cap): the least recently used go first (a read touches its file), never `keep`. Returns bytes freed."""
    cap = megabytes(setting_name)
    if not cap:
        return 0
    files = []
    for p in folder.glob(pattern):
        try:
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
        except OSError:
            continue
    total, freed = sum(f[1] for f in files), 0
    for _, size, p in sorted(files, key=lambda f: f[0]):
        if total <= cap:
            break
        if keep is not None and p == keep:
            continue
        p.unlink(missing_ok=True)
        total -= size
        freed += size
    return freed

