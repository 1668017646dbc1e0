"""The `painchain` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

log = logging.getLogger("painchain")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic narrates every context it opens (health checks included); our migrate module
    # logs the one line that matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def cmd_backend(args: argparse.Namespace) -> int:
    import uvicorn

    from painchain_pipelines.backend.app import create_app
    from painchain_pipelines.backend.config import BackendSettings

    settings = BackendSettings.from_env(bind_host=args.host)
    try:
        app = create_app(settings)
    except Exception as exc:
        log.error("cannot start the backend on %s: %s", _safe_url(settings.database_url), exc)
        return 1
    log.info("PainChain API on http://%s:%s/api (database %s)", args.host, args.port,
             _safe_url(settings.database_url))
    if args.host in ("0.0.0.0", "::") and not os.environ.get("PAINCHAIN_ALLOWED_HOSTS"):
        log.warning("serving on every interface, but answering only requests addressed to this machine's loopback "
                    "names: set PAINCHAIN_ALLOWED_HOSTS to the name(s) people use to reach it (and "
                    "PAINCHAIN_API_TOKEN)")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was installed before it: make that one a no-op so a requested stop exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    _tune_gc_for_serving()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                access_log=args.access_log)
    log.info("PainChain API stopped")
    return 0


def _tune_gc_for_serving() -> None:
    """A batch of 1,000 events allocates ~100,000 objects: with the default thresholds the
    collector ran ~25 times per batch and walked every module loaded at start, 15 ms of a 75 ms
    batch (bench.backend_ingest). Freezing the start-up heap and collecting the young generation
    less often cut that to ~3 ms; cycles are still collected."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from painchain_pipelines.backend.app import prepare_sqlite_file
    from painchain_pipelines.backend.config import BackendSettings
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.migrate import upgrade

    settings = BackendSettings.from_env()
    prepare_sqlite_file(settings)
    db = Database(settings.database_url)
    try:
        revision = upgrade(db, args.revision)
    finally:
        db.dispose()
    print(f"database {db.safe_url} is at revision {revision}")
    return 0


def cmd_db_prune(args: argparse.Namespace) -> int:
    from painchain_pipelines.backend.config import BackendSettings
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.migrate import current_revision, head_revision
    from painchain_pipelines.backend.schemas.common import iso_from_ms
    from painchain_pipelines.backend.services.retention import count_prunable, cutoff_for, prune_events

    settings = BackendSettings.from_env()
    days = args.days or settings.retention_days
    if days is None:
        print("error: how many days of events to keep? Give --days N or set PAINCHAIN_RETENTION_DAYS",
              file=sys.stderr)
        return 2
    # An operator's command: no API time budgets (each batch is small anyway).
    db = Database(settings.database_url, read_timeout=0, write_timeout=0)
    try:
        if current_revision(db) != head_revision():
            print(f"error: database {db.safe_url} is not at the latest schema: run `painchain db upgrade` first",
                  file=sys.stderr)
            return 1
        cutoff = cutoff_for(days)
        if args.dry_run:
            print(f"would remove {count_prunable(db, cutoff)} events older than {iso_from_ms(cutoff)} "
                  f"({days} days) from {db.safe_url}")
            return 0
        stats = prune_events(db, cutoff)
    finally:
        db.dispose()
    print(f"removed {stats.removed} events older than {iso_from_ms(cutoff)} ({days} days) from {db.safe_url} "
          f"in {stats.batches} batches, the longest {stats.max_batch_ms:.0f} ms")
    return 0


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def cmd_token_create(args: argparse.Namespace) -> int:
    from painchain_pipelines.backend.app import prepare_sqlite_file
    from painchain_pipelines.backend.auth import TENANT_ID_PATTERN, hash_token, new_token
    from painchain_pipelines.backend.config import BackendSettings
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.migrate import upgrade
    from painchain_pipelines.backend.models import ApiToken

    if not TENANT_ID_PATTERN.match(args.tenant):
        print("error: --tenant must be 1-128 characters of letters, digits and . _ : @ -", file=sys.stderr)
        return 2
    settings = BackendSettings.from_env()
    prepare_sqlite_file(settings)
    db = Database(settings.database_url)
    upgrade(db)
    token = new_token()
    with db.write() as session:
        session.add(ApiToken(name=args.name, token_sha256=hash_token(token), tenant_id=args.tenant))
    db.dispose()
    # Printed once, never stored in clear.
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from painchain_pipelines.backend.config import BackendSettings
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.models import ApiToken

    db = Database(BackendSettings.from_env().database_url)
    with db.read() as session:
        for row in session.scalars(select(ApiToken).order_by(ApiToken.id)):
            print(f"{row.id}\t{row.tenant_id}\t{row.name}\t{row.created_at.isoformat()}")
    db.dispose()
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from painchain_pipelines.backend.config import BackendSettings
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.models import ApiToken

    db = Database(BackendSettings.from_env().database_url)
    with db.write() as session:
        row = session.get(ApiToken, args.id)
        if row is None:
            print(f"error: no token with id {args.id}", file=sys.stderr)
            return 1
        session.delete(row)
    db.dispose()
    print(f"revoked token {args.id} (takes effect within 30 s on running backends)")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from painchain_pipelines.up import run

    return run(args.host, args.port, args.dagster_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="painchain", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    backend = sub.add_parser("backend", help="serve the API (and web UI)")
    backend.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    backend.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    backend.add_argument("--access-log", action="store_true", help="log every request")
    backend.set_defaults(func=cmd_backend)

    up = sub.add_parser("up", help="run everything locally: the backend and Dagster (webserver + daemon)")
    up.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="PainChain UI/API port (default 8000)")
    up.add_argument("--dagster-port", type=int, default=3000, help="Dagster UI port (default 3000)")
    up.set_defaults(func=cmd_up)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply migrations (PAINCHAIN_DATABASE_URL)")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    db_prune = db.add_parser("prune", help="delete events older than N days (PAINCHAIN_DATABASE_URL)")
    db_prune.add_argument("--days", type=_positive_int,
                          help="keep this many days of events (default: PAINCHAIN_RETENTION_DAYS)")
    db_prune.add_argument("--dry-run", action="store_true", help="only count the events it would remove")
    db_prune.set_defaults(func=cmd_db_prune)

    token = sub.add_parser("token", help="tenant API tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="create a token for a tenant and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="api token")
    create.set_defaults(func=cmd_token_create)
    token.add_parser("list", help="list tokens (never their values)").set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    from painchain_pipelines.backend.config import SettingsError

    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"painchain: error: {exc}", file=sys.stderr)
        return 2
