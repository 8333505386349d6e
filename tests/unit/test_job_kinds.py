"""A job kind is one registry entry (conveyor.common.kinds) plus one handler:
the API's request union, `kind` enum and examples, the message's time limits
and the worker's handler table all follow the entry, with nothing else edited.
tests/integration/test_job_kinds.py runs such a kind on a real stack."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from pydantic import TypeAdapter, ValidationError

from conveyor.api.jobs import schemas
from conveyor.common import kinds
from conveyor.common.kinds import KINDS, KindSpec
from conveyor.common.run_job_message import run_job_message
from conveyor.worker import handlers
from tests.support.echo_kind import ECHO, EchoParams, run_echo
from tests.support.engines import ROOT


@pytest.fixture
def with_echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[KindSpec]]:
    """The registry with the echo kind in it, for this test only."""
    monkeypatch.setitem(KINDS, ECHO.name, ECHO)
    yield list(KINDS.values())


def test_the_request_union_kind_enum_and_examples_pick_up_a_new_kind(
    with_echo: list[KindSpec],
) -> None:
    union = TypeAdapter(schemas.job_create_union(with_echo))
    request = union.validate_python({"kind": "echo", "params": {"text": "hi", "times": 2}})
    assert type(request).__name__ == "EchoJobCreate"
    assert request.params == EchoParams(text="hi", times=2)
    with pytest.raises(ValidationError, match="times"):
        union.validate_python({"kind": "echo", "params": {"text": "hi", "times": 11}})
    # The built-in kinds are still there, and an unknown kind is still refused.
    assert union.validate_python({"kind": "sleep", "params": {"ms": 1}}).params.ms == 1
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        union.validate_python({"kind": "nope", "params": {}})

    names = TypeAdapter(schemas.kind_name(with_echo))
    assert names.validate_python("echo") == "echo"
    assert names.json_schema()["enum"] == ["sleep", "hash", "primes", "fail", "echo"]

    examples = schemas.create_examples(with_echo)
    assert examples["echo"] == {
        "summary": "Echo a word three times",
        "value": {"kind": "echo", "params": {"text": "hi", "times": 3}},
    }
    assert examples["fail"]["value"]["max_attempts"] == 5
    # Every example is a request the API accepts.
    for example in examples.values():
        union.validate_python(example["value"])


def test_the_worker_finds_the_handler_the_entry_names(with_echo: list[KindSpec]) -> None:
    table = handlers.resolve_handlers(with_echo)
    assert table["echo"] is run_echo
    assert table["sleep"] is handlers.run_sleep
    assert table["echo"](EchoParams(text="ab", times=2), 3) == {"echo": "abab", "attempt": 3}


def test_a_handler_that_does_not_exist_stops_the_worker_at_start() -> None:
    for handler in ("tests.support.echo_kind:run_nothing", "tests.support.echo_kind"):
        broken = KindSpec(**{**ECHO.__dict__, "handler": handler})
        with pytest.raises(LookupError, match="echo"):
            handlers.resolve_handlers([broken])


def test_time_limits_are_the_entrys_data(with_echo: list[KindSpec]) -> None:
    app = Celery("test", set_as_current=False)
    message = run_job_message(app, uuid.uuid4(), "echo", {"text": "x", "times": 4})
    assert message.headers["timelimit"] == [18, 13]  # hard 10 + 2*4, soft 5 s earlier
    sleep = run_job_message(app, uuid.uuid4(), "sleep", {"ms": 60_000})
    assert sleep.headers["timelimit"] == [90, 85]
    app.close()


def test_registering_a_kind_twice_is_refused(with_echo: list[KindSpec]) -> None:
    with pytest.raises(ValueError, match="already registered"):
        kinds.register_kind(ECHO)


_OPENAPI_WITH_ECHO = """
import json
from tests.support.echo_kind import ECHO
from conveyor.common.kinds import register_kind
register_kind(ECHO)
from conveyor.api.app import create_app
from conveyor.api.settings import ApiSettings
settings = ApiSettings(database_url="postgresql://u@localhost/db", redis_url="redis://localhost:1/0")
print(json.dumps(create_app(settings).openapi()))
"""


def test_the_openapi_document_lists_a_kind_registered_before_the_app_is_built() -> None:
    # A process of its own: this one's API modules were imported without echo.
    done = subprocess.run(
        [sys.executable, "-c", _OPENAPI_WITH_ECHO],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spec = json.loads(done.stdout.strip().splitlines()[-1])
    submit = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert set(submit["examples"]) == {"sleep", "hash", "primes", "fail", "echo"}
    components = spec["components"]["schemas"]
    assert components["EchoJobCreate"]["description"] == ECHO.description
    assert components["EchoJobCreate"]["properties"]["params"] == {
        "$ref": "#/components/schemas/EchoParams"
    }
    kind_filter = next(
        p for p in spec["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "kind"
    )
    assert "echo" in json.dumps(kind_filter["schema"])
    assert components["JobOut"]["properties"]["kind"]["enum"][-1] == "echo"


def test_the_developer_docs_table_matches_the_registry() -> None:
    page = (ROOT / "docs/develop/job-kinds.md").read_text()
    table = page.split("## The kinds today", 1)[1]
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| `")
    ]
    assert [row[0] for row in rows] == list(KINDS)
    for name, model, profile, queue, limit, handler in rows:
        spec = KINDS[name]
        assert (model, profile) == (spec.params_model.__name__, spec.profile), name
        assert queue == spec.queue, name
        assert spec.handler.endswith(f":{handler}"), name
        if callable(spec.time_limit_s):
            assert "+" in limit, (name, limit)  # it grows with the params
        else:
            assert limit == f"{spec.time_limit_s:g} s", (name, limit)
