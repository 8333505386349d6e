"""The alert rules: valid for Prometheus (`promtool check rules`), each alert
proven by promtool unit tests to fire and not to fire, shipped unchanged by the
chart's PrometheusRule, and each pointing at a runbook section that exists.

promtool comes from Debian's `prometheus` package (apt-get install prometheus);
without it these tests fail: rules never evaluated must not pass."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from helm_render import CHART, NAMESPACE, REPO, find, helm, render, render_failure

RULES = CHART / "prometheus" / "rules.yml"
# Where a plain Prometheus finds them: a link to the chart's copy.
PLAIN_RULES = REPO / "deploy" / "prometheus" / "conveyor-rules.yml"
UNIT_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "operate" / "alerts.md"
# The signals the issue asks an alert for, by alert name.
REQUIRED_ALERTS = {
    "ConveyorApiErrorRatioHigh",
    "ConveyorSubmitLatencyBudgetBurn",
    "ConveyorQueueAgeGrowing",
    "ConveyorNoWorkers",
    "ConveyorJobFailureRatioHigh",
    "ConveyorLeasesExpiring",
    "ConveyorTargetDown",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install Debian's prometheus package "
            "(apt-get install prometheus); CI installs it like Chromium",
            pytrace=False,
        )
    return path


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def alerts() -> list[dict]:
    return [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]


def test_plain_rules_file_is_the_charts():
    assert PLAIN_RULES.is_symlink()
    assert PLAIN_RULES.read_text() == RULES.read_text()


def test_promtool_check_rules(promtool):
    out = run(promtool, "check", "rules", str(PLAIN_RULES))
    assert "SUCCESS" in out


def test_promtool_unit_tests_pass(promtool):
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    out = run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert "SUCCESS" in out and "FAILED" not in out


def unit_cases() -> list[dict]:
    return [case for path in UNIT_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


def identity(labels: dict[str, str]) -> tuple[str, str]:
    """What tells the tests' series apart: the namespace (and the job kind, for
    alerts by kind), or the scrape target."""
    if "namespace" in labels:
        return labels["namespace"], labels.get("kind", "")
    return labels["instance"], ""


def test_every_alert_has_series_that_fire_and_series_that_must_not():
    """promtool compares the exact set of firing alerts at each eval_time, so a
    series whose namespace (or target) is in no expected alert must stay quiet."""
    fires, quiet = set(), set()
    for case in unit_cases():
        names = {check["alertname"] for check in case["alert_rule_test"]}
        expected = {
            identity(alert["exp_labels"])
            for check in case["alert_rule_test"]
            for alert in check.get("exp_alerts") or []
        }
        series = {
            identity(dict(re.findall(r'(\w+)="([^"]*)"', s["series"])))
            for s in case["input_series"]
        }
        if expected:
            fires |= names
        if series - expected:
            quiet |= names
    alert_names = {a["alert"] for a in alerts()}
    assert alert_names >= REQUIRED_ALERTS, REQUIRED_ALERTS - alert_names
    assert alert_names <= fires, alert_names - fires
    assert alert_names <= quiet, alert_names - quiet


def test_promtool_fails_when_an_alert_fires_unexpectedly(promtool, tmp_path):
    """The quiet cases rest on promtool failing on an alert nobody expected: drop
    one expected alert per alert name and promtool must fail."""
    (tmp_path / "conveyor-rules.yml").write_text(RULES.read_text())
    (tmp_path / "tests").mkdir()
    tried = set()
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text())
        for case in doc["tests"]:
            for check in case["alert_rule_test"]:
                if not check.get("exp_alerts") or check["alertname"] in tried:
                    continue
                tried.add(check["alertname"])
                dropped = check["exp_alerts"].pop()
                mutated = tmp_path / "tests" / path.name
                mutated.write_text(yaml.safe_dump(doc))
                proc = subprocess.run(
                    [promtool, "test", "rules", str(mutated)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, check[
                    "alertname"
                ]
                check["exp_alerts"].append(dropped)
    assert tried == {a["alert"] for a in alerts()}


def test_each_alert_has_a_runbook_section():
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower())
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operate/alerts.md", url
        assert anchor == alert["alert"].lower() and anchor in anchors, url
        assert alert["annotations"]["summary"] and alert["labels"]["severity"] in {
            "critical",
            "warning",
        }


def test_prometheusrule_off_by_default():
    assert not [m for m in render() if m["kind"] == "PrometheusRule"]


def test_prometheusrule_carries_the_rules_file():
    manifests = render(
        [], {"prometheusRule.enabled": True, "prometheusRule.labels": {"release": "kps"}}
    )
    rule = find(manifests, "PrometheusRule", "alerts")
    # kubernetes-validate has no CRD schemas: check the operator's shape here.
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert rule["metadata"]["name"] == "conveyor-alerts"
    assert rule["metadata"]["namespace"] == NAMESPACE  # the release's, like the ServiceMonitors
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", rule["metadata"]["name"])
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == rules()["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r), r
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert isinstance(r["expr"], str) and r["expr"].strip()
            for value in {**r.get("labels", {}), **r.get("annotations", {})}.values():
                assert isinstance(value, str), r


def test_lint_strict_with_the_prometheusrule():
    out = helm("lint", "--strict", str(CHART), "--set", "prometheusRule.enabled=true")
    assert "0 chart(s) failed" in out


def test_schema_rejects_bad_prometheusrule_values():
    assert "prometheusRule" in render_failure({"prometheusRule.enabled": "yes"})
    assert "prometheusRule" in render_failure({"prometheusRule.rules": []})
    assert "prometheusRule" in render_failure({"prometheusRule.labels": {"release": 1}})
