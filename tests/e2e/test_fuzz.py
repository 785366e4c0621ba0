"""Hostile and broken input, generated: whatever the request, no 5xx, the worker lives, no job is lost.

Hypothesis generates requests (methods, paths, job ids, query parameters, headers, content types and
bodies) and sends them to the real API of the session's service; a fixed list of hand-written hostile
requests goes first. Every response must be < 500 and, for errors, our JSON error shape; every job
that was accepted must end (finished, failed or expired); the worker must still be alive and ready.
The run is bounded and derandomized, so it is the same run every time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = 300
ROW = [0.0] * 64
TRAVERSAL_IDS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..",
    ".",
    "a/b",
    "%00",
    "%FF%FE%FD",
    "%C0%AE%C0%AE",
    "0" * 32,
    "x" * 65,
    "%20",
    "rq:job:x",
    "*",
    "-",
    "_",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/vnd.api+json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
    "json",
    "application/*",
]
QUERY_VALUES = ["", "0", "0.05", "0.2", "-1", "abc", "1e400", "nan", "inf", "-0", "31", "99999999", "0x10", "1_0"]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def dumps(value) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity tokens, integers of any size."""
    return json.dumps(value, allow_nan=True).encode()


HOSTILE: list[Request] = [
    Request("POST", "/predict", body=b'{"instances": [[1, 2', headers={"Content-Type": "application/json"}),
    Request("POST", "/predict", body=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"}),
    Request(
        "POST",
        "/predict",
        body=dumps({"instances": [[[[[[[[[[0.0] * 64]]]]]]]]]}),
        headers={"Content-Type": "application/json"},
    ),
    Request(
        "POST", "/predict", body=dumps({"instances": [[math.nan] * 64]}), headers={"Content-Type": "application/json"}
    ),
    Request(
        "POST", "/predict", body=dumps({"instances": [[math.inf] * 64]}), headers={"Content-Type": "application/json"}
    ),
    Request(
        "POST", "/predict", body=dumps({"instances": [[10**400] * 64]}), headers={"Content-Type": "application/json"}
    ),
    Request(
        "POST", "/predict", body=dumps({"instances": [[1e308] * 64]}), headers={"Content-Type": "application/json"}
    ),
    Request("POST", "/predict", body=dumps({"instances": [["1"] * 64]}), headers={"Content-Type": "application/json"}),
    Request("POST", "/predict", body=dumps({"instances": []}), headers={"Content-Type": "application/json"}),
    Request("POST", "/predict", body=dumps({"instances": [[]]}), headers={"Content-Type": "application/json"}),
    Request("POST", "/predict", body=dumps({"instances": [ROW] * 1025}), headers={"Content-Type": "application/json"}),
    Request("POST", "/predict", body=b"[" + b"0," * 6_000_000 + b"0]", headers={"Content-Type": "application/json"}),
    Request(
        "POST", "/predict", body=b"\xff\xfe" + dumps({"instances": [ROW]}), headers={"Content-Type": "application/json"}
    ),
    Request(
        "POST",
        "/predict",
        body='{"instances": [["\udcff"]]}'.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
    ),
    Request(
        "POST",
        "/predict",
        body=dumps({"instances": [ROW], "unknown": {"deep": [1, 2]}, "timeout": 5}),
        headers={"Content-Type": "application/json"},
    ),
    Request(
        "POST",
        "/predict",
        body=dumps({"instances": [ROW], "timeout": "soon"}),
        headers={"Content-Type": "application/json"},
    ),
    Request(
        "POST",
        "/predict",
        body=dumps({"instances": [ROW], "timeout": True}),
        headers={"Content-Type": "application/json"},
    ),
    Request("POST", "/predict", body=dumps({"instances": [ROW]}), headers={"Content-Type": "text/plain"}),
    Request("POST", "/predict", body=dumps({"instances": [ROW]})),
    Request("POST", "/predict", body=b"instances=1", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Request("GET", "/predict"),
    Request("PUT", "/result/" + "0" * 32),
    *[Request("GET", f"/result/{i}") for i in TRAVERSAL_IDS],
    *[Request("DELETE", f"/jobs/{i}") for i in TRAVERSAL_IDS],
    Request("GET", "/../../etc/passwd"),
    Request("GET", "/result/%FF?wait=0.1"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(10**25), max_value=10**25)
cell = numbers | st.sampled_from([0.0, 1.0, 16.0]) | json_values
rows = st.lists(st.lists(st.sampled_from([0.0, 3.0, 16.0]) | cell, min_size=62, max_size=66), max_size=3)
valid_rows = st.lists(st.lists(st.floats(0, 16), min_size=64, max_size=64), min_size=1, max_size=3)
valid_bodies = st.one_of(valid_rows.map(lambda r: dumps({"instances": r})), valid_rows.map(dumps))
bodies = st.one_of(
    json_values.map(dumps),
    rows.map(lambda r: dumps({"instances": r})),
    valid_rows.map(lambda r: dumps({"instances": r})),
    valid_rows.map(dumps),
    st.builds(
        lambda r, extra: dumps({"instances": r, **extra}),
        valid_rows,
        st.dictionaries(st.sampled_from(["timeout", "unknown", "instances2", ""]), json_values, max_size=2),
    ),
    st.binary(max_size=200),
)
latin1_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=30)
job_ids = st.one_of(st.sampled_from(TRAVERSAL_IDS), st.text(max_size=70).map(lambda t: quote(t, safe="")))
queries = st.dictionaries(
    st.sampled_from(["wait", "timeout", "x"]), st.sampled_from(QUERY_VALUES) | latin1_text, max_size=2
)
headers = st.dictionaries(
    st.sampled_from(["Authorization", "X-Request-Id", "Accept", "Accept-Encoding"]),
    latin1_text.map(str.strip),
    max_size=2,
)


@st.composite
def requests(draw) -> Request:
    kind = draw(st.sampled_from(["predict", "predict", "predict", "result", "cancel", "health", "other"]))
    params, extra = draw(st.just({}) | queries), draw(headers)
    if kind == "predict":
        extra["Content-Type"] = draw(
            st.just("application/json") | st.sampled_from(CONTENT_TYPES) | latin1_text.map(str.strip)
        )
        if params.get("wait") not in (None, "", "0", "0.05", "0.2"):  # keep the run short: no long waits
            params["wait"] = "0.05"
        return Request("POST", "/predict", params, extra, draw(valid_bodies | bodies))
    if kind == "result":
        params["wait"] = draw(st.sampled_from(["", "0", "0.05", "-1", "abc", "31"]))
        return Request("GET", f"/result/{draw(job_ids)}", params, extra)
    if kind == "cancel":
        return Request("DELETE", f"/jobs/{draw(job_ids)}", params, extra)
    if kind == "health":
        return Request("GET", draw(st.sampled_from(["/healthz", "/readyz", "/v1/models"])), params, extra)
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]))
    path = draw(
        st.sampled_from(["/", "/predict", "/result", "/result/", "/jobs/", "/v1/models/x", "/%00", "//predict"])
        | st.text(max_size=20).map(lambda t: "/" + quote(t, safe="/"))
    )
    return Request(
        method, path, params, extra, draw(st.binary(max_size=50)) if method in ("POST", "PUT", "PATCH") else None
    )


