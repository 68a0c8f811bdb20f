"""Method registry: one file per method; importing this package registers them all."""
import importlib
import pkgutil

from tl_core.methods.base import (
    METHODS, Method, Param, RunContext, SourceFree, Step, HookedMethod, entropy, get_method, grl, list_methods,
    register_method, warm_start
)

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["METHODS", "Method", "Param", "RunContext", "SourceFree", "Step", "HookedMethod", "entropy", "get_method", "grl",
           "list_methods", "register_method", "warm_start"]
