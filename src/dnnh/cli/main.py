"""The `dnnh` command: registers subcommands and turns known errors into one line.

Each subcommand lives in its own module with ``register(subparsers)``, which adds a parser whose
``func`` default receives the parsed args. Handlers check flags and call the library; anything
they raise as ``ValueError``, ``FileNotFoundError``, ``TypeError`` or ``DnnhError`` is printed as
one line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ["train", "encode", "eval", "search", "demo", "index", "bench"]


class DnnhError(Exception):
    """A user-facing error with a message that says what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnnh", description="Deep supervised hashing (DNNH) and baselines.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"dnnh.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dnnh.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        hint = "; finished epochs are checkpointed, continue with --resume" if args.command == "train" else ""
        print(f"dnnh {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except (DnnhError, ValueError, FileNotFoundError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        print(f"dnnh {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
