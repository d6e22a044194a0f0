"""The serving benchmark's CPU accounting: a phase's CPU goes to the processes that spent it,
including processes that exited during the phase (a closed connection's backend)."""

import subprocess
import sys

import pytest

from benchmarks.memory import tree_cpu_seconds
from benchmarks.serving import CpuSplit

# A stand-in for gunicorn's master: on a line from the benchmark, a child of it burns 0.3 s of
# CPU and exits, and it waits for the child, as a master does for a worker that exits.
SERVER = """
import subprocess, sys
BURN = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
sys.stdin.readline()
subprocess.run([sys.executable, "-c", BURN], check=True)
print("burnt", flush=True)
sys.stdin.readline()
"""


@pytest.mark.django_db
def test_cpu_of_an_exited_child_of_the_server_counts_as_web():
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        split = CpuSplit(server.pid)
        assert split.database_pid is not None  # the embedded PostgreSQL runs on this machine
        started = tree_cpu_seconds(server.pid)
        with split:
            server.stdin.write("burn\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "burnt"
        per_request = split.per_request(requests=1)
        assert tree_cpu_seconds(server.pid) - started >= 0.29  # the exited child still counts
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    # The rest of the machine is not asserted on: other work on a shared machine lands there.
    assert per_request["web"] >= 290
    assert per_request["database"] is not None and per_request["database"] >= 0
