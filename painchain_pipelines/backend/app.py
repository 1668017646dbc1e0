"""The FastAPI application: `create_app()` wires settings, database, secrets and routers."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url

from painchain_pipelines import __version__
from painchain_pipelines.backend.auth import TenantTokenCache, get_principal
from painchain_pipelines.backend.config import BackendSettings
from painchain_pipelines.backend.crypto import SecretBox
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.errors import validation_exception_handler
from painchain_pipelines.backend.ingest import EventWriter, PostgresEventWriter, SingleEventFastPath
from painchain_pipelines.backend.metrics import Metrics, RequestMetrics
from painchain_pipelines.backend.middleware import RequestGuard, WebPageGuard
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.openapi import install_openapi
from painchain_pipelines.backend.routers import (
    connector_types,
    events,
    health,
    integrations,
    metrics,
    retention,
)
from painchain_pipelines.backend.services.ingest_store import IntegrationCache
from painchain_pipelines.paths import private_dir, private_file

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    settings: BackendSettings
    db: Database
    secrets: SecretBox
    token_cache: TenantTokenCache
    metrics: Metrics
    # Ingestion: integration lookups (invalidated by routers/integrations.py), single-event writer.
    integrations: IntegrationCache | None = None
    ingest_writer: EventWriter | PostgresEventWriter | None = None


def create_app(settings: BackendSettings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or BackendSettings.from_env()
    prepare_sqlite_file(settings)
    db = Database(settings.database_url, read_timeout=settings.query_timeout, write_timeout=settings.write_timeout)
    if migrate:
        upgrade(db)
    ctx = AppContext(
        settings=settings,
        db=db,
        secrets=SecretBox.from_settings(settings.secret_key, settings.data_dir),
        token_cache=TenantTokenCache(),
        metrics=Metrics(db, sync_interval=settings.sync_interval),
    )
    ctx.integrations = IntegrationCache()
    writer = EventWriter if db.is_sqlite else PostgresEventWriter
    ctx.ingest_writer = writer(db, ctx.integrations, max_data_bytes=settings.max_event_data_bytes)
    if migrate:  # the database answered: the connector types are there to label metrics with
        ctx.metrics.load_connectors(db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        try:
            await ctx.ingest_writer.aclose()
        finally:
            db.dispose()

    app = FastAPI(
        title="PainChain API",
        version=__version__,
        description="One timeline of every change. Connectors register types and post events; "
        "people query the timeline. See docs/api.md.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        openapi_url="/api/openapi.json",
    )
    app.state.ctx = ctx

    async def on_validation_error(request, exc: RequestValidationError):
        ctx.metrics.count_refused_single_event(request.scope, exc.body)
        return await validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    create_event_route = next(r for r in events.router.routes if getattr(r, "endpoint", None) is events.create_event)
    app.add_middleware(SingleEventFastPath, ctx=ctx, route=create_event_route)  # innermost: behind the guards
    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes)
    app.add_middleware(WebPageGuard, allowed_hosts=settings.allowed_hosts)  # runs first of the guards
    app.add_middleware(RequestMetrics, metrics=ctx.metrics)  # outermost: times refusals too
    app.include_router(health.router, prefix="/api")
    authenticated = [Depends(get_principal)]
    # Types before integrations so that /integrations/types is not read as an integration id.
    app.include_router(connector_types.router, prefix="/api", dependencies=authenticated)
    app.include_router(integrations.router, prefix="/api", dependencies=authenticated)
    app.include_router(events.router, prefix="/api", dependencies=authenticated)
    app.include_router(retention.router, prefix="/api", dependencies=authenticated)
    app.include_router(metrics.router)  # admin only, outside /api: where Prometheus looks
    install_openapi(app)  # the schema tells the truth: every answer, optional auth in no-token mode
    if settings.serve_ui:
        _mount_ui(app)
    ctx.metrics.learn_routes(app.routes, included={
        "/api": (health.router, connector_types.router, integrations.router, events.router, retention.router),
        "": (metrics.router,)})
    return app


def prepare_sqlite_file(settings: BackendSettings) -> None:
    """The default SQLite database lives in the private data directory, mode 0600."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if path.parent == settings.data_dir:
        private_dir(settings.data_dir)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)


STATIC_DIR = Path(__file__).with_name("static")
# Client-side routes: each serves the single-page app, which reads the path itself.
UI_PAGES = ("/", "/integrations")


def _mount_ui(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    index = STATIC_DIR / "index.html"

    async def page() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    for path in UI_PAGES:
        app.add_api_route(path, page, include_in_schema=False, methods=["GET"])
