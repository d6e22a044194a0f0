"""Run on every rank by `torchrun` in tests/learning/test_distributed.py (not a test itself).

    python -m torch.distributed.run --standalone --nproc-per-node=2 ddp_script.py MODE OUT

fit: every rank fits the same planted data (the core joins torchrun's group by itself),
saves its weights to OUT/rank<r>.npz for the test to compare, and asks for an artifact at
OUT/model-<r> (only rank 0's may be written).
release: rank 0 leads but has nothing to train; rank 1 follows and must be let go. Then each
rank fits different data, which must fail on both with a clear error instead of hanging.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from recommendations.learning import artifacts, launch
from recommendations.learning.dataset import InteractionData
from recommendations.learning.features import ItemFeaturizer
from recommendations.learning.two_tower import TrainConfig, TrainingError, TwoTowerRecommender
from tests.learning.conftest import ITEMS_PER_STORE, N_STORES, store_catalogue, store_sequences
from tests.learning.test_two_tower import SMALL

# Two ranks of 16 make the batch of one step the single-process test's 32.
DDP = {**SMALL, "batch_size": 16}


def planted(n_users: int = 240) -> InteractionData:
    seqs, _ = store_sequences(n_users)
    features = ItemFeaturizer().fit_transform(store_catalogue())
    return InteractionData.from_sequences(seqs, N_STORES * ITEMS_PER_STORE, item_features=features)


def main(mode: str, out: Path) -> None:
    rank = int(os.environ["RANK"])
    if mode == "fit":
        model = TwoTowerRecommender(TrainConfig(**DDP)).fit(planted())
        weights = {k: v.cpu().numpy() for k, v in model.net.state_dict().items()}
        np.savez(out / f"rank{rank}.npz", **weights)
        artifacts.save_model(out / f"model-{rank}", model)
    elif mode == "release":
        if rank == 0:
            with launch.lead(device="cpu"):
                pass  # e.g. the pipeline lock was held: nothing to train
            outcome = "led"
        else:
            outcome = "released" if launch.follow("cpu") is None else "trained"
        try:
            TwoTowerRecommender(TrainConfig(**{**DDP, "epochs": 1})).fit(planted(240 - rank))
            outcome += ", fitted different data"
        except TrainingError as exc:
            outcome += f", refused: {exc}"
        (out / f"rank{rank}.txt").write_text(outcome)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
