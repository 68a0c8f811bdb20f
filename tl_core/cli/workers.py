"""The hidden subcommands a server starts: `worker RUN_ID` trains one run, `advice-worker ID` answers one
question to the advisor."""
from __future__ import annotations

import argparse

from tl_core.advice import advisor
from tl_core.runs.worker import worker_main


def cmd_worker(args) -> int:
    return worker_main(args.run_id)


def add_parser(sub) -> None:
    paw = sub.add_parser("advice-worker", help=argparse.SUPPRESS)
    paw.add_argument("job_id")
    paw.set_defaults(fn=lambda args: advisor.job_main(args.job_id))
    pw = sub.add_parser("worker", help=argparse.SUPPRESS)
    pw.add_argument("run_id")
    pw.set_defaults(fn=cmd_worker)
