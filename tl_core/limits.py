"""Reading the server owner's `TL_*` knobs: a whole number from the environment, its default when the
variable is unset, empty or not a number."""
from __future__ import annotations

import os


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    try:
        return int(v) if v.strip() else default
    except ValueError:
        return default
