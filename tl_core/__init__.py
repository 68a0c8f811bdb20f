"""TransferLab core: domains, backbones, adaptation methods, the trainer and the run store.

This package never imports streamlit. The app's pages call `app.api`; the command line is `cli`;
one package per floor in between (docs/ARCHITECTURE.md). Importing the package loads only the config and
the errors (no torch, no job manager).
"""
from tl_core.config import DataSpec, MethodSpec, ModelSpec, RunConfig, TrainSpec
from tl_core.base.errors import ConfigError, DataUnavailable, NotVisible, QuotaExceeded, StoreBusy, TLError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataSpec", "DataUnavailable", "NotVisible", "QuotaExceeded", "StoreBusy", "MethodSpec",
           "ModelSpec", "RunConfig", "TLError", "TrainSpec", "list_backbones", "list_domains", "list_methods"]

# The three lists below import their catalogues when called, not when the package is imported: the
# catalogues import torch, and `import tl_core` stays light (the one exception to imports at the top).


def list_domains() -> list[str]:
    from tl_core.data.domains import list_domains as f  # torch

    return f()


def list_backbones() -> list[str]:
    from tl_core.models.backbones import list_backbones as f  # torch

    return f()


def list_methods() -> list[str]:
    from tl_core.methods import list_methods as f  # torch

    return f()
