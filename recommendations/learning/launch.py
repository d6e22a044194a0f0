"""Who trains with whom: rank 0 leads, the other ranks follow.

Rank 0 (the leader) reads the data, hands it to the other ranks (the followers) and alone
writes results (artifacts, the database, logs). Followers only train, in step with it (see
`distributed`), and exit. Rank 0 sends the data rather than letting every rank read the
database because ranks start at slightly different moments and could read different events
(a shopper clicks in between): they would then train on different data and wait for each
other forever. It also means followers need no database connection.

Two ways to start the ranks, with the same roles:

- torchrun, on one machine or several: ``torchrun --nproc-per-node=4 manage.py train_model``.
  Every rank runs the command; rank 0 does what the command always does, inside `lead()`,
  the others call `follow()`. Use it to span machines or to place processes yourself.
- Spawned, on this machine: ``lead(processes=4)`` in any process (the `gpu` queue's Celery
  task, a command, a script) starts the followers, when the work is ready, as
  ``python -m recommendations.learning.launch`` children. The Celery task keeps its task id,
  lock, progress and retry behaviour because it stays rank 0; torchrun would make it a
  parent of fresh processes that know none of that. Followers exit when their leader dies
  (their stdin closes), so a killed worker leaves no process behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from . import distributed
from .dataset import EvalSet, InteractionData
from .two_tower import TrainConfig, TwoTowerRecommender

logger = logging.getLogger(__name__)

# Seconds for spawned followers to start (import torch, connect) before rank 0 gives up.
START_TIMEOUT = 300.0
# Seconds rank 0 waits for followers to exit after training before it stops them.
EXIT_TIMEOUT = 60.0
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `recommendations` package


@dataclass
class Work:
    """What every rank needs to train: the configuration and the data, from rank 0."""

    config: TrainConfig
    train: InteractionData
    validation: EvalSet | None = None


class Team:
    """Rank 0's view of the processes that train with it; `lead()` makes one.

    `world_size` is known from the start (the version row records it); spawned followers
    start only when `share()` is called, so a run that stops before training (too little
    data, the pipeline lock held) starts none.
    """

    def __init__(self, world_size: int, device: torch.device, how: str) -> None:
        self.world_size = world_size
        self.device = device
        self.how = how  # "alone", "torchrun", "joined" (the caller's group) or "spawn"
        self.shared = False
        self.followers: list[subprocess.Popen] = []

    def share(self, work: Work) -> None:
        """Send `work` to every follower (starting them first when spawned); then call
        `TwoTowerRecommender(work.config).fit(work.train, work.validation)` here, too."""
        if self.world_size == 1:
            return
        if self.shared:
            raise RuntimeError("the work was already shared: a team trains one model")
        if self.how == "spawn":
            self._spawn()
        distributed.current().broadcast(work)
        self.shared = True

    def _spawn(self) -> None:
        # Rank 0 hosts the rendezvous store on a free port that the followers connect to.
        store = dist.TCPStore(
            "127.0.0.1",
            0,
            self.world_size,
            is_master=True,
            wait_for_workers=False,
            timeout=distributed.TIMEOUT,
        )
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(store.port),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_WORLD_SIZE": str(self.world_size),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        }
        command = [sys.executable, "-m", __name__, "--device", self.device.type]
        for rank in range(1, self.world_size):
            ranked = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            # Our own interpreter and module, no shell: nothing here comes from outside.
            self.followers.append(subprocess.Popen(command, env=ranked, stdin=subprocess.PIPE))  # noqa: S603
        self._wait_for_followers(store)
        distributed.init(self.device, store=store, rank=0, world_size=self.world_size)

    def _wait_for_followers(self, store: dist.TCPStore) -> None:
        """Each follower says "ready" before joining; fail fast if one died starting up."""
        keys = [f"ready/{rank}" for rank in range(1, self.world_size)]
        deadline = time.monotonic() + START_TIMEOUT
        while not store.check(keys):
            codes = [p.returncode for p in self.followers if p.poll() is not None]
            if codes or time.monotonic() > deadline:
                self.stop()
                what = f"exited with code {codes[0]}" if codes else f"did not start in {START_TIMEOUT:.0f}s"
                raise RuntimeError(
                    f"A training process (python -m {__name__}) {what}; its output is above. Fix the "
                    "cause, or train in one process (in Django: RECOMMENDATIONS['TRAINING_PROCESSES'] = 1)."
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the followers this process started (after a failure on rank 0)."""
        for process in self.followers:
            if process.poll() is None:
                process.terminate()
        self._reap(timeout=10.0)

    def _reap(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.followers:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()

    def close(self, failed: bool) -> None:
        """End the team: release followers that got no work, then tear the group down."""
        if self.how in ("torchrun", "joined") and not self.shared:
            distributed.current().broadcast(None)  # "nothing to train": the followers exit
        if self.how == "spawn" and self.followers:
            if failed:
                self.stop()  # they may be waiting in a collective that will never complete
            else:
                self._reap(timeout=EXIT_TIMEOUT)
                codes = [p.returncode for p in self.followers]
                if any(codes):
                    logger.warning("Training processes exited with codes %s after training.", codes)
        if self.how == "spawn":
            distributed.close()  # torchrun's group lasts as long as the process


_team: Team | None = None


@contextmanager
def lead(processes: int = 1, device: str | torch.device = "cpu") -> Iterator[Team]:
    """Be rank 0 of the processes that train the next model, for the `with` block.

    Under torchrun (WORLD_SIZE > 1) or in a process group the caller set up, the team is that
    group and `processes` is ignored; otherwise `processes` > 1 spawns followers on this
    machine at `share()`. Nested calls get the outer team, if it has more than one process (a
    command under torchrun leads around the whole pipeline, and the training service inside
    it leads again). On exit, followers that were given no work are told so and exit.
    """
    global _team
    if _team is not None:
        yield _team
        return
    team = _form(processes, torch.device(device))
    if team.how == "alone":  # nobody to lead: a nested call may still form a team
        yield team
        return
    _team = team
    failed = True
    try:
        yield team
        failed = False
    finally:
        _team = None
        team.close(failed)


def _form(processes: int, device: torch.device) -> Team:
    if dist.is_available() and dist.is_initialized():
        how = "joined"
    elif distributed.environment_world_size() > 1:
        how = "torchrun"
    elif processes > 1:
        return Team(processes, device, "spawn")
    else:
        return Team(1, device, "alone")
    if is_follower():
        raise RuntimeError("lead() runs on rank 0; the other ranks call follow()")
    group = distributed.current() if how == "joined" else distributed.init(device)
    return Team(group.world_size, device, how)


def is_follower() -> bool:
    """Whether torchrun started this process as a rank other than 0."""
    return distributed.environment_world_size() > 1 and int(os.environ.get("RANK", "0") or 0) > 0


def follow(device: str | torch.device = "cpu", store: dist.Store | None = None) -> TwoTowerRecommender | None:
    """A follower's whole job: join the group, take rank 0's work, train in step with it.

    Returns the trained model (the same weights as rank 0's, which rank 0 stores), or None
    when rank 0 had nothing to train (it says why). `device` must be the training device
    type of rank 0 ("cuda" or "cpu"): it picks the backend.
    """
    if not (dist.is_available() and dist.is_initialized()):  # else the caller's group
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        distributed.init(torch.device(device), store=store, rank=rank, world_size=world)
    work = distributed.current().broadcast()
    if work is None:
        return None
    return TwoTowerRecommender(work.config).fit(work.train, work.validation)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a follower spawned by `Team` (`python -m recommendations.learning.launch`)."""
    parser = argparse.ArgumentParser(description="A follower rank of data-parallel training.")
    parser.add_argument("--device", default="cpu", help="rank 0's training device type: cuda or cpu")
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_with_leader, daemon=True).start()
    rank = int(os.environ["RANK"])
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        int(os.environ["WORLD_SIZE"]),
        is_master=False,
        timeout=distributed.TIMEOUT,
    )
    store.set(f"ready/{rank}", "1")
    follow(args.device, store=store)
    distributed.close()
    return 0


def _exit_with_leader() -> None:
    """Rank 0 holds our stdin open; end of file means it is gone, and so is our work."""
    # os.read, not sys.stdin: a buffered reader's lock held by this thread at exit aborts Python.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
