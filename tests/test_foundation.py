"""The skeleton: database, settings object, drop-in contract, start-up errors, migrations."""

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from recommendations import adapters
from recommendations.conf import DEFAULTS, rec_settings
from tests.hostapp.adapters import HOST_SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run_python("manage.py", *args, **env)


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Python in a new process, in the checkout, as a command line would run it."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_database_is_postgres_with_pgvector():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::vector <#> '[1,0,0]'::vector")
        (negative_inner_product,) = cursor.fetchone()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)
    assert negative_inner_product == -1


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_settings_object_has_defaults_and_follows_override_settings():
    assert rec_settings.SESSION_GAP_MINUTES == 30
    with override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "SESSION_GAP_MINUTES": 10}):
        assert rec_settings.SESSION_GAP_MINUTES == 10
    assert rec_settings.SESSION_GAP_MINUTES == 30


def test_every_dict_setting_is_laid_over_its_default():
    """A host that sets one weight or one rule keeps the others: one rule for every dict."""
    from recommendations.serving.rules import rules_for

    configured = {
        "PRODUCT_MODEL": "shop.Product",
        "EVENT_WEIGHTS": {"purchase": 10},
        "RATING_WEIGHTS": {5: 8},
        "TRAINING": {"epochs": 3},
        "API_THROTTLE_RATES": {"anonymous": None},
        "SERVING_RULES": {"default": {"limit": 6}, "similar": {"max_per_store": 2}},
    }
    with override_settings(RECOMMENDATIONS=configured):
        assert rec_settings.EVENT_WEIGHTS == {
            "view": 1.0,
            "click": 1.0,
            "add_to_cart": 3.0,
            "favourite": 3.0,
            "purchase": 10,
            "rating": 0.0,
        }
        assert rec_settings.RATING_WEIGHTS == {1: -1.0, 2: 0.0, 3: 1.0, 4: 3.0, 5: 8}
        assert rec_settings.TRAINING == {"epochs": 3}
        assert rec_settings.API_THROTTLE_RATES == {
            "api_key": "6000/minute",
            "user": "600/minute",
            "anonymous": None,
        }
        rules = rec_settings.SERVING_RULES
        assert rules["default"] == {**DEFAULTS["SERVING_RULES"]["default"], "limit": 6}
        assert rules["similar"] == {"min_relative_score": 0.5, "max_per_store": 2}  # rule by rule
        assert rules["search"] == DEFAULTS["SERVING_RULES"]["search"]
        assert rules_for("similar") == {
            **DEFAULTS["SERVING_RULES"]["default"],
            "limit": 6,
            "min_relative_score": 0.5,
            "max_per_store": 2,
        }
    assert rec_settings.EVENT_WEIGHTS["purchase"] == 5.0


@pytest.mark.parametrize("name", ["SCORE_INDEX", "SIMILAR_INDEX"])
def test_a_setting_with_choices_rejects_other_values(name):
    with override_settings(RECOMMENDATIONS={name: "annoy"}):
        with pytest.raises(ImproperlyConfigured, match="'annoy' is not one of: auto, hnsw, ivfflat"):
            getattr(rec_settings, name)


def test_unknown_key_is_rejected_with_the_valid_keys():
    with override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "SESION_GAP": 1}):
        with pytest.raises(ImproperlyConfigured, match="Unknown key.*SESION_GAP.*Valid keys"):
            adapters.validate_configuration()


def test_missing_product_model_names_the_setting():
    with override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Produce"}):
        with pytest.raises(ImproperlyConfigured, match=r"PRODUCT_MODEL.*'shop.Produce'.*not installed"):
            adapters.validate_configuration()


def test_adapter_naming_absent_fields_is_reported():
    with override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "hostapp.Gadget"}):
        with pytest.raises(ImproperlyConfigured, match="title_field = 'title'"):
            adapters.validate_configuration()


class CardValuesWithoutBuilder(adapters.ProductAdapter):
    card_values = ("title", "store__name")


