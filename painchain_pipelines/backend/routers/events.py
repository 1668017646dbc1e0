from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from painchain_pipelines.backend.auth import CurrentPrincipal
from painchain_pipelines.backend.errors import field_error, field_errors, humanize
from painchain_pipelines.backend.responses import FastJSONResponse
from painchain_pipelines.backend.schemas.common import parse_iso8601, to_epoch_ms
from painchain_pipelines.backend.schemas.events import (
    DuplicateEvent,
    EventBatchIn,
    EventBatchOut,
    EventIn,
    EventOut,
    EventPage,
    Facets,
    Histogram,
)
from painchain_pipelines.backend.services import events as service

router = APIRouter(prefix="/events", tags=["events"])

MAX_HISTOGRAM_BUCKETS = 2000


@router.post(
    "",
    status_code=201,
    response_model=EventOut,
    responses={
        409: {"model": DuplicateEvent, "description": "Same (integrationId, externalId) already stored"},
        404: {"description": "Unknown integration (or one of another tenant)"},
    },
    summary="Store one event",
)
def create_event(body: EventIn, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    [result] = service.ingest_events(
        ctx.db, [body], principal.tenant_id, max_data_bytes=ctx.settings.max_event_data_bytes
    )
    if result.status == "invalid":
        if result.http_status == 404:
            raise HTTPException(status_code=404, detail=result.errors[0]["msg"])
        raise field_errors([{**e, "type": "value_error"} for e in result.errors])
    if result.status == "duplicate":
        existing = service.find_event_id(ctx.db, body.integration_id, body.external_id)
        return JSONResponse(
            status_code=409,
            content={"detail": "duplicate event: this (integrationId, externalId) is already stored",
                     "existingId": existing},
        )
    return JSONResponse(status_code=201, content=service.event_to_dict(SimpleNamespace(**result.row)))


def _item_errors(exc: ValidationError) -> list[dict]:
    return [
        {"loc": ["body", *err["loc"]], "msg": humanize(err)["msg"]}
        for err in exc.errors(include_url=False)
    ]


@router.post(
    "/batch",
    response_model=EventBatchOut,
    summary="Store up to 1,000 events, answering per item",
    description="Each item is validated alone; the answer lists every item as created, duplicate or "
    "invalid (with the fields at fault). Duplicates inside one batch count once.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventBatchIn.model_json_schema(by_alias=True)}},
        }
    },
)
async def create_events_batch(request: Request, principal: CurrentPrincipal):
    # The body is parsed here (orjson) rather than by FastAPI: this is the ingestion hot path.
    ctx = request.app.state.ctx
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise field_error(("body",), f"is not valid JSON: {exc}") from None
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise field_error(("body", "events"), "must be a list of events")
    if len(items) > ctx.settings.max_batch_events:
        raise field_error(("body", "events"), f"at most {ctx.settings.max_batch_events} events per batch")
    return await run_in_threadpool(_store_batch, ctx, items, principal.tenant_id)


def _store_batch(ctx, items: list, tenant_id: str | None) -> FastJSONResponse:
    results: list[dict] = [{}] * len(items)
    valid: list[EventIn] = []
    valid_positions: list[int] = []
    for index, item in enumerate(items):
        try:
            valid.append(EventIn.model_validate(item))
            valid_positions.append(index)
        except ValidationError as exc:
            results[index] = {"index": index, "status": "invalid", "errors": _item_errors(exc)}
    stored = service.ingest_events(ctx.db, valid, tenant_id, max_data_bytes=ctx.settings.max_event_data_bytes)
    for index, outcome in zip(valid_positions, stored):
        entry = {"index": index, "status": outcome.status}
        if outcome.id is not None:
            entry["id"] = outcome.id
        if outcome.errors:
            entry["errors"] = outcome.errors
        results[index] = entry
    counts = {"created": 0, "duplicate": 0, "invalid": 0}
    for entry in results:
        counts[entry["status"]] += 1
    return FastJSONResponse(
        content={
            "created": counts["created"],
            "duplicates": counts["duplicate"],
            "invalid": counts["invalid"],
            "results": results,
        }
    )


def _time_param(name: str, value: str | None):
    if value is None:
        return None
    try:
        return to_epoch_ms(parse_iso8601(value))
    except ValueError as exc:
        raise field_error(("query", name), str(exc)) from None


