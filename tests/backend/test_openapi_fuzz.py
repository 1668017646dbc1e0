"""Schema-driven fuzzing: schemathesis generates requests from our OpenAPI document (valid and
invalid ones, single calls and stateful sequences that create, read, change and delete) and sends
them to the real server. With every check on, the run must come out clean: no 5xx, and every
answer as the document says (status codes, bodies, headers, content types, Allow, auth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATABASE_KINDS, create_integration, event_body, register_type

MIN_CASES = 2000
PHASES = ("examples", "coverage", "fuzzing", "stateful")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# What a schema cannot say: these operations validate against stored state (the connector type's
# configSchema, the integration's type, whether the type exists) or across parameters (since
# before until, a cursor this API issued, timestamps in 1970-2200), so a schema-valid request can
# still be a 422 — documented, and named by `loc`. Every other operation must accept every
# schema-valid request.
CONFIG = """
[[operations]]
include-path-regex = "^/api/(events|events/histogram|events/facets|integrations|integrations/\\\\{integration_id\\\\}|integrations/types/register)$"
include-method-regex = "^(GET|POST|PUT)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def run_schemathesis(server, workdir: Path, *extra: str) -> dict:
    (workdir / "schemathesis.toml").write_text(CONFIG)
    report = workdir / "report.json"
    command = [
        str(SCHEMATHESIS), "run", server.url + "/api/openapi.json",
        "--checks", "all", "--phases", ",".join(PHASES),
        "--max-examples", "40", "--seed", "20260101", "--max-failures", "20",
        "--request-timeout", "30", "--report", "json", "--report-json-path", str(report),
        # a generation health check (some seeds draw many register bodies that miss its patterns)
        "--suppress-health-check", "filter_too_much",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    completed = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), completed.stdout[-5000:] + completed.stderr[-3000:]
    result = json.loads(report.read_text())
    result["output"] = completed.stdout
    return result


def seed(api) -> None:
    """Real rows, so that generated ids and filters sometimes hit existing ones."""
    integ = create_integration(api, register_type(api, "fuzzed"))
    assert api.post("/events/batch", json={"events": [event_body(integ, n) for n in range(20)]}).ok


def assert_clean(result: dict) -> None:
    output = result["output"]
    failures = output[output.find("FAILURES"):output.find("SUMMARY")] if "FAILURES" in output else ""
    summary = failures[:12000] + output[output.find("SUMMARY"):]
    assert result["test_cases"]["with_failures"] == 0 and not result["failures"], summary[-6000:]
    assert not result["errors"], summary[-6000:]
    assert result["exit_code"] == 0, summary[-6000:]
    for phase in PHASES:
        assert result["phases"][phase]["status"] == "success", (phase, result["phases"][phase])
    assert result["operations"]["tested"] >= 19


@pytest.mark.slow
@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_openapi_document_tells_the_truth(kind, make_backend, tmp_path):
    server = make_backend(kind, api_token=None, secret_key=None)
    document = server.client().get("/openapi.json").json()
    # no token configured: a token may be sent, none is required
    assert document["paths"]["/api/events"]["get"]["security"][0] == {}
    seed(server.client())
    result = run_schemathesis(server, tmp_path)
    assert_clean(result)
    assert result["test_cases"]["generated"] >= MIN_CASES, result["test_cases"]


@pytest.mark.slow
def test_openapi_document_tells_the_truth_with_a_token(make_backend, tmp_path):
    """With PAINCHAIN_API_TOKEN the document requires it, and requests without it are refused."""
    server = make_backend("sqlite", api_token="fuzz-token", secret_key=None)
    api = server.client(Authorization="Bearer fuzz-token")
    document = api.get("/openapi.json").json()
    assert document["paths"]["/api/events"]["get"]["security"] == [{"HTTPBearer": []}]
    seed(api)
    result = run_schemathesis(server, tmp_path, "-H", "Authorization: Bearer fuzz-token", "--max-examples", "10")
    assert_clean(result)
