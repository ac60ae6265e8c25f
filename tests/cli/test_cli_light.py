"""`dnnh --help` and `dnnh <command> --help` answer without importing torch or numba.

Building the parser used to import both (about 4 s before a help text appeared); the handlers
now import the library, and choices come from light modules (dnnh.config, dnnh.encoder.names,
dnnh.baselines.catalog). Checked in fresh interpreters: this test process has torch loaded.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "numba", "sklearn")
COMMANDS = ["train", "encode", "eval", "search", "demo", "index", "index build", "index info", "bench", "export",
            "serve"]


def test_top_level_help_imports_no_torch_and_no_numba():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dnnh", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "usage: dnnh" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "dnnh.cli.main" in imported  # the timing lines were read
    assert not [m for m in imported if m.split(".")[0] in HEAVY]


def test_every_command_help_imports_no_torch_and_no_numba():
    script = f"""
import contextlib, io, sys
from dnnh.cli.main import main
heavy = {{}}
for command in {COMMANDS!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(command.split() + ["--help"])
        except SystemExit:
            pass
    assert "usage:" in out.getvalue(), command
    heavy[command] = [m for m in {HEAVY!r} if m in sys.modules]
print(heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str({c: [] for c in COMMANDS})
