"""TransferLab core: domains, backbones, adaptation methods, the trainer and the run store.

This package never imports streamlit; the app's pages use only what is exported here.
"""
from .config import DataSpec, MethodSpec, ModelSpec, RunConfig, TrainSpec
from .errors import ConfigError, DataUnavailable, NotVisible, QuotaExceeded, StoreBusy, TLError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataSpec", "DataUnavailable", "NotVisible", "QuotaExceeded", "StoreBusy", "MethodSpec", "ModelSpec", "RunConfig", "TLError",
           "TrainSpec", "list_backbones", "list_domains", "list_methods"]


def list_domains() -> list[str]:
    from .domains import list_domains as f

    return f()


def list_backbones() -> list[str]:
    from .backbones import list_backbones as f

    return f()


def list_methods() -> list[str]:
    from .methods import list_methods as f

    return f()


# The run store and job manager (no torch is imported by these).
from .runs import (cancel, checkpoint_path, delete, embedding_epochs, get_run, list_runs, load_model,  # noqa: E402
                   read_embedding, read_metrics, read_progress, resume, schedule, submit, wait)

__all__ += ["cancel", "checkpoint_path", "delete", "embedding_epochs", "get_run", "list_runs", "load_model",
            "read_embedding", "read_metrics", "read_progress", "resume", "schedule", "submit", "wait"]
