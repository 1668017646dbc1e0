from __future__ import annotations

import json
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
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers
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
from painchain_pipelines.backend.services.json_input import TOO_DEEP, JsonProblem, check_json

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)

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
        ctx.db, [body], principal.tenant_id, max_data_bytes=ctx.settings.max_event_data_bytes,
        integrations=ctx.integrations,
    )
    ctx.metrics.count_single_event(request.scope, body.connector, result.status)
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
            # Items are any JSON: each is validated on its own and answered in `results`.
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["events"], "x-unchecked-properties": True,
                "properties": {"events": {"type": "array", "maxItems": 1000, "items": True,
                                          "description": EventBatchIn.model_fields["events"].description}},
            }}},
        }
    },
)
async def create_events_batch(request: Request, principal: CurrentPrincipal):
    # The body is parsed here rather than by FastAPI: this is the ingestion hot path.
    ctx = request.app.state.ctx
    body = await request.body()
    return await run_in_threadpool(_store_batch, ctx, body, principal.tenant_id)


# Whether the body may hold an integer of 19 or more digits, which orjson may have turned into a
# float (it keeps integers exact only within 64 bits): a number token starts after "[", ",", ":"
# or whitespace (then maybe "-"), never after a letter, a quote or a lone "-", so digit runs
# inside strings (hashes, "commit-123…" ids) rarely qualify. One C-speed pass: digits map to
# "0", what may precede a number to "s", "-" to "m", the rest to "x". A hit only means the body
# is parsed again exactly.
_NUMBER_CONTEXT = bytes(
    ord("0") if 48 <= b <= 57 else ord("s") if bytes([b]) in b"[,: \t\r\n" else ord("m") if b == 45 else ord("x")
    for b in range(256)
)
_DIGITS_19 = b"0" * 19


def _may_hold_long_integer(body: bytes) -> bool:
    mapped = body.translate(_NUMBER_CONTEXT)
    return b"s" + _DIGITS_19 in mapped or b"sm" + _DIGITS_19 in mapped


