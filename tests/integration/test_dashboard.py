"""The live dashboard in a real headless Chromium: it loads, and its numbers
move while jobs run."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is required for the dashboard test: apt-get install chromium")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def number(page, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(page.locator(f"#{element_id}").inner_text())


def test_dashboard_loads_and_numbers_move(stack: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = stack.create_key(f"dash-{uuid.uuid4().hex[:6]}")
    page = browser.new_page()
    page.goto(f"{stack.api_url}/dashboard#key={key}")
    page.wait_for_function("document.getElementById('succeeded').textContent === '0'")
    assert number(page, "scheduled") == "0"
    assert number(page, "workers") not in {"\u2013", "0", "n/a"}
    with stack.client(key) as client:
        for _ in range(40):
            submit(client, "sleep", {"ms": 50})
        failing = submit(client, "fail", {"rate": 1, "seed": 1}, max_attempts=1)
    page.wait_for_function(
        "Number(document.getElementById('succeeded').textContent) >= 40", timeout=60_000
    )
    page.wait_for_function("Number(document.getElementById('failed').textContent) === 1")
    assert float(number(page, "throughput")) > 0
    assert number(page, "latency").endswith("ms")
    assert "injected failure" in page.locator("#failures").inner_text()
    points = page.locator("#line-throughput").get_attribute("points") or ""
    assert len(points.split()) >= 2
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # Retry from the recent-failures list: the job runs again (and fails again,
    # deterministically), with the first run kept in its history.
    page.locator(f"#failures button.retry[data-job='{failing['id']}']").click()
    page.wait_for_function("document.getElementById('status').textContent.includes('queued again')")
    with stack.client(key) as client:
        wait_until(
            lambda: len(client.get(f"/v1/jobs/{failing['id']}").json()["attempt_history"]) == 1,
            10,
            what="the retry recorded",
        )
        again = wait_terminal(client, failing["id"])
    assert again["status"] == "failed" and again["attempts"] == 1
    assert again["attempt_history"][0]["status"] == "failed"
    page.wait_for_function("Number(document.getElementById('failed').textContent) === 1")
    page.close()


def test_dashboard_says_when_the_key_is_wrong(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(f"{stack.api_url}/dashboard#key=cvk_nope_nope")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "invalid" in page.locator("#status").inner_text()
    page.close()
