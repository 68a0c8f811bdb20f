"""Every `TL_*` setting the server's owner can give, in one table: its default, its unit and what it
does. Code reads a setting through `setting()` (or `Limits` for the per-session quotas), so a name
and its default are written once; docs/RELIABILITY.md and README.md describe the same table.

A whole-number setting that is unset, empty or not a number reads as its default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from tl_core.base.errors import QuotaExceeded


@dataclass(frozen=True)
class Setting:
    """One knob: its environment variable, default (as the type it is read as) and meaning."""

    name: str
    default: object
    help: str


def _table(*rows: Setting) -> dict[str, Setting]:
    return {r.name: r for r in rows}


SETTINGS: dict[str, Setting] = _table(
    # where things live
    Setting("TL_HOME", "", "the run store, uploads and caches (default ~/.transferlab)"),
    Setting("TL_DATA_DIR", "", "the datasets in torchvision's layouts (default $TL_HOME/data)"),
    Setting("TL_OFFLINE", False, "never download: use the data on disk or the starter pack"),
    Setting("TL_DOWNLOAD", False, "download missing datasets (when not offline)"),
    Setting("TL_FOLDER_ROOTS", None, "folders on the server a browser session may name, separated by ':' "
                                     "(unset: the home and data folders for a localhost server, none otherwise)"),
    # running
    Setting("TL_MAX_RUNS", 0, "runs that train at once (0: one on a CPU machine, on all its cores; by GPU capacity "
                                 "on GPUs)"),
    Setting("TL_THREADS", 0, "torch threads per run (0: the cores shared out over the runs that train at once)"),
    Setting("TL_WORKER_NICE", 10, "niceness of the training processes, so the web server stays responsive"),
    Setting("TL_WARM", True, "start runs from a warm process that has torch imported and domains decoded"),
    Setting("TL_WARM_IDLE_S", 300.0,
            "seconds the warm process waits for the next run, once none it forked trains, before it exits"),
    Setting("TL_ADVISOR_PROBE_S", 30.0, "seconds the advisor's probes may train in all (0: no probes)"),
    Setting("TL_ADVISOR_PROBES", 2, "adapted candidates the advisor probes (each with its source-only probe)"),
    Setting("TL_STORE_PATIENCE_S", 600.0, "seconds a background writer waits for the run store's lock"),
    Setting("TL_RAY_ADDRESS", "", "a Ray cluster to run on (unset: local processes)"),
    Setting("TL_RAY_CPUS_PER_RUN", 1.0, "CPUs one Ray task declares"),
    Setting("TL_RAY_DATA_DIR", "", "the datasets' folder on the Ray workers (default TL_DATA_DIR)"),
    Setting("TL_RAY_CONNECT_TIMEOUT_S", 30.0, "seconds to wait for the Ray cluster"),
    # memory and disk caches
    Setting("TL_DOMAIN_CACHE_MB", 1024, "decoded domains kept in memory (MB, least recently used first out)"),
    Setting("TL_DOMAIN_DISK_CACHE_MB", 4096, "decoded domains kept on disk (MB; 0: no cap)"),
    Setting("TL_THUMB_DISK_CACHE_MB", 512, "thumbnails of evaluated images kept on disk (MB; 0: no cap)"),
    Setting("TL_MODEL_CACHE_MB", 512, "trained models kept in memory for the Predict page (MB)"),
    Setting("TL_QUOTA_DOMAIN_DECODED_MB", 1024, "decoded pixels of one folder or uploaded dataset (MB; 0: no cap)"),
    # quotas of one browser session and of the server (0 switches one off); see `Limits`
    Setting("TL_QUOTA_UPLOAD_MB", 300, "uploads (zips and model files) kept for one session (MB)"),
    Setting("TL_QUOTA_UPLOAD_TOTAL_MB", 5000, "uploads of all sessions together (MB)"),
    Setting("TL_QUOTA_DOMAIN_IMAGES", 20000, "images in one uploaded or folder dataset"),
    Setting("TL_QUOTA_DOMAIN_CLASSES", 200, "classes in one uploaded or folder dataset"),
    Setting("TL_QUOTA_QUEUED_RUNS", 6, "runs one session has queued or running"),
    Setting("TL_QUOTA_QUEUED_TOTAL", 60, "runs queued or running on the server"),
    Setting("TL_QUOTA_RUN_IMAGES", 2_000_000, "epochs x steps x batch of one run"),
    Setting("TL_QUOTA_RUN_WALL_S", 1800, "seconds a run may train before it is stopped (its checkpoint kept)"),
    Setting("TL_QUOTA_EXPERIMENT_RUNS", 20, "runs in one experiment (strategies x seeds)"),
    Setting("TL_QUOTA_DECODED_MB", 2048, "decoded pixels of one session's uploaded datasets together (MB)"),
    Setting("TL_QUOTA_QUEUED_SESSIONS", 100, "seated sessions whose first item may queue beyond TL_QUOTA_QUEUED_TOTAL"),
    # seats: on a server reachable from the network, compute belongs to seats (join links, sign-in)
    Setting("TL_QUOTA_ANON_RUNS", 4, "runs queued or running for all browsers without a seat together, on a server "
                                     "reachable from the network (0: none; a localhost server has no such cap)"),
)


def setting(name: str):
    """The value of a setting, read as the type of its default (bool: anything but '', '0'; None-default:
    the raw string or None when unset)."""
    s = SETTINGS[name]
    raw = os.environ.get(name)
    if s.default is None:
        return raw
    if raw is None or not raw.strip():
        return s.default
    if isinstance(s.default, bool):
        return raw.strip() not in ("", "0")
    if isinstance(s.default, (int, float)):
        try:
            return type(s.default)(raw.strip())
        except ValueError:
            return s.default
    return raw.strip()


def megabytes(name: str) -> int | None:
    """A size setting in bytes; None when it is 0 (no cap)."""
    mb = max(0, int(setting(name)))
    return mb * 2**20 if mb else None


@dataclass(frozen=True)
class Limits:
    """What one browser session may use, and the server as a whole. 0 switches a limit off."""

    upload_mb: int
    upload_total_mb: int
    images_per_domain: int
    classes_per_domain: int
    queued_runs: int
    queued_total: int
    run_images: int
    run_wall_s: int
    experiment_runs: int
    decoded_mb: int
    queued_sessions: int

    ENV = {"upload_mb": "TL_QUOTA_UPLOAD_MB", "upload_total_mb": "TL_QUOTA_UPLOAD_TOTAL_MB",
           "images_per_domain": "TL_QUOTA_DOMAIN_IMAGES", "classes_per_domain": "TL_QUOTA_DOMAIN_CLASSES",
           "queued_runs": "TL_QUOTA_QUEUED_RUNS", "queued_total": "TL_QUOTA_QUEUED_TOTAL",
           "run_images": "TL_QUOTA_RUN_IMAGES", "run_wall_s": "TL_QUOTA_RUN_WALL_S",
           "experiment_runs": "TL_QUOTA_EXPERIMENT_RUNS", "decoded_mb": "TL_QUOTA_DECODED_MB",
           "queued_sessions": "TL_QUOTA_QUEUED_SESSIONS"}

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(**{k: max(0, int(setting(env))) for k, env in cls.ENV.items()})


def limits() -> Limits:
    return Limits.from_env()


def check_domain_size(n_images: int, n_classes: int) -> None:
    """A folder or uploaded dataset within the server's images and classes per dataset."""
    lim = limits()
    if lim.images_per_domain and n_images > lim.images_per_domain:
        raise QuotaExceeded(f"The dataset has {n_images:,} images; a dataset may have at most "
                            f"{lim.images_per_domain:,} on this server (TL_QUOTA_DOMAIN_IMAGES). Use a subset.")
    if lim.classes_per_domain and n_classes > lim.classes_per_domain:
        raise QuotaExceeded(f"The dataset has {n_classes:,} classes; a dataset may have at most "
                            f"{lim.classes_per_domain} on this server (TL_QUOTA_DOMAIN_CLASSES).")
