"""GET /metrics: Prometheus metrics (see backend/metrics.py, docs/operations.md).

They span every tenant, so only an admin may read them: the service token, or anyone in open
mode (no token configured), as for the rest of the API. Prometheus sends no Origin: a request
from another origin is a web page, refused even for reading.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from painchain_pipelines.backend.auth import require_admin
from painchain_pipelines.backend.middleware import WebPageGuard
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers


async def refuse_other_origins(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and not WebPageGuard._same_origin(origin, request.headers.get("host")):
        raise HTTPException(status_code=403, detail="metrics are not served to other origins")


router = APIRouter(tags=["metrics"], route_class=ApiRoute,
                   dependencies=[Depends(refuse_other_origins), Depends(require_admin)])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    body, content_type = request.app.state.ctx.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


add_method_answers(router)
