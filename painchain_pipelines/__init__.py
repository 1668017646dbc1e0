"""PainChain Pipelines: one timeline of every change, ingested by Dagster assets."""

__version__ = "0.1.0"
