"""What the app's pages call: plain Python and numpy in and out, no streamlit, torch only lazily.

Pages stay thin: widgets -> one of these functions -> render. Every call that touches runs,
uploads or models carries the caller's `Session` (see `access`): a session sees its own runs and
the published ones, and changes only its own. This module is the facade: the functions live in
this package, one module per subject (server, text, data, model, strategy, run_views, compare,
predict, experiments, experiment_text), with one visibility helper (`fetch_visible`).
"""
from __future__ import annotations

import importlib

from tl_core.app.compare import *  # noqa: F401,F403
from tl_core.app.data import *  # noqa: F401,F403
from tl_core.app.experiment_text import *  # noqa: F401,F403
from tl_core.app.experiments import *  # noqa: F401,F403
from tl_core.app.images import *  # noqa: F401,F403
from tl_core.app.model import *  # noqa: F401,F403
from tl_core.app.predict import *  # noqa: F401,F403
from tl_core.app.run_text import *  # noqa: F401,F403
from tl_core.app.run_views import *  # noqa: F401,F403
from tl_core.app.server import *  # noqa: F401,F403
from tl_core.app.strategy import *  # noqa: F401,F403
from tl_core.app.text import *  # noqa: F401,F403
from tl_core.store import UNFINISHED  # run statuses of a run that has not ended (pages poll while one is)

# each part's __all__ is what the pages may call from it (its own modules' names, e.g. `predict`, are shadowed)
PARTS = tuple(importlib.import_module(f"tl_core.app.{part}") for part in (
    "server", "text", "data", "model", "strategy", "run_views", "images", "run_text", "compare", "experiments",
    "experiment_text", "predict"))
__all__ = ["UNFINISHED", *(name for part in PARTS for name in part.__all__)]
