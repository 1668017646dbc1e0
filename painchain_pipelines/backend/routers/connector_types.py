from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from painchain_pipelines.backend.auth import CurrentPrincipal, require_admin
from painchain_pipelines.backend.errors import not_found
from painchain_pipelines.backend.models import ConnectorType, utcnow
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers
from painchain_pipelines.backend.schemas.connector_types import (
    ConnectorTypeDetail,
    ConnectorTypeRegister,
    ConnectorTypeRegistered,
    ConnectorTypeSummary,
)
from painchain_pipelines.backend.schemas.sync import OrchestratorOut, OrchestratorReport
from painchain_pipelines.backend.services.orchestrator import record_report

router = APIRouter(prefix="/integrations/types", tags=["connector types"], route_class=ApiRoute)


def _summary(row: ConnectorType) -> dict:
    return {
        "id": row.id,
        "displayName": row.display_name,
        "color": row.color,
        "logo": row.logo,
        "description": row.description,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }


@router.post(
    "/register",
    response_model=ConnectorTypeRegistered,
    status_code=201,
    responses={200: {"description": "Updated an existing type", "model": ConnectorTypeRegistered}},
    dependencies=[Depends(require_admin)],
    summary="Register (upsert) a connector type",
)
def register_type(body: ConnectorTypeRegister, request: Request, response: Response):
    ctx = request.app.state.ctx
    schema = body.config_schema.model_dump(mode="json", exclude_none=True)
    # Connectors register their type when they start: several may register the same new type at
    # once. Whoever loses the race to create it finds it there on a second try and updates it.
    for attempt in (1, 2):
        try:
            with ctx.db.write() as session:
                row = session.get(ConnectorType, body.id, with_for_update=True)
                if row is None:
                    row = ConnectorType(id=body.id)
                    session.add(row)
                    response.status_code = 201
                else:
                    response.status_code = 200
                    row.updated_at = utcnow()
                row.display_name = body.display_name
                row.color = body.color
                row.logo = body.logo
                row.description = body.description
                row.config_schema = schema
            break
        except IntegrityError:
            if attempt == 2:
                raise
    ctx.metrics.connectors_known([body.id])
    return {"id": body.id, "displayName": body.display_name, "registered": True}


@router.get("", response_model=list[ConnectorTypeSummary], summary="List connector types (no schemas)")
def list_types(request: Request, _principal: CurrentPrincipal):
    with request.app.state.ctx.db.read() as session:
        rows = session.scalars(select(ConnectorType).order_by(ConnectorType.display_name)).all()
    return [_summary(r) for r in rows]


@router.get("/{type_id}", response_model=ConnectorTypeDetail, summary="One connector type with its configSchema")
def get_type(type_id: str, request: Request, _principal: CurrentPrincipal):
    with request.app.state.ctx.db.read() as session:
        row = session.get(ConnectorType, type_id)
    if row is None:
        raise not_found("connector type", type_id)
    return {**_summary(row), "configSchema": row.config_schema}


@router.put(
    "/{type_id}/orchestrator",
    response_model=OrchestratorOut,
    dependencies=[Depends(require_admin)],
    summary="The orchestrator's heartbeat for a connector type (Dagster's sensors send it every tick)",
)
def report_orchestrator(type_id: str, body: OrchestratorReport, request: Request):
    now = utcnow()
    with request.app.state.ctx.db.write() as session:
        if session.get(ConnectorType, type_id) is None:
            raise not_found("connector type", type_id)
        row, checked, queued = record_report(session, type_id, body, now)
        return {"connectorType": type_id, "seenAt": row.seen_at, "problem": row.problem,
                "checked": checked, "queued": queued}


add_method_answers(router)
