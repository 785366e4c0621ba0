"""A small evaluator for the instant PromQL of our alert rules, against one scrape of GET /metrics: enough
to show that a rule fires on the live service (no promtool or Prometheus on the test machines).

It knows selectors (`name{label="v"}`, with `=`, `!=`, `=~` and `!~`), `max`/`min`/`sum` with an optional `by (labels)`, `absent(...)`, a
comparison with a number (`== 0`, `> 30`), and `and on()`. Rules with range functions (`rate`, `increase`)
need a time series, not one scrape: `evaluable` says no, and the tests check only their metric names.
`up` is what Prometheus would record for the scrape: 1 if it answered 200, else 0.
"""

from __future__ import annotations

import operator
import re

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[dict[str, str], float]
COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}
AGGREGATE = {"max": max, "min": min, "sum": sum}
_VECTOR = r"[a-zA-Z_:][\w:]*(?:\{[^}]*\})?"  # a selector; its label values may hold parentheses (regexes)
_TERM = re.compile(
    rf"^\s*(?:(?P<agg>max|min|sum)\s*(?:by\s*\((?P<by>[^)]*)\)\s*)?\(\s*(?P<inner>{_VECTOR})\s*\)"
    rf"|absent\(\s*(?P<absent>{_VECTOR})\s*\)"
    rf"|(?P<plain>{_VECTOR}))\s*(?:(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>[-\d.e+]+))?\s*$"
)
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
MATCH = {
    "=": lambda have, want: have == want,
    "!=": lambda have, want: have != want,
    "=~": lambda have, want: re.fullmatch(want, have) is not None,
    "!~": lambda have, want: re.fullmatch(want, have) is None,
}
_SELECTOR = re.compile(r"^\s*(?P<name>[a-zA-Z_:][\w:]*)\s*(?:\{(?P<labels>[^}]*)\})?\s*$")


def samples(text: str, job: str, status: int) -> dict[str, list[Sample]]:
    """The scrape's samples by name, plus `up{job=...}` for its status."""
    found: dict[str, list[Sample]] = {"up": [({"job": job}, 1.0 if status == 200 else 0.0)]}
    if status == 200:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found.setdefault(s.name, []).append(({**s.labels, "job": job}, s.value))
    return found


def evaluable(expr: str) -> bool:
    return not re.search(r"\b(rate|increase|irate|delta|histogram_quantile)\s*\(", expr)


def evaluate(expr: str, scraped: dict[str, list[Sample]]) -> list[Sample]:
    """The instant vector `expr` gives; an alert with this expression fires when it is not empty."""
    left, *rights = re.split(r"\band\s+on\s*\(\s*\)", " ".join(expr.split()))
    result = _term(left, scraped)
    for right in rights:
        result = result if _term(right, scraped) else []
    return result


def _term(text: str, scraped: dict[str, list[Sample]]) -> list[Sample]:
    m = _TERM.match(text)
    if m is None:
        raise ValueError(f"not a term this evaluator knows: {text!r}")
    if m["absent"] is not None:
        vector = [] if _select(m["absent"], scraped) else [({}, 1.0)]
    elif m["agg"]:
        vector = _aggregate(m["agg"], m["by"], _select(m["inner"], scraped))
    else:
        vector = _select(m["plain"], scraped)
    if m["op"]:
        vector = [(labels, v) for labels, v in vector if COMPARE[m["op"]](v, float(m["value"]))]
    return vector


def _aggregate(how: str, by: str | None, vector: list[Sample]) -> list[Sample]:
    keys = [k.strip() for k in (by or "").split(",") if k.strip()]
    groups: dict[tuple[str, ...], list[float]] = {}
    for labels, value in vector:
        groups.setdefault(tuple(labels.get(k, "") for k in keys), []).append(value)
    return [(dict(zip(keys, group)), AGGREGATE[how](values)) for group, values in groups.items()]


def _select(selector: str, scraped: dict[str, list[Sample]]) -> list[Sample]:
    m = _SELECTOR.match(selector)
    if m is None:
        raise ValueError(f"not a selector this evaluator knows: {selector!r}")
    wanted = _MATCHER.findall(m["labels"] or "")
    return [
        (labels, v)
        for labels, v in scraped.get(m["name"], [])
        if all(MATCH[how](labels.get(k, ""), x) for k, how, x in wanted)
    ]