class CardValuesOfAbsentFields(adapters.ProductAdapter):
    card_values = ("title", "colour", "store__name")

    def card_from_values(self, values):
        return {}


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("CardValuesWithoutBuilder", "card_values is set.*define card_from_values"),
        ("CardValuesOfAbsentFields", r"CardValuesOfAbsentFields.card_values: 'colour'"),
    ],
)
def test_card_values_need_their_builder_and_real_fields(adapter, message):
    settings = {"PRODUCT_MODEL": "shop.Product", "PRODUCT_ADAPTER": f"tests.test_foundation.{adapter}"}
    with override_settings(RECOMMENDATIONS=settings):
        with pytest.raises(ImproperlyConfigured, match=message):
            adapters.validate_configuration()


class CardValuesOfAbsentFieldsWithoutBuilder(adapters.ProductAdapter):
    card_values = ("title", "colour")


def test_every_adapter_problem_is_named_in_one_error():
    settings = {
        "PRODUCT_MODEL": "shop.Product",
        "PRODUCT_ADAPTER": "tests.test_foundation.CardValuesOfAbsentFieldsWithoutBuilder",
    }
    with override_settings(RECOMMENDATIONS=settings):
        with pytest.raises(ImproperlyConfigured) as raised:
            adapters.validate_configuration()
    builder, fields = str(raised.value).splitlines()
    assert "define card_from_values" in builder and "card_values: 'colour'" in fields


def test_adapter_path_that_cannot_be_imported():
    settings = {"PRODUCT_MODEL": "shop.Product", "PRODUCT_ADAPTER": "nowhere.Adapter"}
    with override_settings(RECOMMENDATIONS=settings):
        with pytest.raises(ImproperlyConfigured, match="nowhere.Adapter.*cannot be imported"):
            adapters.validate_configuration()


@pytest.mark.django_db
def test_second_host_app_with_other_names_and_uuid_keys():
    from tests.hostapp.models import Gadget, Section, Seller

    section = Section.objects.create(label="Audio")
    seller = Seller.objects.create(shop_name="Sound Co", about="Headphones and speakers")
    live = Gadget.objects.create(
        name="Wireless earbuds",
        blurb="Noise cancelling",
        section=section,
        seller=seller,
        maker="Acme",
        cost_cents=4999,
        on_hand=3,
    )
    Gadget.objects.create(name="Sold out", section=section, cost_cents=100, on_hand=0)
    Gadget.objects.create(name="Hidden", section=section, cost_cents=100, on_hand=5, published=False)

    with override_settings(RECOMMENDATIONS=HOST_SETTINGS):
        adapters.validate_configuration()
        assert adapters.get_product_model() is Gadget
        adapter = adapters.get_product_adapter()
        record = adapter.to_record(live)
        assert record.id == str(live.code) == adapters.key_of(live) == adapters.key_of(live.code)
        assert record.title == "Wireless earbuds"
        assert record.text == "Wireless earbuds\nNoise cancelling"
        assert record.category_path == ("Audio",)
        assert record.store_id == str(seller.pk)
        assert record.brand == "Acme"
        assert record.price == pytest.approx(49.99)
        assert record.in_stock and record.is_active
        assert list(adapter.available_queryset()) == [live]
        assert list(adapter.by_keys([record.id])) == [live]
        store = adapters.get_store_adapter().to_record(seller)
        assert store.name == "Sound Co" and store.rating is None


