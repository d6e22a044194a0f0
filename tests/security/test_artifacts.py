"""Stored models are loaded without executing code: a pickle planted as an artifact is refused."""

import io
import pickle
from pathlib import Path

import pytest
import torch
from django.core.files.base import ContentFile
from django.test import override_settings
from safetensors.torch import save as save_tensors

from recommendations import artifacts
from recommendations.models import ModelStatus, ModelVersion


class Exploit:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def planted_payloads(sentinel: Path) -> dict[str, bytes]:
    torch_file = io.BytesIO()
    torch.save({"weights": torch.zeros(2), "payload": Exploit(sentinel)}, torch_file)
    return {"raw pickle": pickle.dumps(Exploit(sentinel)), "torch.save zip": torch_file.getvalue()}


def test_the_planted_payloads_do_run_code_when_unpickled(tmp_path):
    """The control: these payloads are live, so refusing them below means something."""
    sentinel = tmp_path / "pwned"
    pickle.loads(planted_payloads(sentinel)["raw pickle"])
    assert sentinel.exists()
    sentinel.unlink()
    torch.load(io.BytesIO(planted_payloads(sentinel)["torch.save zip"]), weights_only=False)
    assert sentinel.exists()


@pytest.mark.django_db
def test_a_planted_pickle_artifact_is_refused_without_running(tmp_path):
    sentinel = tmp_path / "pwned"
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        for name, payload in planted_payloads(sentinel).items():
            version = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=2)
            version.artifact.save(f"two_tower_v{version.pk}.safetensors", ContentFile(payload))
            with pytest.raises(ValueError, match="not safetensors|Not a stored two-tower model"):
                artifacts.load(version)
            assert not sentinel.exists(), f"loading the {name} artifact ran code"


def test_a_safetensors_file_of_something_else_is_refused():
    other = save_tensors({"weights": torch.zeros(2)}, metadata={"format": "someone-elses-model"})
    with pytest.raises(ValueError, match="Not a stored two-tower model"):
        artifacts.loads(other)
