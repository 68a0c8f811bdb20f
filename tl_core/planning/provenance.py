"""Where a reading comes from: the data each domain actually was (full, starter pack, folder, upload,
shifted; counts per split; a content fingerprint), the code (commit, dirty or not) and the machine
(torch, device, CPU model, threads). Recorded with every run, shown wherever its number is."""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any
from tl_core.scores.stats import accuracy_ci

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The commit this code is, and whether tracked files differ from it (None where it is not a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "device": device, "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "python": platform.python_version()}


def fingerprint(data) -> str:
    """A short content hash of a decoded domain (images and labels of both splits)."""
    h = hashlib.sha256()
    for t in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def domain_facts(domain, data) -> dict[str, Any]:
    """What one domain of a run was: its variant, image counts per split and fingerprint."""
    return {"variant": domain.variant(), "train_images": int(len(data.x_train)),
            "test_images": int(len(data.x_test)), "fingerprint": fingerprint(data),
            "size": list(data.size), "channels": data.channels}


def run_provenance(source_domain, source_data, target_domain, target_data, device: str,
                   target_eval: str) -> dict[str, Any]:
    """The provenance a worker records when a run starts (the config's field sources come from
    whoever resolved it: see `resolve.resolve`)."""
    data = {source_domain.name: domain_facts(source_domain, source_data)}
    data.setdefault(target_domain.name, domain_facts(target_domain, target_data))
    return {"data": data, "target_eval": target_eval, "code": code_version(), "machine": machine(device)}


def run_reading(r: dict[str, Any]) -> dict[str, Any]:
    """A run's number with what it needs to be read: the evaluation set, its 95 % interval and the
    provenance (data variants, code, machine, and where each config field came from)."""
    import json

    prov: dict[str, Any] = {}
    try:
        prov = json.loads(r.get("provenance") or "{}")
    except ValueError:
        pass
    try:
        prov["config_sources"] = json.loads(r.get("config_sources") or "{}")
    except ValueError:
        prov["config_sources"] = {}
    try:
        est_ci = json.loads(r.get("target_acc_estimate_ci") or "null")
    except ValueError:
        est_ci = None
    return {"target_n": r.get("target_n"), "target_eval": r.get("target_eval") or "",
            "target_acc_ci": accuracy_ci(r.get("target_acc"), r.get("target_n")), "provenance": prov,
            # the accuracy estimated without target labels (ATC), with its sampling interval
            "target_acc_estimate": r.get("target_acc_estimate"), "target_acc_estimate_ci": est_ci}
