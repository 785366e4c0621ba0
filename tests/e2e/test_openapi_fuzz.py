"""The OpenAPI document tells the truth: Schemathesis, driven by /openapi.json, against a real service.

A bounded, seeded run (a few hundred cases) with every check of schemathesis.toml: no 5xx, no status code,
content type or header the document does not list, no response body that breaks its schema, schema-valid
requests accepted, schema-violating ones refused, Allow headers that match. `make fuzz` runs the same
checks with a budget of over 10,000 cases on a stack of its own.
"""

from __future__ import annotations

import pytest

from scripts.fuzz import run_schemathesis

pytestmark = pytest.mark.e2e

EXAMPLES = 3  # per operation and phase; the coverage phase adds its boundary cases on top
SEED = 1


def test_generated_requests_get_only_documented_answers(make_service):
    service = make_service(webhook_max_attempts=1)  # generated callback URLs point nowhere
    result = run_schemathesis(service.base_url, EXAMPLES, SEED, timeout_s=300)
    assert result.cases >= 200, result.output[-4000:]
    assert result.returncode == 0 and not result.failures, result.output[-8000:]
    assert service.api.running and service.live_workers() == 1, service.logs()
