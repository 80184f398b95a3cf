from __future__ import annotations

import pytest

from anomalake.detection.rules import fired, parse_rules
from anomalake.errors import AnomalakeError

RULES = """
rules:
  - name: overheating
    severity: high
    all:
      - {field: Temperature, op: ">", value: 90}
      - {field: Pressure, op: "<", value: 0.5}
  - name: odd_state
    any:
      - {field: state, op: not_in, value: [run, idle]}
      - {field: Voltage, op: between, value: [0, 100]}
"""


def test_rules_fire_as_declared() -> None:
    rules = parse_rules(RULES)
    assert [r.severity for r in rules] == ["high", "medium"]
    assert fired(rules, {"Temperature": 95, "Pressure": 0.4, "state": "run", "Voltage": 220}) == [
        "overheating"
    ]
    assert fired(rules, {"Temperature": 95, "Pressure": 0.6, "state": "run", "Voltage": 220}) == []
    assert fired(rules, {"state": "broken", "Voltage": 220}) == ["odd_state"]
    assert fired(rules, {"state": "idle", "Voltage": 50}) == ["odd_state"]


def test_missing_or_mistyped_fields_do_not_fire() -> None:
    rules = parse_rules(RULES)
    assert fired(rules, {"Pressure": 0.1}) == []
    assert fired(rules, {"Temperature": "hot", "Pressure": 0.1}) == []


@pytest.mark.parametrize(
    "bad",
    [
        "rules: [{name: r, conditions: []}]",
        "rules: [{name: r, all: [{field: x, op: '=~', value: 1}]}]",
        "rules: [{name: r, all: [{op: '>', value: 1}]}]",
    ],
)
def test_malformed_rules_are_rejected_with_the_rule_named(bad: str) -> None:
    with pytest.raises(AnomalakeError, match="'r'"):
        parse_rules(bad)