def test_engine_does_not_import_the_host_shop():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "recommendations").rglob("*.py")
        if re.search(r"^\s*(from|import) shop\b", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_engine_migrations_never_reference_host_models():
    text = "\n".join(p.read_text() for p in (ROOT / "recommendations" / "migrations").glob("*.py"))
    assert "shop." not in text and "'shop'" not in text and '"shop"' not in text


@pytest.mark.parametrize(
    ("settings_module", "message"),
    [
        ("tests.config.unknown_key", "Unknown key(s) in settings.RECOMMENDATIONS: PRODUCT_MODLE"),
        ("tests.config.missing_model", "refers to model 'shop.Produce', which is not installed"),
        (
            "tests.config.bad_signal_processor",
            "settings.RECOMMENDATIONS['SIGNAL_PROCESSOR'] = "
            "'recommendations.indexing.OnCommitSignalProcesor' cannot be imported",
        ),
        (
            "tests.config.plain_store",
            "PlainStoreListingAdapter.store_field = 'category' is not a ForeignKey",
        ),
        (
            "tests.config.long_key",
            "hostapp.Bundle.code, the primary key, may hold more than the 64 characters the engine "
            "keeps for a key. Give it max_length=64 or less",
        ),
        (
            "tests.config.default_store_adapter",
            "StoreAdapter.description_field = 'description'; StoreAdapter.rating_field = 'rating'. Set "
            "these attributes to your model's field names (or None) in your adapter. RECOMMENDATIONS['STORE_ADAPTER'] names "
            "none of yours, so StoreAdapter reads its default names: subclass "
            "recommendations.adapters.StoreAdapter and name the subclass there",
        ),
        (
            "tests.config.missing_apps",
            "'django.contrib.postgres' is not in INSTALLED_APPS, and search uses its lookups",
        ),
    ],
)
def test_bad_configuration_fails_at_start_up_with_one_clear_message(settings_module, message):
    result = run_manage("check", DJANGO_SETTINGS_MODULE=settings_module)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_url_fails_at_start_up():
    result = run_manage("check", DATABASE_URL="postgres://shop@127.0.0.1:1/shop")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (message,) = [line for line in result.stderr.splitlines() if "cannot be reached" in line]
    assert "DATABASE_URL" in message and message.rstrip().endswith(".")
    assert "Start that server or fix DATABASE_URL" in message  # psycopg's own lines are joined into it


def test_production_mode_requires_a_secret_key():
    result = run_manage("check", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is false" in result.stderr


def test_production_mode_requires_the_site_host_names():
    result = run_manage("check", DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set and DEBUG is false" in result.stderr and "Traceback" not in result.stderr


def test_djangos_own_errors_are_logged_in_production_too():
    """Django prints them only in DEBUG by default (and mails ADMINS otherwise): a refused
    Host header or a 500 would leave no trace in a production log."""
    request = "from django.test import Client; print(Client().get('/', HTTP_HOST='evil.example').status_code)"
    production = {"DEBUG": "false", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "shop.example.com"}
    result = run_manage("shell", "-c", request, **production)
    assert result.stdout.strip().endswith("400"), result.stderr
    assert "Invalid HTTP_HOST header: 'evil.example'" in result.stderr


@pytest.mark.django_db
def test_the_health_check_answers_while_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_embedded_shared_buffers_is_a_quarter_of_memory_within_bounds_or_as_configured():
    from shop.database import SHARED_BUFFERS_MB, shared_buffers

    assert shared_buffers(" 512MB ") == "512MB"
    default = int(shared_buffers().removesuffix("MB"))
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert default == max(SHARED_BUFFERS_MB[0], min(SHARED_BUFFERS_MB[1], memory_mb // 4))
    with pytest.raises(ImproperlyConfigured, match="a size such as 512MB"):
        shared_buffers("lots")


def test_a_runtime_folder_for_the_socket_must_be_private(tmp_path, monkeypatch):
    from shop.database import _runtime_dir

    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    deep = tmp_path / ("deep-" * 20) / "pg"
    assert _runtime_dir(Path("/srv/shop/.data/pg")) == Path("/srv/shop/.data/run")  # beside the data
    short = _runtime_dir(deep)
    assert short.parent == tmp_path and short.stat().st_mode & 0o777 == 0o700  # made private
    short.chmod(0o777)  # as another user of the machine could have made it
    with pytest.raises(ImproperlyConfigured, match="is not a folder of this user that only it may write to"):
        _runtime_dir(deep)


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="the tests run on another server")
def test_asking_about_the_embedded_server_prints_no_warning_without_a_runtime_folder(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # root in a container
    status = run_manage("embedded_db", "status")
    assert status.returncode == 0 and status.stdout.startswith("running"), status.stderr
    assert status.stderr == ""  # not platformdirs' RuntimeDirWarning


def test_migrate_on_a_fresh_embedded_server_creates_the_extensions(server_dir, monkeypatch):
    # A checkout deep in a home folder: the data folder's path is too long for a socket.
    data_dir = server_dir / ("deep-" * 20) / "pg"
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    env = {
        "EMBEDDED_POSTGRES_DIR": str(data_dir),
        "EMBEDDED_POSTGRES_DB": "fresh",
        "EMBEDDED_POSTGRES_SHARED_BUFFERS": "192MB",
    }
    try:
        migrate = run_manage("migrate", "--no-input", **env)
        assert migrate.returncode == 0, migrate.stderr
        shell = run_manage("dbshell", "--", "-Atc", "SELECT extname FROM pg_extension ORDER BY 1", **env)
        assert shell.stdout.split() == ["pg_trgm", "plpgsql", "unaccent", "vector"]
        # The fresh server was restarted with its buffer cache sized as configured.
        shell = run_manage("dbshell", "--", "-Atc", "SHOW shared_buffers", **env)
        assert shell.stdout.strip() == "192MB"
        status = run_manage("embedded_db", "status", **env)
        assert status.stdout.startswith("running") and f"data in {data_dir}" in status.stdout, status.stderr
    finally:
        stop = run_manage("embedded_db", "stop", **env)
    assert stop.returncode == 0, stop.stderr
    # Asking about a stopped server, or stopping it again, does not start it.
    status = run_manage("embedded_db", "status", **env)
    assert status.stdout.strip() == f"stopped, data in {data_dir}", status.stderr
    again = run_manage("embedded_db", "stop", **env)
    assert "is not running" in again.stdout and not (data_dir / "postmaster.pid").exists()
    # A mistyped folder is not initialised as a new server.
    typo = run_manage("embedded_db", "status", **{**env, "EMBEDDED_POSTGRES_DIR": str(server_dir / "typo")})
    assert "There is no embedded server" in typo.stderr and not (server_dir / "typo").exists()


@pytest.mark.django_db
def test_statements_a_connection_repeats_are_prepared_on_the_server():
    from shop.database import PREPARE_THRESHOLD

    connection.ensure_connection()
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    sql = "SELECT %s::int + 1 -- prepared statement probe"
    with connection.cursor() as cursor:
        for value in range(PREPARE_THRESHOLD + 1):
            cursor.execute(sql, [value])
            assert cursor.fetchone() == (value + 1,)
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%statement probe%"]
        )
        assert cursor.fetchone() == (1,)


def test_prepared_statements_can_be_turned_off_for_a_pooler():
    from shop.database import _with_connection_options

    assert _with_connection_options({}, {})["OPTIONS"] == {
        "server_side_binding": True,
        "prepare_threshold": 5,
    }
    assert _with_connection_options({}, {"DATABASE_PREPARED_STATEMENTS": "false"})["OPTIONS"] == {}
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PREPARED_STATEMENTS must be true or false"):
        _with_connection_options({}, {"DATABASE_PREPARED_STATEMENTS": "sometimes"})


@pytest.mark.parametrize(
    ("backend", "options", "cache_seconds", "warned"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", {}, 60, True),
        ("django.core.cache.backends.locmem.LocMemCache", {"MAX_ENTRIES": 5000}, 60, False),
        ("django.core.cache.backends.locmem.LocMemCache", {}, 0, False),
        ("django.core.cache.backends.redis.RedisCache", {}, 60, False),
    ],
)
def test_a_serving_cache_too_small_to_keep_the_lists_is_reported(
    backend, options, cache_seconds, warned, settings
):
    from recommendations.checks import check_serving_cache

    redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
    settings.CACHES = {"default": redis, "lists": {"BACKEND": backend, "LOCATION": "x", "OPTIONS": options}}
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_CACHE_SECONDS": cache_seconds,
        "SERVING_CACHE_ALIAS": "lists",
    }
    found = check_serving_cache()
    assert [message.id for message in found] == (["recommendations.W001"] if warned else [])
    if warned:
        assert "'lists' cache" in found[0].msg and "300 entries" in found[0].msg
        assert "CACHES['lists']['OPTIONS']" in found[0].hint


def test_a_serving_cache_alias_missing_from_caches_is_an_error(settings):
    from recommendations.checks import check_serving_cache

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_CACHE_ALIAS": "lists"}
    (found,) = check_serving_cache()
    assert found.id == "recommendations.E001" and "'lists', which is not in settings.CACHES" in found.msg


def test_serving_rules_serving_cannot_apply_are_errors(settings):
    from recommendations.checks import check_serving_rules

    assert check_serving_rules() == []
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {
            "default": {"limit": 0, "max_per_store": None},
            "similar": {"exclude_bought": True},
        },
    }
    found = check_serving_rules()
    assert {message.id for message in found} == {"recommendations.E002"}
    assert [message.msg for message in found] == [
        "RECOMMENDATIONS['SERVING_RULES']: default: limit must be an integer from 1 to 100, not 0.",
        "RECOMMENDATIONS['SERVING_RULES']: similar: 'exclude_bought' is not a rule; use one of limit, "
        "exclude_purchased, max_per_store, max_per_category, mmr_lambda, min_relative_score.",
    ]


def test_boost_rules_serving_cannot_apply_are_errors(settings):
    from recommendations.checks import check_boost_rules

    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "BOOST_RULES": [
            {
                "filter": {"brand": "Acme", "store__name": "Shop"},
                "factor": 1.5,
                "types": ["for_you", "search"],
            },
            {"filter": {"price__lt": 10}, "factor": 0},
        ],
    }
    assert check_boost_rules() == []
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "BOOST_RULES": [
            {"filter": {"no_such_field": 1}, "factor": "x", "types": ["for_yuo"]},
            {"filter": {"price": "cheap"}, "factor": -1, "type": ["for_you"]},
            {"factor": 2, "types": "for_you"},
        ],
    }
    found = check_boost_rules()
    assert {message.id for message in found} == {"recommendations.E004"}
    assert "ORM lookups on the product model" in found[0].hint
    messages = [message.msg.removeprefix("RECOMMENDATIONS['BOOST_RULES']: ") for message in found]
    assert messages[0].startswith(
        "rule 1: filter {'no_such_field': 1} is not a lookup on shop.Product: Cannot resolve keyword "
        "'no_such_field' into field. Choices are: brand, "
    )
    assert messages[1:] == [
        "rule 1: factor must be a number >= 0 (above 1 boosts, below 1 buries, 0 removes), not 'x'.",
        "rule 1: 'for_yuo' is not a list of products; use one of bought_together, buy_again, for_you, "
        "new_arrivals, recently_viewed, rerank, search, similar, store_products, trending.",
        "rule 2: 'type' is not part of a rule; use filter, factor, types.",
        "rule 2: filter {'price': 'cheap'} is not a lookup on shop.Product: “cheap” value must be a decimal number.",
        "rule 2: factor must be a number >= 0 (above 1 boosts, below 1 buries, 0 removes), not -1.",
        "rule 3: filter must be a dict of lookups on shop.Product, not None.",
        "rule 3: types must be a list of recommendation types, not 'for_you'.",
    ]


