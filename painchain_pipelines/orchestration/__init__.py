"""Reusable Dagster machinery for PainChain connectors: a connector's whole wiring is
`build_connector_defs(connector)`. See docs/orchestration.md."""

from painchain_pipelines.orchestration.build import build_connector_defs

__all__ = ["build_connector_defs"]
