"""How long the command line takes to say its help, and whether that imports torch or numba (issue 21.8).

    python benchmarks/cli_startup.py                    # this checkout's dnnh, 5 runs a command
    python benchmarks/cli_startup.py --src /tmp/old/src # another tree's (e.g. a worktree at d995ddc)

Each command (``dnnh --help``, ``dnnh train --help``) runs as ``python -m dnnh ...`` in a fresh
subprocess, once untimed (bytecode compiled, files cached), then ``--repeats`` times; the median wall
time is printed with the CPU model and the load average before and after (a loaded machine stretches
every figure: run it idle). Last, ``python -X importtime -m dnnh --help`` says which of torch and
numba the help imports (the target is neither). ``--src`` puts a tree's ``src`` first on
PYTHONPATH, so the same interpreter times the code before a change.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from dnnh import machine

COMMANDS = (["--help"], ["train", "--help"])
HEAVY = ("torch", "numba")


def environment(src: str | None) -> dict[str, str]:
    """This process's environment, with ``src`` first on PYTHONPATH when given."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.abspath(src), env.get("PYTHONPATH")]))
    return env


def wall_times(args: list[str], repeats: int, env: dict[str, str]) -> list[float]:
    """Seconds for ``python -m dnnh *args``, ``repeats`` times after one untimed run."""
    command = [sys.executable, "-m", "dnnh", *args]
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def heavy_imports(env: dict[str, str]) -> list[str]:
    """Which of :data:`HEAVY` ``python -X importtime -m dnnh --help`` imports."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dnnh", "--help"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True).stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.splitlines()
                if line.startswith("import time:")}
    return [name for name in HEAVY if name in imported]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs a command (default 5)")
    p.add_argument("--src", help="a tree's src folder to time instead of the installed dnnh")
    args = p.parse_args(argv)
    env = environment(args.src)
    where = subprocess.run([sys.executable, "-c", "import dnnh; print(dnnh.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    print(f"# {machine.describe()}")
    print(f"# dnnh from {where}; {sys.executable} -m dnnh; median of {args.repeats} after one untimed run")
    print("| command | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for command in COMMANDS:
        times = wall_times(command, args.repeats, env)
        print(f"| dnnh {' '.join(command)} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")
    heavy = heavy_imports(env)
    print(f"# python -X importtime -m dnnh --help imports: {', '.join(heavy) if heavy else 'neither torch nor numba'}")
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in machine.load_average())}")


if __name__ == "__main__":
    main()
