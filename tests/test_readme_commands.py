"""README's commands work as written after its set-up command (issue 25, items 13 and 14).

A newcomer copies the commands in order. The set-up command must leave the environment active in
the shell (so a later ``dnnh ...`` is found), every ``dnnh`` command in a code block must parse with
the real parser (a renamed flag in the docs fails here, not on a user's machine), and every
``python benchmarks/...`` script it names must exist.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from dnnh.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def code_blocks(text: str) -> list[str]:
    """Shell code blocks: fenced ``bash``/``sh`` blocks and blocks indented inside list items."""
    blocks: list[list[str]] = []
    fence: str | None = None  # the open fence's language
    current: list[str] = []
    for line in text.splitlines() + [""]:
        if fence is not None:
            if line.strip() == "```":
                if fence in ("bash", "sh", ""):
                    blocks.append(current)
                fence, current = None, []
            else:
                current.append(line.strip())
        elif line.startswith("```"):
            fence = line[3:].strip()
        elif line.startswith("      ") and line.strip() and not line.lstrip().startswith(("- ", "|")):
            current.append(line.strip())
        elif current:
            blocks.append(current)
            current = []
    return ["\n".join(b).replace("\\\n", " ") for b in blocks]


def commands(text: str) -> list[str]:
    """Every shell command line of README's code blocks, with the block's own variables filled in."""
    found = []
    for block in code_blocks(text):
        variables: dict[str, str] = {}
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            assign = re.match(r'^([A-Z]+)="?([^"]*)"?$', line)
            if assign:
                variables[assign.group(1)] = re.sub(r"\$([A-Z]+)", lambda m, known=variables: known.get(m.group(1), ""),
                                                    assign.group(2))
                continue
            line = re.sub(r"\$([A-Z]+)", lambda m, known=variables: known.get(m.group(1), m.group(0)), line)
            found.extend(part.strip() for part in line.split("&&") if part.strip())
    return found


ALL = commands(README.read_text())
DNNH = [c for c in ALL if c.startswith("dnnh ") and "..." not in c]


def test_readme_has_commands_to_check():
    assert len(DNNH) >= 15, DNNH


def test_setup_command_activates_the_environment_before_dnnh_is_used():
    setup = next(c for c in code_blocks(README.read_text()) if "pip install -e ." in c and "dnnh demo" in c)
    steps = [s.strip() for s in setup.split("&&")]
    activate = next(i for i, s in enumerate(steps) if s in (". .venv/bin/activate", "source .venv/bin/activate"))
    assert activate < steps.index("dnnh demo")
    assert all(not s.startswith(".venv/bin/") for s in steps[activate:]), steps


@pytest.mark.parametrize("command", DNNH)
def test_every_dnnh_command_in_readme_parses(command, capsys):
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README command does not parse ({exc.code}): {command}\n{capsys.readouterr().err}")
    assert getattr(args, "func", None), command


def test_every_benchmark_readme_names_exists():
    named = set(re.findall(r"benchmarks/([\w.]+\.py)", README.read_text()))
    assert named, "README names no benchmark"
    missing = sorted(n for n in named if not (README.parent / "benchmarks" / n).is_file())
    assert not missing, missing


#: The flags and shell operators through which README's commands write files.
_WRITES = ("--out", "--token-file", "-o", ">")


def written_paths(commands_: list[str]) -> list[str]:
    """Every path README's commands write to (``--out``, ``--token-file``, ``curl -o``, ``> file``)."""
    found = []
    for command in commands_:
        argv = shlex.split(command)
        found += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in _WRITES]
    return found


def test_readme_commands_write_only_where_git_ignores():
    """Issue 36.16. Before: `token`, `fmnist-48.onnx` (and `42.png`, `db.dhi`, `parts/`, `results/`)
    landed in the working tree as untracked files a `git add .` would commit."""
    git = shutil.which("git")
    if git is None or subprocess.run([git, "rev-parse"], cwd=README.parent, capture_output=True).returncode:
        pytest.skip("not a git work tree")
    paths = [p for p in written_paths(ALL) if not p.startswith("/")]
    assert {"runs/token", "runs/fmnist-48.onnx"} <= set(paths), paths
    kept = [p for p in paths if subprocess.run([git, "check-ignore", "-q", "--no-index", p],
                                               cwd=README.parent).returncode != 0]
    assert not kept, f"README's commands write files git would track: {kept}"


def test_a_comment_naming_a_split_names_the_one_the_command_draws():
    """Issue 36.16. Before: "# paper protocol" beside a command whose run prints "auto split"."""
    named = []
    for block in code_blocks(README.read_text()):
        for line in block.splitlines():
            command, _, comment = line.partition("  # ")
            said = re.search(r"\b(auto|paper|cifar10-1|cifar10-2|lists|unseen) (?:split|protocol)\b", comment)
            if command.startswith("dnnh ") and said:
                named.append(said.group(1))
                assert build_parser().parse_args(shlex.split(command)[1:]).protocol == said.group(1), line
    assert named, "no README command comment names its split"


def test_readme_deletes_the_id_an_add_returned_not_a_fixed_item():
    """Issue 36.16. Before: `DELETE /api/items/1797` deleted a real item on any run but the digits demo."""
    deletes = [c for c in ALL if "-X DELETE" in c]
    assert deletes and all(re.search(r"/api/items/ID\b", c) for c in deletes), deletes
    assert "the id your add returned" in README.read_text()


def test_the_224_px_backbone_command_says_how_long_it_takes_and_how_to_try_it_small():
    """Issue 36.16. Before: README's resnet18 command took about 4 hours on 2 cores and nothing said so."""
    section = README.read_text().split("\n## Pretrained backbones", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"resnet18 command takes about [\d-]+ hours", section)
    small = [c for c in DNNH if "--backbone resnet18" in c and "--data digits" in c]
    assert small and "--epochs 1" in small[0] and "--train-per-class" in small[0]
