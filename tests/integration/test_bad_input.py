"""Bad input never gives a 500; every 4xx is a problem document naming the field."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.jobs import submit
from tests.support.processes import Stack


@pytest.fixture(scope="module")
def key(stack: Stack) -> str:
    return stack.create_key(f"bad-input-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def client(stack: Stack, key: str):  # type: ignore[no-untyped-def]
    with stack.client(key) as c:
        yield c


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body)
    return body


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"kind": "teleport", "params": {}}, ["kind", "teleport"]),
        ({"params": {"ms": 1}}, ["kind"]),
        ({"kind": "sleep", "params": {"ms": 60_001}}, ["params.ms", "less than or equal to 60000"]),
        ({"kind": "sleep", "params": {"ms": -1}}, ["params.ms"]),
        ({"kind": "hash", "params": {"iterations": 0}}, ["params.iterations"]),
        ({"kind": "hash", "params": {"iterations": 10_000_001}}, ["params.iterations"]),
        ({"kind": "primes", "params": {"limit": 1}}, ["params.limit"]),
        ({"kind": "primes", "params": {"limit": 100_000_001}}, ["params.limit"]),
        ({"kind": "fail", "params": {"rate": 1.5}}, ["params.rate"]),
        ({"kind": "sleep", "params": {"ms": "100"}}, ["params.ms", "integer"]),
        ({"kind": "sleep", "params": {"ms": 1.5}}, ["params.ms"]),
        ({"kind": "sleep", "params": {"ms": True}}, ["params.ms"]),
        ({"kind": "hash", "params": {"data": 5, "iterations": 1}}, ["params.data", "string"]),
        ({"kind": "sleep", "params": {}}, ["params.ms", "required"]),
        ({"kind": "sleep", "params": {"ms": 1, "extra": 2}}, ["params.extra"]),
        ({"kind": "sleep", "params": "ms=5"}, ["params"]),
        ({"kind": "sleep", "params": {"ms": 1}, "max_attempts": 0}, ["max_attempts"]),
        ([1, 2, 3], ["body"]),
    ],
)
def test_invalid_job_is_422_naming_the_field(client, body, fragments) -> None:  # type: ignore[no-untyped-def]
    body_doc = assert_problem(client.post("/v1/jobs", json=body), 422, *fragments)
    assert body_doc["errors"], body_doc


@pytest.mark.parametrize("raw", [b"{", b'{"kind": "sleep",}', b"not json", b""])
def test_malformed_json_is_400(client, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.status_code != 500
    if raw:
        assert_problem(response, 400, "not valid JSON")


def test_body_over_one_mib_is_413(client) -> None:  # type: ignore[no-untyped-def]
    big = b'{"kind": "hash", "params": {"iterations": 1, "data": "' + b"x" * (1024 * 1024) + b'"}}'
    assert_problem(
        client.post("/v1/jobs", content=big, headers={"content-type": "application/json"}),
        413,
        "bytes",
    )


def test_chunked_body_over_limit_is_413(client) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    response = client.post(
        "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer cvk_0000000000000000_wrongsecret",
    ],
)
def test_missing_or_wrong_key_is_401(stack: Stack, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=stack.api_url, headers=headers) as anonymous:
        for method, path in [
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs"),
            ("GET", "/v1/stats"),
            ("GET", f"/v1/jobs/{uuid.uuid4()}"),
        ]:
            response = anonymous.request(method, path, json={"kind": "sleep", "params": {"ms": 1}})
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"


def test_right_lookup_wrong_secret_is_401(stack: Stack, key: str) -> None:
    forged = key.rsplit("_", 1)[0] + "_" + "A" * 43
    with stack.client(forged) as c:
        assert_problem(c.get("/v1/jobs"), 401, "invalid")


def test_unknown_job_is_404(client) -> None:  # type: ignore[no-untyped-def]
    missing = uuid.uuid4()
    assert_problem(client.get(f"/v1/jobs/{missing}"), 404, str(missing))
    assert_problem(client.post(f"/v1/jobs/{missing}/cancel"), 404)


def test_malformed_job_id_is_422(client) -> None:  # type: ignore[no-untyped-def]
    assert_problem(client.get("/v1/jobs/not-a-uuid"), 422, "job_id")


def test_other_tenants_job_is_404_everywhere(stack: Stack, client) -> None:  # type: ignore[no-untyped-def]
    mine = submit(client, "sleep", {"ms": 2000})
    with stack.client(stack.create_key(f"intruder-{uuid.uuid4().hex[:6]}")) as other:
        assert_problem(other.get(f"/v1/jobs/{mine['id']}"), 404)
        assert_problem(other.post(f"/v1/jobs/{mine['id']}/cancel"), 404)
        listed = other.get("/v1/jobs").json()["items"]
        assert mine["id"] not in {job["id"] for job in listed}
        assert sum(other.get("/v1/stats").json()["counts"].values()) == 0
    # ...and the owner still sees it untouched.
    assert client.get(f"/v1/jobs/{mine['id']}").json()["status"] != "cancelled"


@pytest.mark.parametrize(
    "query",
    ["status=exploded", "kind=teleport", "limit=0", "limit=101", "limit=abc", "cursor=%%%"],
)
def test_bad_list_query_is_4xx_naming_the_parameter(client, query: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/v1/jobs?{query}")
    assert response.status_code in (400, 422), response.text
    assert query.split("=")[0] in response.json()["detail"]


def test_unknown_route_and_method_are_problems(client) -> None:  # type: ignore[no-untyped-def]
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.delete("/v1/jobs"), 405)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs:batch"])
def test_a_nul_character_postgres_cannot_store_is_a_422(client, path: str) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzz test: valid JSON, but jsonb refuses "\u0000".
    job = {"kind": "hash", "params": {"data": "W\u0000", "iterations": 1}}
    body = job if path == "/v1/jobs" else {"jobs": [job]}
    assert_problem(client.post(path, json=body), 422, "\\u0000")
