from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import func, select

from painchain_pipelines.backend.auth import CurrentPrincipal, Principal, require_admin
from painchain_pipelines.backend.database import dialect_insert
from painchain_pipelines.backend.errors import field_error, not_found
from painchain_pipelines.backend.models import (
    ConnectorType,
    Event,
    Integration,
    IntegrationSync,
    OrchestratorStatus,
    utcnow,
)
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers
from painchain_pipelines.backend.schemas.connector_types import ConfigSchema
from painchain_pipelines.backend.schemas.integrations import (
    IntegrationCreate,
    IntegrationOut,
    IntegrationUpdate,
)
from painchain_pipelines.backend.schemas.sync import IntegrationStatus, SyncOut, SyncReport
from painchain_pipelines.backend.services.integration_config import (
    clear_config,
    encrypt_secrets,
    masked_config,
    new_integration_id,
    validate_config,
)
from painchain_pipelines.backend.services.orchestrator import orchestrator_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/integrations", tags=["integrations"], route_class=ApiRoute)


def _schemas(session, type_ids: set[str]) -> dict[str, ConfigSchema]:
    rows = session.execute(
        select(ConnectorType.id, ConnectorType.config_schema).where(ConnectorType.id.in_(type_ids))
    )
    return {r.id: ConfigSchema.model_validate(r.config_schema) for r in rows}


def _out(row: Integration, config: dict) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "config": config,
        "tenantId": row.tenant_id,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }


def _visible(row: Integration | None, principal: Principal) -> bool:
    return row is not None and (principal.tenant_id is None or row.tenant_id == principal.tenant_id)


def _resolve_name(name: str | None, config: dict) -> dict:
    config = dict(config)
    if name is not None:
        config_name = config.get("name")
        if isinstance(config_name, str) and config_name.strip() and config_name.strip() != name.strip():
            raise field_error(("body", "name"), "must equal config.name (or leave one of them out)")
        config["name"] = name
    return config


