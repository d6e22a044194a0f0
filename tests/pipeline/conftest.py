import pytest
from django.test import override_settings

from tests.pipeline.data import make_shop, tiny_settings


@pytest.fixture(autouse=True)
def tiny_training(settings, tmp_path):
    """Every pipeline test trains tiny models and stores artifacts in a temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    with override_settings(RECOMMENDATIONS=tiny_settings()):
        yield


@pytest.fixture
def shop(db):
    return make_shop()


@pytest.fixture
def committed_shop(transactional_db):
    """A generated shop committed to the database, so a worker process sees it."""
    return make_shop()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker process on this run's test database (module-wide)."""
    from tests.pipeline.worker import Worker, configure_broker

    base = tmp_path_factory.mktemp("worker")
    with django_db_blocker.unblock():
        process = Worker(configure_broker(base / "broker"), base / "worker.log", base / "media").start()
    yield process
    process.stop()
