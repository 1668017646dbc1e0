"""Kubernetes: rollouts, pod failures and Warning events of one or more clusters, watched with the
official `kubernetes` client (and reconstructed for backfills)."""

from painchain_pipelines.connectors.kubernetes.connector import KubernetesConnector

__all__ = ["KubernetesConnector"]
