"""Data-parallel training on CPU (gloo) with real processes: torchrun runs a script on two
ranks, and `launch` spawns a follower for this test process, as the Celery task does."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recommendations.learning import artifacts, launch
from recommendations.learning.dataset import leave_one_out_split
from recommendations.learning.distributed import Group
from recommendations.learning.two_tower import TrainConfig, TwoTowerRecommender

from .conftest import store_of, store_sequences
from .test_two_tower import SMALL

SCRIPT = Path(__file__).with_name("ddp_script.py")


def torchrun(mode: str, out: Path) -> str:
    """`torchrun --standalone --nproc-per-node=2 ddp_script.py MODE OUT` (a free port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*command, str(SCRIPT), mode, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def planted_store_share(model: TwoTowerRecommender) -> float:
    """Share of top-5 items from the store the user shops in (random: 0.25)."""
    seqs, stores = store_sequences(80, seed=99, length=(2, 5), switch=0.0)
    ids, _ = model.recommend(np.arange(80), [np.array(s) for s in seqs], k=5)
    return float((store_of(ids) == stores[:, None]).mean())


def test_two_ranks_under_torchrun_end_identical_and_write_one_artifact(tmp_path):
    torchrun("fit", tmp_path)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    assert ranks[0].files == ranks[1].files
    for name in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
    assert sorted(p.name for p in tmp_path.glob("model-*")) == ["model-0"]
    model = artifacts.load_model(tmp_path / "model-0", device="cpu")
    # The single-process test's bar (test_recovers_planted_store_structure).
    assert planted_store_share(model) > 0.9


def test_followers_are_released_without_work_and_different_data_is_refused(tmp_path):
    torchrun("release", tmp_path)
    led, followed = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert led.startswith("led, refused: the processes were given different training data")
    assert followed.startswith("released, refused: the processes were given different training data")


def test_spawned_follower_trains_in_step_and_stops_on_the_same_epoch(store_data):
    data, _, _ = store_data
    split = leave_one_out_split(data)
    config = TrainConfig(**{**SMALL, "batch_size": 16, "epochs": 12, "patience": 2})
    logs = []
    with launch.lead(processes=2, device="cpu") as team:
        team.share(launch.Work(config, split.train, split.validation))
        model = TwoTowerRecommender(config).fit(split.train, split.validation, callback=logs.append)
    # The follower exits cleanly only if it took as many steps and epochs as this process.
    assert team.world_size == 2 and [p.returncode for p in team.followers] == [0]
    assert logs == model.history and model.best_epoch <= len(logs) <= 12
    assert planted_store_share(model) > 0.9


def test_no_team_without_several_processes(store_data):
    data, _, _ = store_data
    with launch.lead(processes=1) as team:
        team.share(launch.Work(TrainConfig(**SMALL), data))  # nobody to send it to
    assert team.world_size == 1 and not team.followers


def test_required_distributed_training_says_how_to_launch(store_data, monkeypatch):
    data, _, _ = store_data
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node"):
        TwoTowerRecommender(TrainConfig(**SMALL, distributed=True)).fit(data)


def test_sharding_gives_every_rank_as_many_batches_and_covers_all():
    batches = list(range(5))
    shares = [Group(rank=r, world_size=2).shard(batches) for r in (0, 1)]
    assert shares == [[0, 2, 4], [1, 3, 0]]  # padded by wrapping around, like DistributedSampler
    assert Group().shard(batches) is batches
    rows = [Group(rank=r, world_size=3).rows(7).tolist() for r in range(3)]
    assert rows == [[0, 3, 6], [1, 4], [2, 5]]  # evaluation rows are split, not padded