def _parse_batch(body: bytes, max_events: int) -> tuple[list, bool]:
    """(items, exact): orjson for speed; the standard library (exact integers, lone surrogates,
    NaN kept, to be refused per item) when orjson fails or may have rounded an integer."""
    try:
        payload = orjson.loads(body)
        exact = _may_hold_long_integer(body)
    except orjson.JSONDecodeError:
        exact = True
    if exact:
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise field_error(("body",), f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except UnicodeDecodeError:
            raise field_error(("body",), "is not UTF-8 encoded JSON") from None
        except RecursionError:
            raise field_error(("body",), TOO_DEEP) from None
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise field_error(("body", "events"), "must be a list of events")
    if len(items) > max_events:
        raise field_error(("body", "events"), f"at most {max_events} events per batch")
    return items, exact


def _store_batch(ctx, body: bytes, tenant_id: str | None) -> FastJSONResponse:
    items, exact = _parse_batch(body, ctx.settings.max_batch_events)
    results: list[dict] = [{}] * len(items)
    valid: list[EventIn] = []
    valid_positions: list[int] = []
    for index, item in enumerate(items):
        if exact:
            # Each event is checked as if it were a body of its own (nesting counts from it).
            try:
                check_json(item)
            except JsonProblem as problem:
                results[index] = {"index": index, "status": "invalid",
                                  "errors": [{"loc": ["body", *problem.path], "msg": problem.msg}]}
                continue
        try:
            valid.append(EventIn.model_validate(item))
            valid_positions.append(index)
        except ValidationError as exc:
            results[index] = {"index": index, "status": "invalid", "errors": _item_errors(exc)}
    stored = service.ingest_events(ctx.db, valid, tenant_id, max_data_bytes=ctx.settings.max_event_data_bytes,
                                   integrations=ctx.integrations)
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
    ctx.metrics.count_batch(items, results)
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


# At most this many values per list filter (after splitting commas): every value costs the
# database work, and no screen needs more.
MAX_FILTER_TAGS = 20
MAX_FILTER_VALUES = 50


def _split(values: list[str] | None) -> list[str]:
    """Accept both repeated parameters and comma-separated values."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _capped(name: str, values: list[str], cap: int) -> list[str]:
    values = list(dict.fromkeys(values))
    if len(values) > cap:
        raise field_error(("query", name), f"at most {cap} values per query (repeat the parameter or separate "
                          f"values by commas; got {len(values)})")
    return values


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
        connectors=_capped("connector", _split(connector), MAX_FILTER_VALUES),
        # Projects may contain commas (rarely); only repeated parameters separate them.
        projects=_capped("project", [p for p in project or [] if p], MAX_FILTER_VALUES),
        integration_ids=_capped("integrationId", _split(integration_id), MAX_FILTER_VALUES),
        tags=_capped("tags", _split(tags), MAX_FILTER_TAGS),
        since_ms=_time_param("since", since),
        until_ms=_time_param("until", until),
        text=q.strip() if q and q.strip() else None,
    )
    if filters.since_ms is not None and filters.until_ms is not None and filters.since_ms >= filters.until_ms:
        raise field_error(("query", "until"), "must be later than since")
    return filters


_VALUES = f"at most {MAX_FILTER_VALUES} values, repeated or comma-separated"
ConnectorParam = Annotated[list[str] | None, Query(max_length=MAX_FILTER_VALUES, description=_VALUES)]
ProjectParam = Annotated[list[str] | None, Query(
    max_length=MAX_FILTER_VALUES, description=f"at most {MAX_FILTER_VALUES} values, repeated (projects may contain commas)")]
IntegrationParam = Annotated[list[str] | None, Query(alias="integrationId", max_length=MAX_FILTER_VALUES,
                                                     description=_VALUES)]
TagsParam = Annotated[list[str] | None, Query(
    max_length=MAX_FILTER_TAGS,
    description=f"Events carrying every one of these tags: at most {MAX_FILTER_TAGS}, repeated or comma-separated")]


def _time(description: str):
    return Query(min_length=10, max_length=40, description=description)


@router.get("", response_model=EventPage, summary="The timeline: filtered events, newest first")
def list_events(
    request: Request,
    principal: CurrentPrincipal,
    connector: ConnectorParam = None,
    project: ProjectParam = None,
    integration_id: IntegrationParam = None,
    tags: TagsParam = None,
    since: Annotated[str | None, _time("ISO 8601, inclusive")] = None,
    until: Annotated[str | None, _time("ISO 8601, exclusive")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Free text over title, project and data")] = None,
    received_since: Annotated[str | None, Query(
        alias="receivedSince", min_length=10, max_length=40,
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
    connector: ConnectorParam = None,
    project: ProjectParam = None,
    integration_id: IntegrationParam = None,
    tags: TagsParam = None,
    since: Annotated[str | None, _time("ISO 8601; default until minus 24 h")] = None,
    until: Annotated[str | None, _time("ISO 8601; default now")] = None,
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
    connector: ConnectorParam = None,
    integration_id: IntegrationParam = None,
    since: Annotated[str | None, _time("ISO 8601, inclusive")] = None,
    until: Annotated[str | None, _time("ISO 8601, exclusive")] = None,
):
    ctx = request.app.state.ctx
    filters = _filters(principal, connector, None, integration_id, None, since, until, None)
    return JSONResponse(content=service.facets(ctx.db, filters))


@router.get("/{event_id}", response_model=EventOut, summary="One event", responses={404: {"description": "Unknown event"}})
def get_event(event_id: str, request: Request, principal: CurrentPrincipal):
    ctx = request.app.state.ctx
    event = None
    if event_id.isascii() and event_id.isdigit() and len(event_id) < 19:
        event = service.get_event(ctx.db, int(event_id), principal.tenant_id)
    if event is None:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} not found")
    return JSONResponse(content=event)


add_method_answers(router)
