"""What the app's pages call: plain Python and numpy in and out, no streamlit, torch only lazily.

Pages stay thin: widgets -> one of these functions -> render. Every call that touches runs,
uploads or models carries the caller's `Session` (see `access`): a session sees its own runs and
the published ones, and changes only its own. This module is the facade: the functions live in
this package, one module per subject (server, text, data, model, strategy, run_views, compare,
predict, experiments, experiment_text), with one visibility helper (`visible`).
"""
from __future__ import annotations

from tl_core.store import UNFINISHED  # run statuses of a run that has not ended (pages poll while one is)

from tl_core.app.server import (
    APP_DEFAULT, default_config, start_server, open_session, seat_session, seat_words, store_busy, device_summary,
    queue_summary, executor_summary
)
from tl_core.app.text import domain_label, run_label, escape_markdown, clock
from tl_core.app.data import (
    domain_choices, shift_kinds, domain_preview, input_channels, label_space, ingest_zip, add_folder, session_folders,
    folder_roots, preview_mosaic, MAX_PREVIEW_ROWS, shift_preview, domain_refusal_text, my_uploads, delete_upload,
    domain_base
)
from tl_core.app.model import backbone_choices, model_summary
from tl_core.app.strategy import (
    FAMILY_ORDER, method_cards, validate, allowed, estimate_seconds, plan_for_budget, fit_default_plan, describe_plan,
    cli_command, selection_choices, run_limit_s, draft_to_query, draft_from_query
)
from tl_core.app.run_views import (
    get_run, list_runs, cancel_run, resume_run, train_again, delete_run, publish_run, read_metrics, embedding_epochs,
    read_embedding, all_embeddings, finished_runs, submit, reading_words
)
from tl_core.app.images import COLLAPSE_AT, class_report, class_row_words, cell_images, point_image
from tl_core.app.run_text import (
    status_line, queue_words, reused_sentence, progress_line, too_long_words, outcome_words, sampled_words,
    point_words, confusion_title, class_table, collapse_words, cell_choices, cell_words
)
from tl_core.app.compare import compare_rows, checkpoint_bytes, seed_groups
from tl_core.app.experiments import (
    experiment_presets, first_visit_preset, experiment_from_query, experiment_query, link_budget, plan_experiment,
    launch_experiment, train_experiment_again, view_experiment, experiment_progress, list_experiments,
    cancel_experiment, delete_experiment, publish_experiment, export_experiment, ask_advisor, advice_job,
    latest_advice, launch_advised, advisor_track_record
)
from tl_core.app.experiment_text import (
    ADVISOR_HELP, PROBE_HELP, MAP_CAPTION, plan_words, experiment_links, progress_words, header, verdict_tone,
    flag_lines, result_rows, run_links, map_runs, advice_rows, score_rows, record_words, probe_record_words
)
from tl_core.app.predict import (
    decode_upload, unpack_model_zip, import_model, my_models, delete_my_model, predict, target_samples
)

__all__ = [
    "UNFINISHED",
    "COLLAPSE_AT",
    "class_report",
    "fit_default_plan",
    "status_line",
    "reused_sentence",
    "queue_words",
    "progress_line",
    "too_long_words",
    "outcome_words",
    "sampled_words",
    "point_words",
    "confusion_title",
    "class_table",
    "collapse_words",
    "cell_choices",
    "cell_words",
    "class_row_words",
    "cell_images",
    "point_image",
    "APP_DEFAULT",
    "default_config",
    "start_server",
    "open_session",
    "seat_session",
    "seat_words",
    "store_busy",
    "device_summary",
    "queue_summary",
    "executor_summary",
    "domain_label",
    "run_label",
    "escape_markdown",
    "domain_choices",
    "shift_kinds",
    "domain_preview",
    "input_channels",
    "label_space",
    "ingest_zip",
    "add_folder",
    "session_folders",
    "folder_roots",
    "preview_mosaic",
    "MAX_PREVIEW_ROWS",
    "shift_preview",
    "domain_refusal_text",
    "my_uploads",
    "delete_upload",
    "domain_base",
    "backbone_choices",
    "model_summary",
    "FAMILY_ORDER",
    "method_cards",
    "validate",
    "allowed",
    "estimate_seconds",
    "plan_for_budget",
    "describe_plan",
    "cli_command",
    "selection_choices",
    "run_limit_s",
    "draft_to_query",
    "draft_from_query",
    "get_run",
    "list_runs",
    "cancel_run",
    "resume_run",
    "train_again",
    "delete_run",
    "publish_run",
    "read_metrics",
    "embedding_epochs",
    "read_embedding",
    "all_embeddings",
    "finished_runs",
    "submit",
    "reading_words",
    "compare_rows",
    "checkpoint_bytes",
    "seed_groups",
    "decode_upload",
    "unpack_model_zip",
    "import_model",
    "my_models",
    "delete_my_model",
    "predict",
    "target_samples",
    "experiment_presets",
    "first_visit_preset",
    "experiment_from_query",
    "experiment_query",
    "link_budget",
    "plan_experiment",
    "launch_experiment",
    "train_experiment_again",
    "view_experiment",
    "experiment_progress",
    "list_experiments",
    "cancel_experiment",
    "delete_experiment",
    "publish_experiment",
    "export_experiment",
    "ask_advisor",
    "advice_job",
    "latest_advice",
    "launch_advised",
    "advisor_track_record",
    "ADVISOR_HELP",
    "PROBE_HELP",
    "MAP_CAPTION",
    "clock",
    "plan_words",
    "experiment_links",
    "progress_words",
    "header",
    "verdict_tone",
    "flag_lines",
    "result_rows",
    "run_links",
    "map_runs",
    "advice_rows",
    "score_rows",
    "record_words",
    "probe_record_words",
]