def _split(values: list[str] | None) -> list[str]:
    """Accept both repeated parameters and comma-separated values."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _filters(
    principal,
    connector: list[str] | None,
    project: list[str] | None,
    integration_id: list[str] | None,
    tags: list[str] | None,
    since: str | None,
    until: str | None,
    q: str | None,
) -> service.EventFilter:
    filters = service.EventFilter(
        tenant_id=principal.tenant_id,
        connectors=_split(connector),
        # Projects may contain commas (rarely); only repeated parameters separate them.
        projects=[p for p in project or [] if p],
        integration_ids=_split(integration_id),
        tags=_split(tags),
        since_ms=_time_param("since", since),
        until_ms=_time_param("until", until),
        text=q.strip() if q and q.strip() else None,
    )
    if filters.since_ms is not None and filters.until_ms is not None and filters.since_ms >= filters.until_ms:
        raise field_error(("query", "until"), "must be later than since")
    return filters


ListParam = Annotated[list[str] | None, Query()]


@router.get("", response_model=EventPage, summary="The timeline: filtered events, newest first")
def list_events(
    request: Request,
    principal: CurrentPrincipal,
    connector: ListParam = None,
    project: ListParam = None,
    integration_id: Annotated[list[str] | None, Query(alias="integrationId")] = None,
    tags: Annotated[list[str] | None, Query(description="Events carrying every one of these tags")] = None,
    since: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Free text over title, project and data")] = None,
    received_since: Annotated[str | None, Query(
        alias="receivedSince",
        description="ISO 8601, inclusive: only events stored since then, whatever their timestamp "
        "(late arrivals included)")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    ctx = request.app.state.ctx
    filters = _filters(principal, connector, project, integration_id, tags, since, until, q)
    filters.received_since_ms = _time_param("receivedSince", received_since)
    limit = limit or ctx.settings.default_page_limit
    try:
        events, next_cursor = service.list_events(ctx.db, filters, limit=limit, cursor=cursor)
    except service.InvalidCursor as exc:
        raise field_error(("query", "cursor"), str(exc)) from None
    return FastJSONResponse(content={"events": events, "nextCursor": next_cursor, "limit": limit})


@router.get(
    "/histogram",
    response_model=Histogram,
    summary="Event counts per time bucket per connector",
    description="Same filters as the timeline. Buckets are aligned to UTC multiples of bucketSeconds; "
    "give `interval` (seconds) or let `buckets` (the most you want) choose a round size.",
)
def events_histogram(
    request: Request,
    principal: CurrentPrincipal,
    connector: ListParam = None,
    project: ListParam = None,
    integration_id: Annotated[list[str] | None, Query(alias="integrationId")] = None,
    tags: ListParam = None,
    since: Annotated[str | None, Query(description="ISO 8601; default until minus 24 h")] = None,
    until: Annotated[str | None, Query(description="ISO 8601; default now")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    buckets: Annotated[int, Query(ge=1, le=MAX_HISTOGRAM_BUCKETS)] = 60,
    interval: Annotated[int | None, Query(ge=1, le=31536000, description="Bucket size in seconds")] = None,
):
    ctx = request.app.state.ctx
    filters = _filters(principal, connector, project, integration_id, tags, since, until, q)
    if filters.until_ms is None:
        filters.until_ms = int(time.time() * 1000) + 1
    if filters.since_ms is None:
        filters.since_ms = filters.until_ms - 24 * 3600 * 1000
    if filters.since_ms >= filters.until_ms:
        raise field_error(("query", "since"), "must be earlier than until (which defaults to now)")
    span = filters.until_ms - filters.since_ms
    if interval is None:
        bucket_seconds = service.choose_bucket_seconds(span, buckets)
    else:
        if span / (interval * 1000) > MAX_HISTOGRAM_BUCKETS:
            raise field_error(("query", "interval"), f"gives more than {MAX_HISTOGRAM_BUCKETS} buckets for this range")
        bucket_seconds = interval
    return FastJSONResponse(content=service.histogram(ctx.db, filters, bucket_seconds=bucket_seconds))


@router.get(
    "/facets",
    response_model=Facets,
    summary="Projects and tags seen in the most recent matching events (filter suggestions)",
)
def events_facets(
    request: Request,
    principal: CurrentPrincipal,
    connector: ListParam = None,
    integration_id: Annotated[list[str] | None, Query(alias="integrationId")] = None,
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
):
    ctx = request.app.state.ctx
    filters = _filters(principal, connector, None, integration_id, None, since, until, None)
    return JSONResponse(content=service.facets(ctx.db, filters))


@router.get("/{event_id}", response_model=EventOut, summary="One event", responses={404: {"description": "Unknown event"}})
def get_event(event_id: str, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    event = None
    if event_id.isdigit() and len(event_id) < 19:
        event = service.get_event(ctx.db, int(event_id), principal.tenant_id)
    if event is None:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} not found")
    return JSONResponse(content=event)
