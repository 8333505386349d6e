"""Schemathesis fuzzes the running API from its own OpenAPI document.

Every operation gets schema-valid (positive) and schema-breaking (negative)
requests, authenticated with a real key, for well over 1000 cases in all. No
response may be a server error, and every response must be one the document
declares: its status code, its content type and its body schema.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

# A dev dependency (requirements/dev.in). Imported outright: if it is missing the
# fuzz test errors instead of skipping, so CI can never pass without fuzzing.
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.processes import Stack

MIN_CASES = 1000
EXAMPLES_PER_OPERATION_AND_MODE = 120
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_only(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Just the API: fuzzed jobs (hash 10^7 rounds, sleep 60 s) stay queued, costing nothing."""
    stack = new_stack(engines, tmp_path_factory.mktemp("fuzz"))
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


@dataclass
class Tally:
    cases: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    # (operation, failure, status) -> (how many, one reproduction)
    failures: dict[tuple[str, str, int], tuple[int, str]] = field(default_factory=dict)

    def fail(self, label: str, exc: BaseException, status: int, curl: str) -> None:
        found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        for failure in found:
            kind = f"{getattr(failure, 'code', '')} {getattr(failure, 'title', '') or failure}"
            count, example = self.failures.get((label, kind, status), (0, ""))
            message = str(getattr(failure, "message", "") or "")[:600]
            self.failures[(label, kind, status)] = (count + 1, example or f"{message}\n    {curl}")

    def report(self) -> str:
        return "\n".join(
            f"{label} -> {status} {kind} (x{count}):\n    {example}"
            for (label, kind, status), (count, example) in sorted(self.failures.items())
        )


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    session: requests.Session,
    tally: Tally,
) -> None:
    label = f"{mode.value} {operation.label}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: CI failures reproduce
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: Any) -> None:
        response = case.call(session=session, timeout=30)
        tally.cases += 1
        tally.by_operation[label] = tally.by_operation.get(label, 0) + 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # collect all, then fail once
            tally.fail(label, exc, response.status_code, case.as_curl_command())

    try:
        run()
    except Unsatisfiable:
        # Nothing to break: an operation without parameters or body has no negative cases.
        assert mode is GenerationMode.NEGATIVE, label


def test_fuzzed_requests_get_no_server_error_and_only_documented_responses(
    api_only: Stack,
) -> None:
    key = api_only.create_key(f"fuzz-{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_url(f"{api_only.api_url}/openapi.json")
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, headers, session, tally)
    took = time.monotonic() - started

    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    failed = sum(count for count, _ in tally.failures.values())
    assert not tally.failures, f"{failed} failures in {tally.cases} cases:\n{tally.report()}"
    assert server_errors == 0
    assert tally.cases >= MIN_CASES, tally.by_operation
    assert api_only.procs[0].alive()
    print(
        f"\nfuzz: {tally.cases} cases over {len(tally.by_operation)} operation/mode pairs in "
        f"{took:.0f}s; statuses {dict(sorted(tally.statuses.items()))}; 0 failures\n"
        f"{tally.by_operation}"
    )
