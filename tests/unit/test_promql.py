"""The small PromQL evaluator the alert tests use (tests/promql.py): what it must read right."""

from __future__ import annotations

import pytest

from tests import promql

SCRAPE = {
    "up": [({"job": "api"}, 1.0)],
    "inference_queue_oldest_job_age_seconds": [({"queue": "predict~team-a"}, 40.0), ({"queue": "predict-bulk"}, 50.0)],
}


@pytest.mark.parametrize(
    ("expr", "fires"),
    [
        ('max(inference_queue_oldest_job_age_seconds{queue=~"predict(~.+)?"}) > 30', True),
        ('max(inference_queue_oldest_job_age_seconds{queue=~"predict(~.+)?"}) > 45', False),
        ('max(inference_queue_oldest_job_age_seconds{queue!~"predict(~.+)?"}) > 45', True),
        ('inference_queue_oldest_job_age_seconds{queue!="predict-bulk"} > 45', False),
        ('up{job="api"} == 0', False),
        ('absent(up{job="api"})', False),
        ('absent(up{job="grpc"})', True),
        ('up{job="api"} == 1 and on() max(inference_queue_oldest_job_age_seconds) > 45', True),
    ],
)
def test_rules_fire_exactly_when_their_expression_holds(expr, fires):
    assert bool(promql.evaluate(expr, SCRAPE)) is fires


def test_an_expression_it_cannot_read_is_an_error_not_a_silent_no():
    with pytest.raises(ValueError, match="not a term"):
        promql.evaluate("max(foo) by (bar) + 1", SCRAPE)
