"""The PainChain backend: HTTP API, storage, tenancy and the web UI."""
