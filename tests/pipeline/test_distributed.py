"""Training on several processes through the Django layer, on CPU (gloo): the setting the
`gpu` queue's task follows, and `torchrun ... manage.py train_model`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from recommendations import pipeline, training
from recommendations.models import ModelStatus, ModelVersion
from tests.pipeline.data import tiny_settings
from tests.pipeline.test_training import own_store_share

ROOT = Path(__file__).resolve().parents[2]


def stored_files() -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_training_processes_setting_trains_with_a_spawned_follower(shop):
    with override_settings(RECOMMENDATIONS=tiny_settings(TRAINING_PROCESSES=2)):
        result = pipeline.retrain()
    version = result.version
    assert result.activated and version.config["processes"] == 2
    assert [p.name for p in stored_files()] == [Path(version.artifact.name).name]
    assert own_store_share(shop, version) > 0.6  # the single-process retrain test's bar


def test_torchrun_runs_the_command_on_two_ranks_and_rank_0_alone_writes(committed_shop, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.pipeline.worker_settings",  # this run's test database
        "PIPELINE_TEST_DB": connection.settings_dict["NAME"],
        "MEDIA_ROOT": str(tmp_path),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*command, "manage.py", "train_model", "--epochs", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = ModelVersion.objects.get()
    assert version.status == ModelStatus.READY and version.config["processes"] == 2
    # Rank 0 alone logs progress and reports; rank 1 says what it did.
    assert result.stdout.count("epoch 2/2") == 1
    assert result.stdout.count(f"Model version {version.pk} is trained, not embedded") == 1
    assert "Rank 1 of 2: trained in step with rank 0" in result.stdout
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [Path(version.artifact.name).name]


@pytest.mark.parametrize(
    "value, device, expected",
    [
        ("auto", "cpu", 1),
        ("auto", "cuda:1", 1),
        (2, "cpu", 2),
        (0, "cpu", "whole number"),
        ("4", "cpu", "whole"),
    ],
)
def test_training_processes_setting(value, device, expected):
    with override_settings(RECOMMENDATIONS=tiny_settings(TRAINING_PROCESSES=value)):
        if isinstance(expected, int):
            assert training.training_processes(device) == expected
        else:
            with pytest.raises(ValueError, match=expected):
                training.training_processes(device)
