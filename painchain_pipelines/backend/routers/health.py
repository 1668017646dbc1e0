from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from painchain_pipelines import __version__
from painchain_pipelines.backend.migrate import current_revision, head_revision
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers

router = APIRouter(tags=["health"], route_class=ApiRoute)


@router.get("/health", summary="Service and database status (no authentication)")
def health(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    started = time.perf_counter()
    try:
        ctx.db.ping()
        revision = current_revision(ctx.db)
    except Exception as exc:  # the database being down is exactly what we report
        if isinstance(exc, DBAPIError):
            ctx.metrics.count_database_error(exc)
        return JSONResponse(
            status_code=503,
            content={
                "status": "error",
                "version": __version__,
                "database": {
                    "status": "unreachable",
                    "dialect": ctx.db.engine.dialect.name,
                    "error": type(exc).__name__ + ": " + str(exc).splitlines()[0][:300],
                },
            },
        )
    return JSONResponse(
        content={
            "status": "ok",
            "version": __version__,
            "database": {
                "status": "ok",
                "dialect": ctx.db.engine.dialect.name,
                "latencyMs": round((time.perf_counter() - started) * 1000, 2),
                "schemaRevision": revision,
                "schemaUpToDate": revision == head_revision(),
            },
            "authRequired": ctx.settings.auth_required,
        }
    )


add_method_answers(router)