@router.post("", response_model=IntegrationOut, status_code=201, summary="Create an integration")
def create_integration(body: IntegrationCreate, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    config = _resolve_name(body.name, body.config)
    with ctx.db.write() as session:
        connector_type = session.get(ConnectorType, body.type)
        if connector_type is None:
            raise field_error(("body", "type"), f"unknown connector type {body.type!r}; register it first")
        schema = ConfigSchema.model_validate(connector_type.config_schema)
        clean = validate_config(schema, config, connector_id=body.type)
        row = Integration(
            id=new_integration_id(clean["name"], exists=lambda candidate: session.get(Integration, candidate) is not None),
            tenant_id=principal.tenant_id,
            type=body.type,
            name=clean["name"],
            config=encrypt_secrets(clean, schema, ctx.secrets),
        )
        session.add(row)
        session.flush()
        result = _out(row, masked_config(row.config, schema))
    log.info("created integration %s (%s) for tenant %s", row.id, row.type, row.tenant_id)
    return result


@router.get(
    "",
    response_model=list[IntegrationOut],
    summary="List integrations",
    description=(
        "With `type`, this is the connectors' read: called with the service token (or, with no token "
        "configured, from this machine and not from a browser) it returns secrets in clear. Every other "
        "caller sees secrets masked."
    ),
)
def list_integrations(
    request: Request,
    principal: CurrentPrincipal,
    type: str | None = Query(default=None, max_length=64, description="Only integrations of this connector type"),
):
    ctx = request.app.state.ctx
    stmt = select(Integration).order_by(Integration.created_at, Integration.id)
    if type is not None:
        stmt = stmt.where(Integration.type == type)
    if principal.tenant_id is not None:
        stmt = stmt.where(Integration.tenant_id == principal.tenant_id)
    with ctx.db.read() as session:
        rows = session.scalars(stmt).all()
        schemas = _schemas(session, {r.type for r in rows})
    in_clear = type is not None and principal.may_read_secrets
    out = []
    for row in rows:
        if in_clear:
            config, failed = clear_config(row.config, ctx.secrets)
            for key in failed:
                log.error(
                    "integration %s: secret field %r cannot be decrypted with the current "
                    "PAINCHAIN_SECRET_KEY; re-enter it", row.id, key,
                )
        else:
            config = masked_config(row.config, schemas.get(row.type))
        out.append(_out(row, config))
    return out


@router.get(
    "/status",
    response_model=list[IntegrationStatus],
    summary="Every visible integration's sync status and events of the last 24 h (for the UI)",
)
def integrations_status(request: Request, principal: CurrentPrincipal):
    since_ms = int(time.time() * 1000) - 24 * 3600 * 1000
    stmt = (
        select(Integration.id, Integration.type, Integration.name, Integration.tenant_id,
               IntegrationSync.last_attempt_at, IntegrationSync.last_success_at,
               IntegrationSync.last_checked_at, IntegrationSync.last_error_at, IntegrationSync.last_error,
               IntegrationSync.last_stats, IntegrationSync.first_sync_queued_at)
        .outerjoin(IntegrationSync, IntegrationSync.integration_id == Integration.id)
        .order_by(Integration.created_at, Integration.id)
    )
    counts = select(Event.integration_id, func.count()).where(Event.ts >= since_ms).group_by(Event.integration_id)
    if principal.tenant_id is not None:
        stmt = stmt.where(Integration.tenant_id == principal.tenant_id)
        counts = counts.where(Event.tenant_id == principal.tenant_id)
    with request.app.state.ctx.db.read() as session:
        rows = session.execute(stmt).all()
        last_day = dict(session.execute(counts).all())
        heartbeats = {o.connector_type: o for o in session.scalars(select(OrchestratorStatus))}
    now = utcnow()
    return [
        {"id": r.id, "type": r.type, "name": r.name, "tenantId": r.tenant_id,
         "lastAttemptAt": r.last_attempt_at, "lastSuccessAt": r.last_success_at,
         "lastCheckedAt": r.last_checked_at, "lastErrorAt": r.last_error_at, "lastError": r.last_error,
         "failedSources": _failed_sources(r.last_stats), "firstSyncQueuedAt": r.first_sync_queued_at,
         "orchestrator": orchestrator_state(heartbeats.get(r.type), now),
         "eventsLast24h": last_day.get(r.id, 0)}
        for r in rows
    ]


def _failed_sources(stats: dict | None) -> dict[str, str]:
    """The sources the last attempt could not read, from its report (connectors' own format)."""
    failed = (stats or {}).get("failedSources") if isinstance(stats, dict) else None
    if not isinstance(failed, dict):
        return {}
    return {str(k): str(v) for k, v in failed.items()}


def _load_visible(session, integration_id: str, principal: Principal, *, lock: str | None = None) -> Integration:
    """The integration, or a 404. In a write, `lock` holds it until the transaction ends
    (PostgreSQL row locks; SQLite writers are serialised anyway): "update" for changing or
    deleting the row itself, "share" for writing rows that refer to it (a concurrent deletion
    then waits for us, or happened before and we answer 404)."""
    if lock == "update":
        row = session.get(Integration, integration_id, with_for_update=True)
    elif lock == "share":
        row = session.get(Integration, integration_id, with_for_update={"key_share": True})
    else:
        row = session.get(Integration, integration_id)
    if not _visible(row, principal):
        raise not_found("integration", integration_id)
    return row


@router.get("/{integration_id}", response_model=IntegrationOut, summary="One integration (secrets masked)")
def get_integration(integration_id: str, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    with ctx.db.read() as session:
        row = _load_visible(session, integration_id, principal)
        schema = _schemas(session, {row.type}).get(row.type)
    return _out(row, masked_config(row.config, schema))


@router.put("/{integration_id}", response_model=IntegrationOut, summary="Replace name and config")
def update_integration(integration_id: str, body: IntegrationUpdate, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    config = _resolve_name(body.name, body.config)
    with ctx.db.write() as session:
        row = _load_visible(session, integration_id, principal, lock="update")
        if body.type is not None and body.type != row.type:
            raise field_error(("body", "type"), f"cannot change the type of an integration (it is {row.type!r})")
        schema = _schemas(session, {row.type})[row.type]
        clean = validate_config(schema, config, connector_id=row.type, previous=row.config)
        row.name = clean["name"]
        row.config = encrypt_secrets(clean, schema, ctx.secrets)
        row.updated_at = utcnow()
        session.flush()
        result = _out(row, masked_config(row.config, schema))
    ctx.integrations.invalidate([integration_id])  # ingestion sees the new tags from now on
    log.info("updated integration %s", integration_id)
    return result


@router.delete(
    "/{integration_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an integration and its events",
)
def delete_integration(integration_id: str, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    # Deleting takes as long as deleting all its events takes: no time budget (it must not fail
    # for that, and a retry would take as long).
    with ctx.db.write(unlimited=True) as session:
        row = _load_visible(session, integration_id, principal, lock="update")
        session.delete(row)
    ctx.integrations.invalidate([integration_id])
    log.info("deleted integration %s", integration_id)
    return Response(status_code=204)


def _sync_out(integration_id: str, row: IntegrationSync | None) -> dict:
    return {
        "integrationId": integration_id,
        "state": (row.state if row else None) or {},
        "lastAttemptAt": row.last_attempt_at if row else None,
        "lastSuccessAt": row.last_success_at if row else None,
        "lastCheckedAt": row.last_checked_at if row else None,
        "lastErrorAt": row.last_error_at if row else None,
        "lastError": row.last_error if row else None,
        "lastStats": row.last_stats if row else None,
        "firstSyncQueuedAt": row.first_sync_queued_at if row else None,
    }


@router.get("/{integration_id}/sync", response_model=SyncOut, summary="Connector state and last sync outcome")
def get_sync(integration_id: str, request: Request, principal: CurrentPrincipal):
    with request.app.state.ctx.db.read() as session:
        _load_visible(session, integration_id, principal)
        row = session.get(IntegrationSync, integration_id)
        return _sync_out(integration_id, row)


@router.put(
    "/{integration_id}/sync",
    response_model=SyncOut,
    dependencies=[Depends(require_admin)],
    summary="Report a sync attempt and/or save connector state (connectors only)",
)
def put_sync(integration_id: str, body: SyncReport, request: Request, principal: CurrentPrincipal):
    if body.status == "error" and not body.error:
        raise field_error(("body", "error"), "is required when status is error")
    now = utcnow()
    with request.app.state.ctx.db.write() as session:
        _load_visible(session, integration_id, principal, lock="share")
        # The first report may come from several callers at once (and the orchestrator's): the
        # record is created by whoever comes first, then updated under its row lock.
        session.execute(
            dialect_insert(session, IntegrationSync)
            .values(integration_id=integration_id, state={}, updated_at=now)
            .on_conflict_do_nothing(index_elements=["integration_id"])
        )
        row = session.get(IntegrationSync, integration_id, with_for_update=True, populate_existing=True)
        if body.state is not None:
            row.state = body.state
        if body.status is not None:
            row.last_attempt_at = now
            row.last_stats = body.stats
        if body.status == "success":
            row.last_success_at = row.last_checked_at = now
        elif body.status == "error":
            row.last_error_at = now
            row.last_error = body.error
        row.updated_at = now
        session.flush()
        return _sync_out(integration_id, row)


add_method_answers(router)
