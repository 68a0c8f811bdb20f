"""Experiments: a named grid of strategies x seeds on one pair, recorded as one object in the run store with
its member runs, and the verdict people read.

    spec      the grid (`Strategy`, `ExperimentSpec`, `from_methods`)
    verdict   per-strategy means and intervals, paired gains, flags, the verdict in words
    launch    queue a grid in one transaction, read it back, its progress, the CLI's JSON
    presets   ready experiments for teachers, each with its lesson
"""
from tl_core.experiments.launch import cancel, cli_result, get, launch, progress, status_of, wait
from tl_core.experiments.presets import FIRST_VISIT, Preset, get_preset, list_presets
from tl_core.experiments.spec import MAX_SEEDS, MAX_STRATEGIES, Strategy, ExperimentSpec, from_methods
from tl_core.experiments.verdict import (
    NOT_ALIGNING, REFERENCE_SOURCE, REFERENCES, ci_words, gain_interval, mean_ci, never_learned, summary, verdict
)

__all__ = ["Strategy", "ExperimentSpec", "FIRST_VISIT", "MAX_SEEDS", "MAX_STRATEGIES", "NOT_ALIGNING", "Preset",
           "REFERENCES", "REFERENCE_SOURCE", "cancel", "ci_words", "cli_result", "from_methods", "gain_interval", "get",
           "get_preset", "launch", "list_presets", "mean_ci", "never_learned", "progress", "status_of", "summary",
           "verdict", "wait"]
