"""Requests generated from the server's own OpenAPI document, valid and invalid alike, never
get a 5xx, and valid ones get answers that match the document (schemathesis + hypothesis).

A fresh server per database kind, so the junk it stores never reaches other tests; 10
examples per operation and mode (some 60 operations) keep each of the four runs under a
minute on two cores shared with the rest of the suite (with 15, a fresh-clone CI run took
28 minutes in all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from server_harness import Server, start_server

EXAMPLES = 10


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed_server(
    request: pytest.FixtureRequest,
    new_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    server = start_server(new_database(request.param), tmp_path_factory.mktemp("fuzzed"))
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(
    fuzzed_server: Server, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16

    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case) -> None:
            _no_long_waits(case)
            case.call_and_validate(checks=checks, timeout=30)

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing to get wrong: the operation takes no input (GET /health, POST /reap).
            assert mode is GenerationMode.NEGATIVE


def _no_long_waits(case) -> None:
    """Long polls (a worker's poll, waiting for a run) would hold each generated request for
    the seconds it asks; they are fuzzed with waits of 0, which still runs all their code."""
    poll = case.body.get("poll") if isinstance(case.body, dict) else None
    for values, key in ((poll, "wait"), (case.query, "timeout")):
        if isinstance(values, dict) and isinstance(values.get(key), (int, float)):
            values[key] = 0
