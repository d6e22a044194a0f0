"""Two-tower training speed on CUDA against the CPU, on Amazon Beauty 5-core.

Trains the model of `benchmarks/quality.py` (same data loading, features and settings) for a
fixed number of epochs on the GPU (the encoder in bf16 autocast, as in production), then the
same configuration on the CPU of the same machine, and, when there are several GPUs,
data-parallel on all of them through `recommendations.learning.launch` (as the `gpu` queue's
task does; the batch of one step is then batch_size x GPUs). Prints one markdown table.

An example is one predicted position (a next-item target); examples/s is examples trained per
second of `fit`, warm-up included (and for DDP, starting the other processes). The CPU run
stops after `--cpu-seconds` (mid-epoch if need be) and its time for the GPU's work is
extrapolated per example. GPU runs are scored on the
test split (leave-one-out, full ranking); the cut-short CPU run is not.

    python benchmarks/gpu.py                    # on a CUDA machine: 10 epochs, CPU capped at 120 s
    python benchmarks/gpu.py --epochs 30 --cpu-seconds 300
    python benchmarks/gpu.py --quick            # no GPU needed: 2,000 users, 1 epoch, CPU and
                                                # 2-process gloo runs, to check the script
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality import DATA_DIR, FEATURES, TWO_TOWER, load_beauty, subset_users
from recommendations.learning.dataset import InteractionData, Split, leave_one_out_split
from recommendations.learning.evaluation import evaluate
from recommendations.learning.features import FeatureConfig, ItemFeaturizer
from recommendations.learning.launch import Work, lead
from recommendations.learning.two_tower import TrainConfig, TwoTowerRecommender


@dataclass
class Run:
    name: str
    device: str
    processes: int
    epochs: int
    examples: int
    seconds: float
    ndcg10: float | None = None

    @property
    def rate(self) -> float:
        return self.examples / max(self.seconds, 1e-9)


class _CountingTwoTower(TwoTowerRecommender):
    """Counts the examples (predicted positions) it trains on, also when an epoch is cut short."""

    examples = 0

    def _train_step(self, model, seqs, rows, *args):  # type: ignore[override]
        self.examples += int((seqs.lengths[rows] - 1).sum())
        return super()._train_step(model, seqs, rows, *args)


def train(
    name: str, config: TrainConfig, split: Split, processes: int = 1, score: bool = True
) -> tuple[Run, TwoTowerRecommender]:
    """Fit `config` on the training split (no validation: a fixed number of epochs)."""
    model = _CountingTwoTower(config)
    started = time.perf_counter()
    with lead(processes, config.device or "cpu") as team:
        team.share(Work(config, split.train))
        model.fit(split.train)
        if config.device == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    examples = model.examples
    if team.world_size > 1:  # other ranks count for themselves; their epochs are whole ones
        lengths = np.minimum(split.train.lengths(), config.max_len + 1)
        examples = int((lengths[lengths >= 2] - 1).sum()) * len(model.history)
    run = Run(name, str(config.device), team.world_size, len(model.history), examples, seconds)
    if score:
        run.ndcg10 = evaluate(model, split.test, split.train.n_items, ks=(10,))["NDCG@10"]
    print(f"  {name}: {run.examples:,} examples in {seconds:.1f}s ({run.rate:,.0f}/s)", flush=True)
    return run, model


def table(runs: list[Run], cpu: Run, gpu_examples: int) -> str:
    lines = [
        "| run | device | processes | epochs | examples | seconds | examples/s | vs CPU "
        f"| s for {gpu_examples:,} examples | test NDCG@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        ndcg = "-" if run.ndcg10 is None else f"{run.ndcg10:.4f}"
        lines.append(
            f"| {run.name} | {run.device} | {run.processes} | {run.epochs} | {run.examples:,} "
            f"| {run.seconds:.1f} | {run.rate:,.0f} | {run.rate / cpu.rate:.1f}x "
            f"| {gpu_examples / run.rate:,.0f} | {ndcg} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each GPU run")
    parser.add_argument("--cpu-seconds", type=float, default=120.0, help="time budget of the CPU run")
    parser.add_argument("--users", type=int, default=None, help="train on a random subset of users")
    parser.add_argument("--quick", action="store_true", help="CPU-only smoke run of the script (no GPU)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    n_gpus = torch.cuda.device_count()
    if not args.quick and not n_gpus:
        sys.exit(
            "benchmarks/gpu.py needs a CUDA GPU, and torch sees none here (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Run it on a GPU machine "
            "with a CUDA build of torch (see the README), or use --quick to check the script on CPU."
        )
    if args.quick:
        args.users, args.epochs, args.cpu_seconds = args.users or 2000, 1, 30.0

    t0 = time.perf_counter()
    data, contents = load_beauty(args.data_dir)
    data.item_features = ItemFeaturizer(FeatureConfig(**FEATURES)).fit_transform(contents)
    if args.users:
        data = subset_users(data, args.users)
    split = leave_one_out_split(data)
    print(_describe(data, n_gpus, time.perf_counter() - t0), flush=True)

    # A fixed number of epochs, no early stopping and no time budget: the same work everywhere.
    base = {**TWO_TOWER, "epochs": args.epochs, "patience": args.epochs + 1}
    runs: list[Run] = []
    if n_gpus:
        runs.append(train("GPU, bf16 autocast", TrainConfig(**base, device="cuda"), split)[0])
    cpu_config = TrainConfig(**base, device="cpu", num_threads=os.cpu_count(), max_seconds=args.cpu_seconds)
    cpu = train("CPU, all cores", cpu_config, split, score=args.quick)[0]
    runs.append(cpu)
    if n_gpus > 1:
        name = f"DDP, {n_gpus} GPUs, bf16 autocast"
        runs.append(train(name, TrainConfig(**base, device="cuda"), split, processes=n_gpus)[0])
    elif args.quick:  # the data-parallel path of this script, on CPU over gloo
        smoke = TrainConfig(**base, device="cpu")
        runs.append(train("DDP on CPU (gloo), smoke", smoke, split, processes=2)[0])
    reference = runs[0].examples if n_gpus else cpu.examples
    print(table(runs, cpu, reference))


def _describe(data: InteractionData, n_gpus: int, seconds: float) -> str:
    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(n_gpus)) or "none"
    return (
        f"data: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} events "
        f"(loaded in {seconds:.1f}s); torch {torch.__version__}; GPUs: {gpus}; "
        f"CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()}); "
        f"model: dim {TWO_TOWER['dim']}, {TWO_TOWER['loss']} softmax "
        f"({TWO_TOWER['n_negatives']} negatives), batch {TWO_TOWER['batch_size']} per process; "
        f"mean {np.mean(data.lengths()):.1f} events per user"
    )


if __name__ == "__main__":
    main()
