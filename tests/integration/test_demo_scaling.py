"""`make demo-scaling` (smoke size) produces its chart and its table."""

from __future__ import annotations

from pathlib import Path

from tests.support.commands import run_to_end
from tests.support.processes import ROOT


def test_demo_scaling_writes_chart_and_table(tmp_path: Path) -> None:
    # Stopped midway (Ctrl-C, SIGTERM to make test), the demo stops its own stack.
    done = run_to_end(
        [
            "python",
            "-m",
            "bench.demo_scaling",
            "--smoke",
            "--scenario",
            "scaling",
            "--out",
            str(tmp_path),
        ],
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


def test_demo_pools_scenario_writes_chart_and_table(tmp_path: Path) -> None:
    """CPU and IO load together, the cpu pool scaled 1 -> 2: the table says by how
    much cpu throughput and io p95 moved (smoke size: numbers are not asserted,
    the machine is shared; `make demo-scaling` measures for real)."""
    done = run_to_end(
        [
            "python",
            "-m",
            "bench.demo_scaling",
            "--smoke",
            "--scenario",
            "pools",
            "--out",
            str(tmp_path),
        ],
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    png = (tmp_path / "pools.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = (tmp_path / "pools.md").read_text()
    before, after = (
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith(("| before |", "| after |"))
    )
    assert (before[1], after[1]) == ("1", "2")  # cpu pool processes
    assert float(before[2]) > 0 and float(after[2]) > 0  # both pools ran their kinds
    assert int(before[3]) > 0 and int(after[3]) > 0
    assert "CPU throughput after / before" in table and "IO p95 change" in table
    assert not (tmp_path / "scaling.md").exists()  # one scenario only
