"""The Dagster UI as `painchain up` serves it: Dagster's own webserver app, behind the same
Host allow-list and Origin check as the PainChain API. The Dagster UI has no authentication:
without this, a web page whose name resolves to 127.0.0.1 (DNS rebinding) could launch and
delete runs through its GraphQL API.

    python -m painchain_pipelines.dagster_ui -w WORKSPACE_YAML [-h HOST] [-p PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

import uvicorn

from painchain_pipelines.backend.middleware import WebPageGuard, allowed_hosts_from

log = logging.getLogger("painchain.dagster_ui")


@contextlib.asynccontextmanager
async def _lifespan(_app):
    try:
        yield
    except asyncio.CancelledError:  # Ctrl-C while serving: a normal stop
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m painchain_pipelines.dagster_ui", add_help=False)
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("-h", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=3000)
    args = parser.parse_args(argv)
    # Dagster's webserver internals, as its own CLI uses them (pinned to dagster 1.13 in pyproject).
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_webserver.app import create_app_from_workspace_process_context
    from dagster_webserver.version import __version__

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    allowed = allowed_hosts_from(os.environ.get("PAINCHAIN_ALLOWED_HOSTS"), args.host)
    with DagsterInstance.get() as instance, WorkspaceProcessContext(
        instance, version=__version__, read_only=False, workspace_load_target=WorkspaceFileTarget([args.workspace]),
    ) as workspace:
        app = create_app_from_workspace_process_context(workspace, "", lifespan=_lifespan)
        guarded = WebPageGuard(app, allowed, require_json=False)
        log.info("Dagster UI on http://%s:%s (answering hosts: %s)", args.host, args.port, ", ".join(allowed))
        uvicorn.run(guarded, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
