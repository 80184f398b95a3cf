"""Rule-based filters declared in YAML, not code.

```yaml
rules:
  - name: overheating
    severity: high
    all:                      # every condition holds (``any:`` for at least one)
      - {field: Temperature, op: ">", value: 90}
      - {field: Pressure, op: "<", value: 0.5}
```

Operators: ``> >= < <= == != in not_in between`` (``between`` takes ``[low, high]``). A
condition on a missing or null field is false. Nothing is evaluated as code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from anomalake.errors import AnomalakeError

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "between": lambda a, b: b[0] <= a <= b[1],
}


@dataclass(frozen=True)
class Condition:
    """``field op value``."""

    field: str
    op: str
    value: Any

    def holds(self, record: Mapping[str, Any]) -> bool:
        """True when the record's field satisfies the condition."""
        actual = record.get(self.field)
        if actual is None:
            return False
        try:
            return bool(OPS[self.op](actual, self.value))
        except TypeError:
            return False


@dataclass(frozen=True)
class Rule:
    """A named set of conditions combined with all (and) or any (or)."""

    name: str
    severity: str
    conditions: tuple[Condition, ...]
    combine: str = "all"

    def fires(self, record: Mapping[str, Any]) -> bool:
        """True when the rule matches the record."""
        results = (c.holds(record) for c in self.conditions)
        return all(results) if self.combine == "all" else any(results)


def parse_rules(text: str) -> list[Rule]:
    """Rules from YAML text; a malformed rule is an error naming it."""
    doc = yaml.safe_load(text) or {}
    rules = []
    for i, item in enumerate(doc.get("rules", [])):
        name = item.get("name", f"rule {i}")
        combine = "all" if "all" in item else "any" if "any" in item else None
        if combine is None:
            raise AnomalakeError(
                f"rule {name!r} has neither 'all' nor 'any'",
                "list its conditions under all: or any:",
            )
        conditions = []
        for cond in item[combine]:
            if cond.get("op") not in OPS or "field" not in cond or "value" not in cond:
                raise AnomalakeError(
                    f"rule {name!r}: bad condition {cond}",
                    f"use field, op (one of {', '.join(OPS)}) and value",
                )
            conditions.append(Condition(cond["field"], cond["op"], cond["value"]))
        rules.append(Rule(name, item.get("severity", "medium"), tuple(conditions), combine))
    return rules


def fired(rules: list[Rule], record: Mapping[str, Any]) -> list[str]:
    """Names of the rules that fire on ``record``."""
    return [r.name for r in rules if r.fires(record)]
