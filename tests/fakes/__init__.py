"""Test fakes for external services used by PainChain Pipelines."""

from .github_server import FakeGitHub, FakeRepo, RequestRecord

__all__ = ["FakeGitHub", "FakeRepo", "RequestRecord"]
