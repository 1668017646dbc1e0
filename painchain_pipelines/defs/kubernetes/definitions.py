"""Kubernetes: the `kubernetes_events` asset, its job, watch and integrations sensors, backfills."""
from painchain_pipelines.connectors.kubernetes import KubernetesConnector
from painchain_pipelines.orchestration import build_connector_defs

defs = build_connector_defs(KubernetesConnector())
