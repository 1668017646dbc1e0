"""Schema-driven fuzzing: schemathesis generates requests from our OpenAPI document (valid and
invalid ones) and sends them to the real server; no request may produce a 5xx."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import create_integration, event_body, register_type


def test_no_server_errors(backend):
    # Some real data so that generated ids and filters sometimes hit existing rows.
    api = backend.client()
    integ = create_integration(api, register_type(api, "fuzzed"))
    api.post("/events/batch", json={"events": [event_body(integ, n) for n in range(20)]})
    schema = schemathesis.openapi.from_url(backend.url + "/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def no_5xx(case):
            case.call_and_validate(base_url=backend.url, checks=[not_a_server_error])

        no_5xx()
