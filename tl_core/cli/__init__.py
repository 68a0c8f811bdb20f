"""The command line: `python -m tl_core list|train|...`. User mistakes print a message, not a traceback."""
from __future__ import annotations

import argparse
import os
import sys

from tl_core.base.errors import TLError
from tl_core.cli import advise, classroom, experiment, ingest, listing, manage, reproduce, train, workers

COMMANDS = (listing, train, manage, ingest, experiment, reproduce, advise, classroom, workers)  # one module each


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tl_core", description="TransferLab: guided transfer learning.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m tl_core list | head`: the reader left, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
