"""Several processes: rank 0's validation and checkpoint longer than the collectives' timeout (issue 34.11).

Two gloo processes whose collectives time out after 2 s; rank 0 works 6 s (as a long validation
would) while rank 1 waits. Waiting in the collectives' group (``dist.barrier()``, what the trainer did)
times out; :meth:`Distributed.barrier` waits on a group of its own with a long timeout and both go
on to the next collective. The process group the trainer started is destroyed at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

WORKER = """
import sys, time
from datetime import timedelta
import torch, torch.distributed as dist
from dnnh.training.distributed import Distributed

ddp = Distributed.from_environment(torch.device("cpu"), collective_timeout=timedelta(seconds=2))
if ddp.rank == 0:
    time.sleep(6)  # rank 0 validates and writes the run's files
if sys.argv[1] == "collectives-group":
    dist.barrier()  # waiting where the trainer used to: the collectives' timeout applies
else:
    ddp.barrier()
total = torch.ones(1)
dist.all_reduce(total)  # the next epoch's first collective
ddp.close()
print(f"sum {int(total.item())} initialized after close {dist.is_initialized()}")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(how: str) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, how], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_the_others_wait_for_rank_0_past_the_collectives_timeout_and_the_group_ends():
    ranks = _two_ranks("own-group")
    for proc in ranks:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "sum 2 initialized after close False"


def test_waiting_in_the_collectives_group_times_out():
    """What the trainer did before: the check that the test above would fail without its own group."""
    ranks = _two_ranks("collectives-group")
    assert any(proc.returncode != 0 for proc in ranks)