class Driver:
    """Sends requests, checks each answer, remembers the jobs the API accepted."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.accepted: list[str] = []
        self.statuses: Counter[int] = Counter()

    def send(self, request: Request) -> None:
        headers = {k: v.encode("latin-1") for k, v in request.headers.items()}  # raw bytes, not only ASCII
        response = self.http.request(
            request.method, request.path, params=request.params, headers=headers, content=request.body
        )
        self.statuses[response.status_code] += 1
        assert response.status_code < 500 or (request.path == "/readyz" and response.status_code == 503), (
            request,
            response.status_code,
            response.text[:300],
        )
        if response.status_code >= 400 and request.method != "HEAD":
            error = response.json()["error"]
            if request.path.startswith(("/v1/models/", "/v2/")):  # TF Serving's and KServe's own error shape
                assert isinstance(error, str) and error
            else:
                assert isinstance(error["code"], str) and isinstance(error["message"], str)
        if request.method == "POST" and request.path == "/predict" and response.status_code in (200, 202):
            self.accepted.append(response.json()["id"])


def test_fuzzed_requests_never_get_a_5xx_and_every_accepted_job_ends(service):
    driver = Driver(httpx.Client(base_url=service.base_url, timeout=60))
    for request in HOSTILE:
        driver.send(request)

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(requests())
    def fuzz(request: Request) -> None:
        driver.send(request)

    fuzz()
    print(
        f"\nfuzz: {driver.statuses.total()} requests ({len(HOSTILE)} hand-written) over the 6 endpoints and unrouted "
        f"paths and methods; {len(driver.accepted)} jobs accepted; answers {dict(sorted(driver.statuses.items()))}"
    )
    assert len(driver.accepted) > 10  # the generator does reach the model, not only the validator
    for job_id in driver.accepted:
        body = driver.http.get(f"/result/{job_id}", params={"wait": 30}).json()
        assert body["status"] in ("finished", "failed", "expired"), body
    assert all(w.running for w in service.workers)
    wait_until(lambda: driver.http.get("/readyz").status_code == 200, 10)
    driver.http.close()
