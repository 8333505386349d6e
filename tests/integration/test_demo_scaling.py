"""`make demo-scaling` (smoke size) produces its chart and its table."""

from __future__ import annotations

from pathlib import Path

from tests.support.commands import run_to_end
from tests.support.processes import ROOT


def test_demo_scaling_writes_chart_and_table(tmp_path: Path) -> None:
    # Stopped midway (Ctrl-C, SIGTERM to make test), the demo stops its own stack.
    done = run_to_end(
        ["python", "-m", "bench.demo_scaling", "--smoke", "--out", str(tmp_path)],
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    png = (tmp_path / "scaling.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = (tmp_path / "scaling.md").read_text()
    for row in (
        "| cpu | 1 worker process(es) |",
        "| cpu | 2 worker process(es) |",
        "| io | concurrency 1 |",
        "| io | concurrency 8 |",
    ):
        assert row in table
    assert "%|" in done.stderr  # the progress bar
