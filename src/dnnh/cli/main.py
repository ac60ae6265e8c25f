"""The `dnnh` command: registers subcommands and turns known errors into one line.

Each subcommand lives in its own module with ``register(subparsers)``, which adds a parser whose
``func`` default receives the parsed args. Handlers check flags and call the library; a
:class:`~dnnh.errors.DnnhError` (the user's: bad input, bad data, a locked folder, changed data),
a ``ValueError``, ``FileNotFoundError``, ``OSError``, ``ImportError`` (a missing extra) or
``MemoryError`` is printed as one line. Anything else (a ``TypeError`` or ``KeyError`` in our own
code) is a bug of ours: one line too, saying so, with a hint to rerun with ``--debug``, which shows
the traceback.

Building the parser imports no torch and no numba (``dnnh --help`` answers at once): the command
modules import the library inside their handlers, and take their choices from light modules
(:mod:`dnnh.config`, :mod:`dnnh.encoder.names`); ``tests/cli/test_cli_light.py`` checks it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

import dnnh
from dnnh.errors import DnnhError
from dnnh.machine import configure_threads

COMMAND_MODULES = ["train", "encode", "eval", "search", "demo", "index", "bench", "export", "serve"]
#: reST in the docstrings that become descriptions and in help strings: a role (``:mod:`x```, ``~`` keeps
#: the last name), a literal (````x````) or the default role (```x```); ``--help`` shows the text inside.
MARKUP = re.compile(r":[a-z]+:`(~?)([^`]+)`|``([^`]+)``|`([^`]+)`")


def plain_text(text: str) -> str:
    """``text`` with its reST markup taken off (``:mod:`dnnh.bench.harness``` -> ``dnnh.bench.harness``)."""
    def inner(match: re.Match) -> str:
        tilde, role, literal, default = match.groups()
        if role is not None:
            return role.rsplit(".", 1)[-1] if tilde else role
        return literal if literal is not None else default
    return MARKUP.sub(inner, text)


#: What the user caused (printed as one line); anything else is an internal error.
USER_ERRORS = (DnnhError, ValueError, FileNotFoundError, ImportError, OSError, MemoryError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) and exit status 2, and help in plain text."""

    def format_help(self) -> str:
        return plain_text(super().format_help())

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dnnh", description="Deep supervised hashing (DNNH) and baselines.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"dnnh {dnnh.__version__}",
                        help="print the version and exit")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, for commands that relaunch themselves (train --nproc)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.showwarning = _one_line_warning(args.command)
    configure_threads()  # before any command imports torch: OpenMP threads sleep while they wait
    try:
        result = args.func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        hint = "; finished epochs are checkpointed, continue with --resume" if args.command == "train" else ""
        print(f"dnnh {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dnnh eval ... | head`: the reader left; say nothing more, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"dnnh {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: still one line, the traceback behind --debug
        if args.debug:
            raise
        if _out_of_memory(exc):  # torch's allocators raise RuntimeError, not MemoryError
            print(f"dnnh {args.command}: error: {_out_of_memory(exc)}", file=sys.stderr)
            return 1
        print(f"dnnh {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1
    return int(result or 0)


def _one_line_warning(command: str):
    """Warnings as ``dnnh CMD: warning: ...``, without the file:line of the code that raised them."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"dnnh {command}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)
    return show


def _out_of_memory(exc: BaseException) -> str:
    """"out of memory (...)" when ``exc`` is torch's failure to allocate (CPU or CUDA), else ""."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or not (type(exc).__name__ == "OutOfMemoryError"
                                                 or "can't allocate memory" in text or "out of memory" in text):
        return ""
    amount = re.search(r"allocate (\d[\d.]* ?[KMGT]?i?B|\d+ bytes)", text)
    asked = f"torch asked for {amount.group(1)}" if amount else " ".join(text.split())[:160]
    return f"out of memory ({asked}); a smaller --batch-size, --input-size or dataset needs less"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"out of memory ({text})"
    return text


if __name__ == "__main__":
    raise SystemExit(main())