def test_weights_training_cannot_use_are_errors(settings):
    from recommendations.checks import check_weights

    assert check_weights() == []
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "EVENT_WEIGHTS": {"purchase": 10, "purchace": 3, "view": "high"},
        "RATING_WEIGHTS": {6: 1.0, 1: None},
    }
    found = check_weights()
    assert {message.id for message in found} == {"recommendations.E005"}
    assert "the others keep their defaults" in found[0].hint
    assert [message.msg for message in found] == [
        "RECOMMENDATIONS['EVENT_WEIGHTS']: 'view': the weight must be a number, not 'high'.",
        "RECOMMENDATIONS['EVENT_WEIGHTS']: 'purchace' is not an event type; use one of 'view', 'click', "
        "'add_to_cart', 'remove_from_cart', 'purchase', 'search', 'rating', 'favourite', 'store_view', "
        "'campaign_view', 'campaign_click', 'impression'.",
        "RECOMMENDATIONS['RATING_WEIGHTS']: 1: the weight must be a number, not None.",
        "RECOMMENDATIONS['RATING_WEIGHTS']: 6 is not a rating; use one of 1, 2, 3, 4, 5.",
    ]


def test_training_settings_no_retrain_can_use_are_errors(settings):
    """Refused by `manage.py check`, not first by the nightly retrain."""
    from recommendations.checks import check_training

    assert check_training() == []
    # What depends on the machine is left to where training runs: web machines have no GPU.
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "DEVICE": "cuda:1", "TRAINING_PROCESSES": 8}
    assert check_training() == []
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "TRAINING": {"epohcs": 3, "lr": -1, "device": "tpu"},
        "DEVICE": "gpu",
        "TRAINING_PROCESSES": 0,
    }
    found = check_training()
    assert {message.id for message in found} == {"recommendations.E006"}
    assert "recommendations/learning/config.py" in found[0].hint
    assert [message.msg for message in found] == [
        "RECOMMENDATIONS['TRAINING']: 'epohcs' is not a training option (use one of batch_size, device, dim, "
        "distributed, dropout, epochs, eval_every, ffn_dim, full_softmax_max_items, grad_clip, id_dropout, "
        "loss, lr, lr_schedule, max_len, max_seconds, metric_k, min_epochs, n_heads, n_layers, n_negatives, "
        "num_threads, patience, seed, softmax_chunk, use_item_features, use_user_features, validation_users, "
        "warmup_steps, weight_decay)",
        "RECOMMENDATIONS['TRAINING']: lr must be a number > 0, not -1",
        "RECOMMENDATIONS['TRAINING']: device must be null, 'auto', 'cpu', 'cuda' or 'cuda:N' (a GPU's number), "
        "not 'tpu'",
        "RECOMMENDATIONS['DEVICE']: The device is 'gpu': use 'auto', 'cpu', 'cuda' or 'cuda:N' (a GPU's number).",
        "RECOMMENDATIONS['TRAINING_PROCESSES']: 0 is not a number of processes; use \"auto\" (one per GPU) or a "
        "whole number >= 1.",
    ]


