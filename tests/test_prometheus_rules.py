"""manifests/prometheus-rules.yaml: a well-formed PrometheusRule whose alerts parse as
PromQL and watch the bot's metrics under the names the bot exports.

PrometheusRule is a CRD (kubernetes-validate knows only built-in kinds), so its
structure is checked here against the fields of monitoring.coreos.com/v1, and
each expression is parsed by promql-parser (a PromQL parser, not a regex).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import promql_parser
import pytest
import yaml

from bot.config import SchedulerSettings, parse_settings
from tests.kustomize import BASE, MANIFESTS, config_text, render

RULES = MANIFESTS / "prometheus-rules.yaml"
# The series the bot exports on GET /metrics that the alerts rely on.
METRICS = {
    "jitsudo_last_sweep_success_timestamp_seconds",
    "jitsudo_grants_revoking",
    "jitsudo_provider_errors_total",
    "jitsudo_is_leader",
}
RULE_FIELDS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_FIELDS = {"name", "interval", "rules", "limit", "partial_response_strategy"}
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def problems(doc: dict[str, Any]) -> list[str]:
    """What makes DOC not a PrometheusRule the operator would load (empty when fine)."""
    found = []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != "PrometheusRule":
        found.append("not a monitoring.coreos.com/v1 PrometheusRule")
    if not doc.get("metadata", {}).get("name"):
        found.append("metadata.name missing")
    if set(doc.get("spec", {})) != {"groups"}:
        found.append("spec must hold exactly `groups`")
    for group in doc.get("spec", {}).get("groups", []):
        if not group.get("name") or not group.get("rules") or set(group) - GROUP_FIELDS:
            found.append(f"group {group.get('name')!r}: needs name and rules, nothing unknown")
        for rule in group.get("rules", []):
            found.extend(_rule_problems(rule))
    return found


def _rule_problems(rule: dict[str, Any]) -> list[str]:
    name = rule.get("alert")
    found = [f"{name}: unknown field {key}" for key in set(rule) - RULE_FIELDS]
    if not isinstance(name, str) or not ALERT_NAME.match(name):
        found.append(f"{name!r}: an alert needs a CamelCase name")
    if not isinstance(rule.get("expr"), str):
        found.append(f"{name}: expr must be a string")
    for key in ("for", "keep_firing_for"):
        if key in rule and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule[key])):
            found.append(f"{name}: {key} is not a Prometheus duration")
    if rule.get("labels", {}).get("severity") not in {"critical", "warning", "info"}:
        found.append(f"{name}: labels.severity must be critical, warning or info")
    if not {"summary", "description"} <= set(rule.get("annotations", {})):
        found.append(f"{name}: annotations need summary and description")
    return found


def document() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(RULES.read_text()) if d]
    return dict(doc)


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in document()["spec"]["groups"] for r in g["rules"]}


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """The metric selectors of a PromQL expression: (name, {label: value})."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name: m.value for m in node.matchers.matchers}
            found.append((node.name, labels))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def test_the_rule_is_a_well_formed_prometheus_rule() -> None:
    assert problems(document()) == []
    assert document()["metadata"]["namespace"] == "jitsudo"


@pytest.mark.parametrize(
    "broken",
    [
        {"kind": "PrometheusRules"},
        {"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": 1}]}]}},
        {"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "x", "for": "2 m"}]}]}},
        {"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "x", "fro": "2m"}]}]}},
    ],
)
def test_the_structure_check_catches_mistakes(broken: dict[str, Any]) -> None:
    assert problems({**document(), **broken}) != []


def test_every_expression_parses_and_uses_only_exported_metrics() -> None:
    for name, rule in alerts().items():
        used = {metric for metric, _ in selectors(rule["expr"])}
        assert used, name
        assert used <= METRICS, f"{name} uses {used - METRICS}"
    assert {m for r in alerts().values() for m, _ in selectors(r["expr"])} == METRICS


def test_the_parser_rejects_broken_promql() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("max by (namespace) (jitsudo_is_leader < 1")


def test_the_sweep_alert_fires_after_three_default_intervals() -> None:
    expr = promql_parser.parse(alerts()["JitsudoSweepNotSucceeding"]["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr)
    assert str(expr.op) == ">"
    threshold = timedelta(seconds=expr.rhs.val)
    shipped = parse_settings(yaml.safe_load(config_text(render(BASE))), {})
    assert (
        threshold == 3 * shipped.scheduler.sweep_interval == 3 * SchedulerSettings().sweep_interval
    )


def test_revocations_stuck_or_failing_alert() -> None:
    stuck, errors = alerts()["JitsudoRevocationsStuck"], alerts()["JitsudoRevokeErrors"]
    assert selectors(stuck["expr"]) == [("jitsudo_grants_revoking", {})]
    assert stuck["for"] == "2m"
    assert selectors(errors["expr"]) == [("jitsudo_provider_errors_total", {"operation": "revoke"})]
    assert "[10m]" in errors["expr"]


def test_no_leader_and_no_metrics_alerts() -> None:
    no_leader, absent = alerts()["JitsudoNoLeader"], alerts()["JitsudoAbsent"]
    assert selectors(no_leader["expr"]) == [("jitsudo_is_leader", {})]
    assert no_leader["for"] == "1m"
    call = promql_parser.parse(absent["expr"])
    assert isinstance(call, promql_parser.Call)
    assert call.func.name == "absent"
    assert selectors(absent["expr"]) == [("jitsudo_is_leader", {})]
