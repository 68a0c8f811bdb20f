"""The floor everything stands on: errors, settings and limits, paths, the registry, inputs, run events, the machine. No torch, no tl_core import from above."""