def test_a_model_too_wide_for_pgvector_indexes_is_a_settings_error(settings):
    from recommendations.checks import check_training

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "TRAINING": {"dim": 1999}}
    assert check_training() == []
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "TRAINING": {"dim": 2048}}
    assert [message.msg for message in check_training()] == [
        "RECOMMENDATIONS['TRAINING']: dim must be a whole number from 1 to 1999 (pgvector indexes vectors "
        "of at most 2,000 dimensions, and products' score vectors add the bias to them: choose a smaller "
        "dim), not 2048"
    ]


def test_checking_the_settings_loads_no_torch():
    """Every manage.py command runs the checks: loading torch would slow each by seconds."""
    code = "import django, sys; django.setup(); from django.core import checks; checks.run_checks(); print('torch' in sys.modules)"
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_throttle_rates_the_api_cannot_apply_are_errors(settings):
    from recommendations.checks import check_throttle_rates

    assert check_throttle_rates() == []
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "API_THROTTLE_RATES": {"anonymous": None}}
    assert check_throttle_rates() == []  # the kinds left out keep their defaults
    # Every form DRF reads: only the period's first letter counts.
    forms = {"api_key": "6000/minutes", "user": "100/hours", "anonymous": "10/d"}
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "API_THROTTLE_RATES": forms}
    assert check_throttle_rates() == []
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "API_THROTTLE_RATES": {"users": "60/minute", "api_key": "600 per minute", "anonymous": "10/week"},
    }
    found = check_throttle_rates()
    assert {message.id for message in found} == {"recommendations.E003"}
    assert [message.msg for message in found] == [
        "RECOMMENDATIONS['API_THROTTLE_RATES']: api_key: '600 per minute' is not a rate; give N/second, "
        'N/minute, N/hour or N/day (e.g. "600/minute"), or None for no limit.',
        "RECOMMENDATIONS['API_THROTTLE_RATES']: anonymous: '10/week' is not a rate; give N/second, "
        'N/minute, N/hour or N/day (e.g. "600/minute"), or None for no limit.',
        "RECOMMENDATIONS['API_THROTTLE_RATES']: 'users' is not a kind of client; use one of api_key, user, anonymous.",
    ]


