
import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient


class PainChainBackend(dg.ConfigurableResource):
    """The PainChain backend API. The token comes from the environment (EnvVar), so Dagster
    stores only the variable's name, never its value."""

    api_url: str = "http://127.0.0.1:8000/api"
    api_token: str | None = None

    def client(self, *, retries: int = 5, timeout: float = 30.0) -> BackendClient:
        return BackendClient(self.api_url, self.api_token, retries=retries, timeout=timeout)
