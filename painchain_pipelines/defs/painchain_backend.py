"""What every connector's runs share: the PainChain backend resource and the executor."""
import os

import dagster as dg

from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.settings import OrchestrationSettings


def _painchain_backend() -> PainChainBackend:
    settings = OrchestrationSettings.from_env()
    # With an EnvVar, Dagster records only the variable's name, never the token.
    token = dg.EnvVar("PAINCHAIN_API_TOKEN") if os.environ.get("PAINCHAIN_API_TOKEN") else None
    return PainChainBackend(api_url=settings.backend_api_url, api_token=token)


defs = dg.Definitions(
    resources={"painchain": _painchain_backend()},
    # One asset per run: a step process of its own (the multiprocess default) would load the
    # code location a second time for nothing, doubling every run's cost.
    executor=dg.in_process_executor,
)
