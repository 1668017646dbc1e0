"""Test fakes for external services used by PainChain Pipelines."""

from .github_server import FakeGitHub, FakeRepo, RequestRecord

__all__ = ["FakeGitHub", "FakeRepo", "RequestRecord"]
from .gitlab_server import FakeGitLab  # noqa: E402
from .gitlab_world import GitLabWorld  # noqa: E402

__all__ += ["FakeGitLab", "GitLabWorld"]
from .kubernetes_server import FakeKubernetes  # noqa: E402
from .kubernetes_world import ClusterWorld  # noqa: E402

__all__ += ["FakeKubernetes", "ClusterWorld"]
