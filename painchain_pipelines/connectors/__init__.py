"""Connectors: plain Python (no Dagster) that turn a source's changes into PainChain events.

Each source has a folder (`github/`, and next `gitlab/`, `kubernetes/`) exposing a class that
implements `base.Connector`. The orchestration layer (`painchain_pipelines.defs`) only wires them.
"""
