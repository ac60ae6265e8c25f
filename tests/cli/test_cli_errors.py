"""Bad arguments and bad files: one line on stderr, a non-zero exit, nothing half-written."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from dnnh.cli.main import main
from dnnh.locks import LockedError, lock_folder

TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
        "--input-size", "8", "--epochs", "1", "--batch-size", "40", "--threads", "1", "--workers", "0"]


@pytest.mark.parametrize("flags, says", [
    (["--threads", "-1"], "argument --threads: expected an integer >= 1, got -1"),
    (["--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["--input-size", "-5"], "argument --input-size: expected an image side in pixels 1..4096, got -5"),
    (["--input-size", "0"], "argument --input-size: expected an image side in pixels 1..4096, got 0"),
    (["--queries-per-class", "0"], "argument --queries-per-class: expected an integer >= 1, got 0"),
    (["--epochs", "two"], "argument --epochs: expected an integer >= 1, got 'two'"),
])
def test_bad_numbers_are_refused_at_parse_time_in_one_line(tmp_path, capsys, flags, says):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--run", str(tmp_path / "r"), *TINY, *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and says in err and "usage" not in err
    assert not (tmp_path / "r").exists()


#: Issue 36.3: every number flag of train and bench that is not finite or outside its range. Before: --margin nan
#: trained (exit 0, NaN loss, "margin": NaN in config.json), --val-fraction -0.1 was quietly 0, --input-size 100000
#: was an internal error (torch asked for 12 TB).
BAD_NUMBERS = [
    ("train", "--margin", "nan", "expected a finite number >= 0"), ("train", "--margin", "-1", ">= 0"),
    ("train", "--margin", "inf", ">= 0"), ("train", "--lr", "0", "> 0"), ("train", "--lr", "nan", "> 0"),
    ("train", "--weight-decay", "-0.1", ">= 0"), ("train", "--weight-decay", "inf", ">= 0"),
    ("train", "--eps", "0.7", "in [0, 0.5]"), ("train", "--eps", "nan", "in [0, 0.5]"),
    ("train", "--erase", "1.5", "a probability in [0, 1]"), ("train", "--erase", "-inf", "in [0, 1]"),
    ("train", "--dropout", "1", "a probability in [0, 1)"), ("train", "--dropout", "nan", "in [0, 1)"),
    ("train", "--backbone-lr", "-1", ">= 0"), ("train", "--backbone-lr", "nan", ">= 0"),
    ("train", "--val-fraction", "-0.1", "a share in [0, 1)"), ("train", "--val-fraction", "1", "in [0, 1)"),
    ("train", "--val-fraction", "nan", "in [0, 1)"), ("train", "--input-size", "100000", "1..4096"),
    ("train", "--resize", "100000", "1..4096"), ("train", "--margin", "x", "got 'x'"),
    ("bench", "--target-map", "2", "a MAP in [0, 1]"), ("bench", "--target-map", "nan", "in [0, 1]"),
    ("bench", "--erase", "nan", "in [0, 1]"), ("bench", "--val-fraction", "-0.1", "in [0, 1)"),
    ("bench", "--input-size", "100000", "1..4096"), ("bench", "--backbone-lr", "inf", ">= 0"),
]


@pytest.mark.parametrize("command, flag, value, says", BAD_NUMBERS)
def test_number_flags_outside_their_range_are_refused_before_anything_is_created(tmp_path, capsys, command, flag,
                                                                                  value, says):
    where = ["--run", str(tmp_path / "r")] if command == "train" else ["--out", str(tmp_path / "r"), "--methods", "lsh"]
    with pytest.raises(SystemExit) as exit_:
        main([command, *where, *TINY, f"{flag}={value}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and f"argument {flag}: " in err and says in err, err
    assert not (tmp_path / "r").exists()


def _number_flags(command: str) -> list:
    from dnnh.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.type is float or getattr(a.type, "__name__", "").startswith(("a ", "an "))
            or a.dest in ("margin", "lr", "weight_decay", "eps", "erase", "dropout", "backbone_lr", "val_fraction",
                          "target_map")]


@pytest.mark.parametrize("command", ["train", "bench"])
def test_no_number_flag_of_train_or_bench_takes_nan_or_inf(command):
    """A float flag added later with type=float would take 'nan': every number flag must refuse it."""
    import argparse as _argparse  # noqa: F401 - the module-level name is used by _number_flags

    flags = _number_flags(command)
    assert len(flags) >= (9 if command == "train" else 6)
    for action in flags:
        assert action.type is not float, f"{action.option_strings} is a bare float: it takes nan"
        for text in ("nan", "inf", "-inf"):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(text)


def test_run_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        main(["train", "--run", str(tmp_path / "file"), *TINY])
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_second_writer_of_a_run_is_refused_naming_the_holder(tmp_path, capsys):
    with lock_folder(tmp_path / "r", "run directory"):
        assert main(["train", "--run", str(tmp_path / "r"), *TINY, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"being written by another dnnh process (PID {os.getpid()})" in err
    assert not (tmp_path / "r" / "config.json").exists()
    assert main(["train", "--run", str(tmp_path / "r"), *TINY, "--quiet"]) == 0  # released: now it runs


def test_lock_is_held_across_processes_and_dropped_when_the_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from dnnh.locks import lock_folder\n"
        f"lock = lock_folder({str(tmp_path / 'r')!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"PID {holder.pid}"):
            lock_folder(tmp_path / "r").acquire()
    finally:
        holder.kill()
        holder.wait()
    lock_folder(tmp_path / "r").acquire().release()  # kill -9 leaves no stale lock


def test_logs_to_a_file_get_one_line_an_epoch_and_quiet_only_the_result(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "r"), *TINY[:-10], "--input-size", "8", "--epochs", "2",
                 "--batch-size", "40", "--threads", "1", "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err  # no progress-bar redraws when not on a terminal
    assert [line.split(":")[0] for line in captured.out.splitlines() if line.startswith("epoch ")] == \
        ["epoch 1/2", "epoch 2/2"]
    assert main(["train", "--run", str(tmp_path / "q"), *TINY, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("MAP (whole database)") and "epoch" not in out and "saved" not in out


def test_index_build_refuses_to_replace_a_file_that_is_not_an_index(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "r"), *TINY, "--quiet"]) == 0
    model = tmp_path / "r" / "model.safetensors"
    before = model.read_bytes()
    codes = tmp_path / "r" / "codes_database.npz"
    assert main(["index", "build", "--codes", str(codes), "--out", str(model)]) == 1
    assert "is not a dnnh index" in capsys.readouterr().err and model.read_bytes() == before
    assert main(["index", "build", "--codes", str(codes), "--out", str(tmp_path / "db.dhi")]) == 0
    assert main(["index", "build", "--codes", str(codes), "--out", str(tmp_path / "db.dhi")]) == 0  # an index: fine
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert main(["index", "build", "--codes", str(codes), "--out", str(other), "--force"]) == 0


def test_search_on_an_empty_index_says_so(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from dnnh.codes import CodeSet

    assert main(["train", "--run", str(tmp_path / "r"), *TINY, "--quiet"]) == 0
    CodeSet(codes=np.zeros((0, 2), dtype=np.uint8), nbits=12, ids=np.zeros(0)).save(tmp_path / "empty.npz")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "q.png")
    capsys.readouterr()
    assert main(["search", str(tmp_path / "q.png"), "--run", str(tmp_path / "r"),
                 "--codes", str(tmp_path / "empty.npz")]) == 1
    assert "holds no codes: nothing to search" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_and_the_traceback_waits_for_debug(monkeypatch, capsys):
    def boom(args):
        raise KeyError("a bug")

    monkeypatch.setattr("dnnh.cli.eval.run", boom)
    assert main(["eval", "--run", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "eval", "--run", "x"])


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`dnnh ... | head -1`: no BrokenPipeError traceback."""
    proc = subprocess.run(f"{sys.executable} -m dnnh --help | head -1", shell=True, capture_output=True, text=True)
    assert proc.stdout.startswith("usage") and "Traceback" not in proc.stderr
    script = ("import sys; from dnnh.cli import main as m\n"
              "def chatty(args):\n    [print('line', i) for i in range(200000)]\n"
              "m.importlib.import_module('dnnh.cli.eval').run = chatty\n"
              "sys.exit(m.main(['eval', '--run', 'x']))")
    proc = subprocess.run(f"{sys.executable} -c \"{script}\" | head -3", shell=True, capture_output=True, text=True)
    assert proc.stdout.splitlines() == ["line 0", "line 1", "line 2"] and "Traceback" not in proc.stderr


