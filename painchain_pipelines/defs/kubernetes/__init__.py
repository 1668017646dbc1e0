"""Kubernetes: one call, `build_connector_defs(KubernetesConnector())`."""
