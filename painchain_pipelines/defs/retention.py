"""Retention: the `event_retention` asset and its daily schedule (the backend does the deleting)."""
from painchain_pipelines.orchestration.retention import build_retention_defs

defs = build_retention_defs()