def test_a_type_error_of_ours_is_internal_but_a_user_error_of_the_wrong_type_is_not(monkeypatch, capsys):
    from dnnh.errors import ChangedDataError, InputTypeError, LockedError

    def bug(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr("dnnh.cli.eval.run", bug)
    assert main(["eval", "--run", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: TypeError" in err and "--debug" in err
    for user_error in (InputTypeError("codes must be packed uint8"), ChangedDataError("the data differs"),
                       LockedError("held by PID 1")):
        monkeypatch.setattr("dnnh.cli.eval.run", lambda args, e=user_error: (_ for _ in ()).throw(e))
        assert main(["eval", "--run", "x"]) == 1
        err = capsys.readouterr().err
        assert err == f"dnnh eval: error: {user_error}\n"
    assert issubclass(InputTypeError, TypeError) and issubclass(ChangedDataError, ValueError)


@pytest.mark.parametrize("raised, says", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 12000000000000 bytes. Error code 12 (Cannot allocate memory)"),
     "out of memory (torch asked for 12000000000000 bytes)"),
    (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; ...)"),
     "out of memory (torch asked for 20.00 GiB)"),
])
def test_torch_running_out_of_memory_is_one_line_not_an_internal_error(monkeypatch, capsys, raised, says):
    """Issue 36.3's --input-size 100000 was 'internal error: RuntimeError: ... DefaultCPUAllocator'; the size is
    now bounded, and any allocation torch cannot make (a large dataset at a large side) is the user's one line."""
    monkeypatch.setattr("dnnh.cli.eval.run", lambda args: (_ for _ in ()).throw(raised))
    assert main(["eval", "--run", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err and says in err, err
