"""Dagster entry point: `dagster dev -w workspace.yaml` (or `-m painchain_pipelines.definitions`)."""

import os

import dagster as dg

from painchain_pipelines.defs.github import definitions as github
from painchain_pipelines.defs.resources import PainChainBackend
from painchain_pipelines.defs.settings import OrchestrationSettings


def _resources() -> dict:
    settings = OrchestrationSettings.from_env()
    token = dg.EnvVar("PAINCHAIN_API_TOKEN") if os.environ.get("PAINCHAIN_API_TOKEN") else None
    # With an EnvVar, Dagster records only the variable's name, never the token.
    return {"painchain": PainChainBackend(api_url=settings.backend_api_url, api_token=token)}


defs = dg.Definitions.merge(
    github.defs,
    dg.Definitions(
        resources=_resources(),
        # One asset per run: a step process of its own (the multiprocess default) would load the
        # code location a second time for nothing, doubling every run's cost.
        executor=dg.in_process_executor,
    ),
)
