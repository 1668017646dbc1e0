"""What a run shows in the Dagster UI: its log lines, materialization metadata and asset checks.
Everything here comes from SyncOutcome.report(), which holds figures only, never secrets."""

from __future__ import annotations

import dagster as dg

from painchain_pipelines.connectors.sync import SyncOutcome

CHECK_SPECS = {
    "events_stored_cleanly": "Every event the connector produced was accepted by the backend (0 invalid).",
    "sources_accessible": "Every configured source (repository, project, cluster) could be read.",
    "integrations_synced": "Every integration this run covered synced (a batch live run goes on past "
                           "failing ones; they are listed here and left unmaterialized).",
}


def check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(check, asset=asset_name, description=text) for check, text in CHECK_SPECS.items()]


def log_outcome(context: dg.AssetExecutionContext, outcome: SyncOutcome) -> None:
    if not outcome.ok:
        context.log.error(outcome.error)
        return
    report = outcome.report()
    context.log.info(
        f"integration {outcome.integration_name!r} ({outcome.integration_id}) {outcome.mode} sync: "
        f"{report['eventsFetched']} events fetched, {report['created']} new, {report['duplicates']} "
        f"already stored, {report['invalid']} invalid; {report['apiRequests']} API requests "
        f"{_counters_text(report['counters'])}in {report['durationSeconds']} s"
    )
    for source, problem in outcome.stats.failed_sources.items():
        context.log.warning(f"integration {outcome.integration_id}: cannot read {source}: {problem}")


def _counters_text(counters: dict[str, int]) -> str:
    return f"({', '.join(f'{k} {v}' for k, v in sorted(counters.items()))}) " if counters else ""


def run_metadata(outcomes: list[SyncOutcome]) -> dict:
    """The figures of one or more syncs, summed; the connector's own counters add up and its
    gauges (levels, e.g. rate-limit headroom) report the lowest."""
    reports = [o.report() for o in outcomes]

    def total(key: str) -> int:
        return sum(r[key] or 0 for r in reports)

    metadata = {
        "integrations": dg.MetadataValue.json({o.integration_id: o.integration_name for o in outcomes}),
        "mode": ", ".join(sorted({o.mode for o in outcomes})) or "none",
        "window": dg.MetadataValue.text("; ".join(w for r in reports for w in r["windows"]) or "none"),
        "sources": dg.MetadataValue.json(sorted({s for r in reports for s in r["sources"]})),
        "failed_sources": dg.MetadataValue.json({k: v for r in reports for k, v in r["failedSources"].items()}),
        "events_fetched": total("eventsFetched"),
        "events_posted": total("posted"),
        "events_created": total("created"),
        "events_duplicate": total("duplicates"),
        "events_invalid": total("invalid"),
        "api_requests": total("apiRequests"),
        "api_retries": total("retries"),
        "backend_retries": total("backendRetries"),
        "duration_seconds": dg.MetadataValue.float(round(sum(r["durationSeconds"] for r in reports), 3)),
    }
    for report in reports:
        for key, value in report["counters"].items():
            metadata[key] = metadata.get(key, 0) + value
    for key in {k for r in reports for k in r["gauges"]}:
        metadata[key] = min(r["gauges"][key] for r in reports if key in r["gauges"])
    if len(reports) > 1:
        metadata["per_integration"] = dg.MetadataValue.json({o.integration_id: o.report() for o in outcomes})
    else:
        metadata["events_per_stream"] = dg.MetadataValue.json(reports[0]["eventsPerStream"] if reports else {})
    return metadata


def check_results(outcomes: list[SyncOutcome], skipped_busy: list[str]) -> list[dg.AssetCheckResult]:
    invalid = sum(o.posted.invalid for o in outcomes)
    examples = [e for o in outcomes for e in o.posted.invalid_examples][:5]
    failed_sources = {k: v for o in outcomes for k, v in o.stats.failed_sources.items()}
    failed = {o.integration_id: o.error for o in outcomes if not o.ok}
    return [
        dg.AssetCheckResult(
            check_name="events_stored_cleanly",
            passed=invalid == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"invalid": invalid, "examples": dg.MetadataValue.json(examples)},
        ),
        dg.AssetCheckResult(
            check_name="sources_accessible",
            passed=not failed_sources,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed_sources": dg.MetadataValue.json(failed_sources)},
        ),
        dg.AssetCheckResult(
            check_name="integrations_synced",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "integrations_synced": len(outcomes) - len(failed),
                "integrations_failed": dg.MetadataValue.json(failed),
                "integrations_skipped_busy": dg.MetadataValue.json(skipped_busy),
            },
        ),
    ]