def test_the_demo_shop_passes_its_own_checks():
    result = run_manage("check", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr


def test_the_wsgi_entry_point_freezes_start_up_and_collects_fully_less_often():
    # Full garbage collections then scan what requests leave, not Django and every view.
    code = (
        "import gc, sys, shop.wsgi; "
        "print(gc.get_threshold()[2], gc.get_freeze_count(), 'recommendations.api.recommendations' in sys.modules)"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    full_collection_threshold, frozen, views_loaded = result.stdout.split()[-3:]
    assert int(frozen) > 50_000 and views_loaded == "True"
    assert full_collection_threshold == "100"  # full collections a tenth as often as by default


def test_the_app_installs_as_a_package_of_its_own(tmp_path):
    """`pip install <checkout>` gives a host the `recommendations` package with its templates,
    static files, migrations and type information, and nothing of the demo shop."""
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"
    source.mkdir()
    (source / "pyproject.toml").write_text((root / "pyproject.toml").read_text())
    shutil.copytree(
        root / "recommendations", source / "recommendations", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("shop_recommendations-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("shop_recommendations-")}
    assert packages == {"recommendations"}
    for expected in (
        "recommendations/py.typed",
        "recommendations/migrations/0001_initial.py",
        "recommendations/templates/recommendations/products.html",
        "recommendations/static/recommendations/beacon.js",
    ):
        assert expected in names, expected
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert "Requires-Dist: Django<6,>=5.2" in metadata and "Requires-Dist: torch>=2.2" in metadata


@pytest.mark.parametrize(("media_root", "warned"), [("", True), ("media", True), ("/srv/shop/media", False)])
def test_a_model_files_folder_relative_to_where_a_process_starts_is_reported(media_root, warned, settings):
    from recommendations.checks import check_model_files_folder

    settings.MEDIA_ROOT = media_root
    found = check_model_files_folder()
    assert [message.id for message in found] == (["recommendations.W002"] if warned else [])


def test_a_project_without_a_celery_broker_is_told_so(settings, monkeypatch):
    from celery import current_app

    from recommendations.checks import check_celery_broker

    assert check_celery_broker() == []  # the test settings name one
    monkeypatch.setattr(current_app.conf, "broker_url", None)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery reads it before its settings
    del settings.CELERY_BROKER_URL
    (warning,) = check_celery_broker()
    assert warning.id == "recommendations.W003" and "CELERY_BROKER_URL" in warning.hint


class CategoryTreeAdapter(adapters.ProductAdapter):
    category_parent_field = "parent"


class CategoryParentNotATree(adapters.ProductAdapter):
    category_parent_field = "slug"


@pytest.mark.parametrize(
    ("adapter", "warned"),
    [("recommendations.adapters.ProductAdapter", True), ("tests.test_foundation.CategoryTreeAdapter", False)],
)
def test_a_category_tree_whose_parent_is_not_named_is_reported(adapter, warned):
    from recommendations.checks import check_category_tree

    with override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "PRODUCT_ADAPTER": adapter}):
        found = check_category_tree()
    hint = "Set category_parent_field = 'parent' in your product adapter."
    assert [(message.id, message.hint) for message in found] == (
        [("recommendations.W004", hint)] if warned else []
    )


def test_a_category_parent_field_must_point_at_the_category_model():
    settings = {
        "PRODUCT_MODEL": "shop.Product",
        "PRODUCT_ADAPTER": "tests.test_foundation.CategoryParentNotATree",
    }
    with override_settings(RECOMMENDATIONS=settings):
        with pytest.raises(ImproperlyConfigured, match="category_parent_field = 'slug'"):
            adapters.validate_configuration()


def test_every_test_the_docs_cite_exists():
    """The docs name the test that fails when a protection breaks; a renamed or deleted test
    would leave them citing nothing. `tests/x.py::test_a, ::test_b` cites both in that file."""
    citation = re.compile(r"(tests/[\w/]+\.py)?::(\w+)|(tests/[\w/]+\.py)")
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            module = None
            for found in citation.finditer(line):
                named_module, test, bare_module = found.groups()
                module = named_module or bare_module or module
                where = f"{doc.relative_to(ROOT)}:{number}"
                if not module:
                    continue  # a "::" that follows no test file (SQL's ::vector cast)
                path = ROOT / module
                if not path.exists():
                    missing.append(f"{where} {module}")
                elif test and test not in _defined_names(path):
                    missing.append(f"{where} {module}::{test}")
    assert not missing, "The docs cite tests that do not exist:\n" + "\n".join(missing)


def _defined_names(path: Path) -> set[str]:
    nodes = ast.walk(ast.parse(path.read_text()))
    return {node.name for node in nodes if isinstance(node, ast.FunctionDef | ast.ClassDef)}
