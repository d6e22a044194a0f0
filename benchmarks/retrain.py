"""End-to-end retrain on Amazon Beauty 5-core through a real Celery worker, with its memory.

Imports the dataset (catalogue, then events) into its own database of the embedded server
(`bench_retrain`, kept between runs; the imports are skipped when it is filled), starts a
Celery worker on the `gpu` and `default` queues, queues the nightly `retrain` task and follows
the new model version through its stages (training, embedding, indexes, activation), sampling
the memory of the worker and of PostgreSQL meanwhile. The two-tower settings are those of
`benchmarks/quality.py`; the decay half-life is ten years, so that years-old reviews count as
in the offline benchmark. Prints seconds per stage, the version's test metrics beside
popularity's (the baseline evaluated in the same task), and peak memory.

    python benchmarks/retrain.py                     # CPU (or CUDA when present), 840 s budget
    python benchmarks/retrain.py --device cuda       # a GPU worker (bf16 autocast)
    python benchmarks/retrain.py --max-seconds 60    # a short smoke run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import TreeMemory, database_pid, tree_memory  # noqa: E402
from benchmarks.quality import DATA_DIR, TWO_TOWER  # noqa: E402

BENCH_DB = "bench_retrain"
SETTINGS = """
from shop.settings import *  # noqa: F403
from shop.settings import RECOMMENDATIONS

RECOMMENDATIONS = {{
    **RECOMMENDATIONS,
    "DEVICE": {device!r},
    "TRAINING": {training!r},
    "DECAY_HALF_LIFE_DAYS": 3650.0,
}}
"""


def write_settings(workdir: Path, device: str, max_seconds: float, threads: int) -> None:
    training = {**TWO_TOWER, "max_seconds": max_seconds, "num_threads": threads}
    (workdir / "bench_retrain_settings.py").write_text(SETTINGS.format(device=device, training=training))


def environment(workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{workdir}:{ROOT}",
        "DJANGO_SETTINGS_MODULE": "bench_retrain_settings",
        "EMBEDDED_POSTGRES_DB": BENCH_DB,
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    if not os.environ.get("CELERY_BROKER_URL"):
        env["CELERY_BROKER_FOLDER"] = str(workdir / "broker")  # a private serverless broker
    return env


def import_dataset(data_dir: Path) -> float:
    """Catalogue and events of the dataset, unless already there; returns the seconds spent."""
    from django.core.management import call_command

    from recommendations.models import Event

    if Event.objects.exists():
        print(f"Database {BENCH_DB} already holds {Event.objects.count():,} events; import skipped")
        return 0.0
    started = time.perf_counter()
    call_command("import_catalog", str(data_dir), dataset="amazon-beauty")
    call_command("import_events", str(data_dir), dataset="amazon-beauty", no_progress=True)
    return time.perf_counter() - started


class MemorySampler(threading.Thread):
    """Samples a few process trees every second; keeps the largest figures seen."""

    def __init__(self, trees: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.trees = trees
        self.peaks: dict[str, TreeMemory] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            for name, pid in self.trees.items():
                now, seen = tree_memory(pid), self.peaks.get(name)
                if seen is not None:
                    now = TreeMemory(
                        max(now.processes, seen.processes),
                        max(now.largest_peak_mib, seen.largest_peak_mib),
                        max(now.total_mib, seen.total_mib),
                    )
                self.peaks[name] = now


def follow(started_after: float, timeout: float) -> tuple[object, dict[str, float]]:
    """Wait for the retrain's version to be active (or failed); seconds spent per stage."""
    from recommendations.models import ModelStatus, ModelVersion

    stages: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    # Before the task creates the version it cleans the events and builds the training data.
    first = "queued, cleaning, training data"
    version, stage, since = None, first, time.monotonic()
    while time.monotonic() < deadline:
        if version is None:
            version = ModelVersion.objects.filter(created_at__gte=started_after).order_by("pk").first()
        else:
            version.refresh_from_db()
        current = (version.progress or {}).get("stage", "training") if version else first
        if version and version.status == ModelStatus.FAILED:
            raise RuntimeError(f"The retrain failed: {version.error}")
        if current != stage or (version and version.status == ModelStatus.ACTIVE):
            stages[stage] = stages.get(stage, 0.0) + time.monotonic() - since
            stage, since = current, time.monotonic()
        if version and version.status == ModelStatus.ACTIVE:
            return version, stages
        time.sleep(0.5)
    raise TimeoutError(f"The retrain did not finish within {timeout:.0f} s; see the worker's log above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--max-seconds", type=float, default=840.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in the worker")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    if not (args.data_dir / "items.csv").exists():
        sys.exit(f"Amazon Beauty 5-core not found in {args.data_dir}; pass --data-dir.")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_settings(workdir, args.device, args.max_seconds, args.threads)
        env = environment(workdir)
        os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "EMBEDDED_POSTGRES_DB")})
        os.environ.update({k: v for k, v in env.items() if k.startswith("CELERY_")})
        sys.path.insert(0, str(workdir))
        import django

        django.setup()
        from django.core.management import call_command

        from recommendations import tasks

        call_command("migrate", verbosity=0)
        import_seconds = import_dataset(args.data_dir)
        pg = database_pid()
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", "gpu,default"),
                *("--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"),
            ],
            env=env,
            cwd=ROOT,
        )
        sampler = MemorySampler({"Celery worker": worker.pid, **({"PostgreSQL": pg} if pg else {})})
        sampler.start()
        try:
            from django.utils import timezone

            queued_at, started = timezone.now(), time.monotonic()
            tasks.retrain.delay(activate=True)
            version, stages = follow(queued_at, timeout=args.max_seconds + 1800)
            total = time.monotonic() - started
        finally:
            sampler.stopped.set()
            worker.terminate()
            worker.wait(timeout=60)
    report(version, stages, total, import_seconds, sampler.peaks, args)


def report(version, stages, total, import_seconds, peaks, args) -> None:
    from recommendations import training

    metrics = version.metrics or {}
    print(
        f"\nEnd-to-end retrain on Amazon Beauty 5-core through a Celery worker (device {version.device}, "
        f"training budget {args.max_seconds:.0f} s, {args.threads} torch thread(s))"
    )
    if import_seconds:
        print(f"  import (catalogue + events)      {import_seconds:8.1f} s")
    for stage, seconds in stages.items():
        print(f"  {stage:<32} {seconds:8.1f} s")
    print(f"  {'total, queued to active':<32} {total:8.1f} s")
    print(f"  training (as the version records it) {version.training_seconds or 0:.1f} s")
    print("\nTest metrics of the new version beside popularity, evaluated in the same task:")
    print(f"  {training.metrics_summary(metrics)}")
    print("\nPeak memory while it ran (sampled every second):")
    for name, usage in peaks.items():
        print(f"  {name:<16}{usage.describe()}")


if __name__ == "__main__":
    main()
