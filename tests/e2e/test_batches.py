"""Bulk batches through the real API, worker and model: uploads in every format, row errors, results in
order, and limits."""

from __future__ import annotations

import io
import os

import numpy as np
import orjson
import pytest
from rq.job import Job

from shared.npy import header
from shared.schema import OrjsonSerializer
from tests.support import copy_models

pytestmark = pytest.mark.e2e


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def ndjson_bytes(rows: np.ndarray) -> bytes:
    return b"".join(orjson.dumps(row.tolist()) + b"\n" for row in rows)


def csv_bytes(rows: np.ndarray, header: bool = True) -> bytes:
    buffer = io.BytesIO()
    np.savetxt(
        buffer,
        rows,
        delimiter=",",
        fmt="%.9g",
        header=",".join(f"p{i}" for i in range(64)) if header else "",
        comments="",
    )
    return buffer.getvalue()


def result_lines(service, batch_id: str, **params) -> list[dict]:
    response = service.http.get(f"/batches/{batch_id}/results", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


def batch_dirs(service) -> set[str]:
    root = os.path.join(service.settings.data_dir, "batches")
    return set(os.listdir(root)) if os.path.isdir(root) else set()


def test_npy_ndjson_and_csv_uploads_give_the_models_predictions_in_input_order(service, digits, digits_model):
    x = digits[0][:700]
    expected = digits_model.predict({"pixels": x})["probabilities"]
    ids = [
        service.upload(npy_bytes(x), "application/x-npy").json()["id"],
        service.upload(ndjson_bytes(x), "application/x-ndjson").json()["id"],
        service.upload(csv_bytes(x), "text/csv").json()["id"],
        service.http.post("/batches", files={"file": ("rows.csv", csv_bytes(x, header=False), "text/csv")}).json()[
            "id"
        ],
        service.http.post("/batches", files={"file": ("rows.jsonl", ndjson_bytes(x))}).json()["id"],
    ]
    for batch_id in ids:
        doc = service.wait_batch(batch_id)
        assert doc["status"] == "completed", doc
        assert (doc["total_rows"], doc["done_rows"], doc["failed_rows"]) == (700, 700, 0)
        assert doc["output_url"] == f"/batches/{batch_id}/results" and doc["errors_url"] is None
        lines = result_lines(service, batch_id)
        assert [line["row"] for line in lines] == list(range(700))
        np.testing.assert_allclose([line["prediction"] for line in lines], expected, rtol=1e-5, atol=1e-6)


def test_a_batch_of_several_chunks_completes_and_downloads_as_npy(service, digits, digits_model):
    x = np.tile(digits[0], (3, 1))[:5000]  # five chunks of BATCH_CHUNK_ROWS=1024
    expected = digits_model.predict({"pixels": x})["probabilities"]
    created = service.upload(npy_bytes(x), "application/x-npy", metadata='{"project": "digits"}')
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    assert created.headers["Location"] == f"/batches/{batch_id}"
    assert created.json()["metadata"] == {"project": "digits"}
    doc = service.wait_batch(batch_id)
    assert doc["status"] == "completed" and doc["done_rows"] == 5000
    assert doc["started_at"] <= doc["finished_at"]
    response = service.http.get(f"/batches/{batch_id}/results", headers={"Accept": "application/x-npy"})
    assert response.status_code == 200 and response.headers["X-Rows"] == "5000"
    got = np.load(io.BytesIO(response.content), allow_pickle=False)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    chunks = Job.fetch_many(
        [f"{batch_id}-{i}" for i in range(6)], connection=service.redis, serializer=OrjsonSerializer
    )
    assert [job.get_status() if job else None for job in chunks] == ["finished"] * 5 + [None]
    assert service.http.delete(f"/batches/{batch_id}").status_code == 409


def test_malformed_rows_are_rejected_with_their_row_and_line_numbers(service, digits):
    good = [orjson.dumps(row.tolist()) for row in digits[0][:5]]
    before = batch_dirs(service)
    ndjson = b"\n".join([good[0], good[1], b"[1, 2, 3]", b"", good[2], b"not json", good[3]]) + b"\n"
    response = service.upload(ndjson, "application/x-ndjson")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and "on_error=skip" in error["expected"]
    assert [(d["row"], d["line"]) for d in error["details"]] == [(2, 3), (4, 6)]
    assert "shape [3]" in error["details"][0]["error"] and "not valid JSON" in error["details"][1]["error"]

    rows = digits[0][:4].copy()
    lines = csv_bytes(rows).splitlines()  # a header line, then the rows
    lines[1] += b",7"
    lines[3] = lines[3].replace(b",", b",x", 1)
    details = service.upload(b"\n".join(lines), "text/csv").json()["error"]["details"]
    assert [(d["row"], d["line"]) for d in details] == [(0, 2), (2, 4)]
    assert "65 columns" in details[0]["error"] and "not a number" in details[1]["error"]

    rows[3, 5] = np.nan
    details = service.upload(npy_bytes(rows), "application/x-npy").json()["error"]["details"]
    assert details == [{"row": 3, "error": "rows contain NaN or infinite values (expected finite numbers)"}]
    assert batch_dirs(service) == before  # nothing of a rejected upload is kept


def test_on_error_skip_runs_the_valid_rows_and_lists_the_others(service, digits, digits_model):
    x = digits[0][:4]
    lines = [orjson.dumps(row.tolist()) for row in x]
    body = b"\n".join([lines[0], b"[1, 2, 3]", lines[1], b'{"pixels": 1}', lines[2], lines[3]])
    response = service.upload(body, "application/x-ndjson", on_error="skip")
    assert response.status_code == 202, response.text
    assert (response.json()["total_rows"], response.json()["failed_rows"]) == (6, 2)
    doc = service.wait_batch(response.json()["id"])
    assert (doc["status"], doc["done_rows"], doc["failed_rows"]) == ("completed", 4, 2)
    results = result_lines(service, doc["id"])
    assert [line["row"] for line in results] == [0, 2, 4, 5]
    expected = digits_model.predict({"pixels": x})["probabilities"]
    np.testing.assert_allclose([line["prediction"] for line in results], expected, rtol=1e-5, atol=1e-6)
    errors = [orjson.loads(line) for line in service.http.get(doc["errors_url"]).content.splitlines()]
    assert [(e["row"], e["line"]) for e in errors] == [(1, 2), (3, 4)]


def test_a_multipart_upload_takes_its_options_from_form_fields(service, digits):
    body = ndjson_bytes(digits[0][:3]) + b"[0]\n"
    response = service.http.post(
        "/batches",
        data={"on_error": "skip", "metadata": '{"a": 1}'},
        files={"file": ("rows.ndjson", body, "application/x-ndjson")},
    )
    assert response.status_code == 202, response.text
    doc = service.wait_batch(response.json()["id"])
    assert (doc["done_rows"], doc["failed_rows"], doc["metadata"]) == (3, 1, {"a": 1})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"", "application/x-ndjson", 400, "no rows"),
        (b"[1]\n", "application/json", 415, "not an upload format"),
        (npy_bytes(np.zeros((3, 8, 8), np.float32)), "application/x-npy", 400, "shape [3, 8, 8]"),
        (npy_bytes(np.array(["a"] * 64).reshape(1, 64)), "application/x-npy", 400, "dtype <U1"),
        (npy_bytes(np.zeros((3, 64), np.float32))[:-10], "application/x-npy", 400, "ends 1 rows short"),
        (header(np.dtype(object), (1, 64)) + b"\0" * 512, "application/x-npy", 400, "Python objects"),
    ],
)
def test_bad_uploads_get_a_4xx_naming_the_problem(service, body, content_type, status, words):
    response = service.upload(body, content_type)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_uploads_over_max_batch_bytes_get_413_with_or_without_a_content_length(service, make_service, digits):
    small = make_service(workers=0, max_batch_bytes=100_000)
    copy_models(service.redis, small.redis)  # what a worker would advertise
    body = npy_bytes(np.tile(digits[0], (2, 1))[:1000])  # 256 kB
    response = small.upload(body, "application/x-npy")
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    streamed = small.http.post(
        "/batches",
        content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"Content-Type": "application/x-npy"},
    )
    assert streamed.status_code == 413
    assert small.upload(body[: 300 * 256 + 128], "application/x-npy").status_code == 400  # under the limit: read


def test_unknown_batches_are_404(service):
    for path in ("/batches/" + "0" * 32, "/batches/" + "0" * 32 + "/results", "/batches/" + "0" * 32 + "/errors"):
        assert service.http.get(path).status_code == 404
    assert service.http.delete("/batches/" + "0" * 32).status_code == 404
    assert service.http.get("/batches/a.b").json()["error"]["code"] == "not_found"


def test_chunks_of_a_batch_wait_in_rq_like_any_job(service, digits):
    batch_id = service.upload(npy_bytes(digits[0][:10]), "application/x-npy").json()["id"]
    service.wait_batch(batch_id)
    job = Job.fetch(f"{batch_id}-0", connection=service.redis, serializer=OrjsonSerializer)
    assert job.origin == "predict-bulk" and job.func_name == "worker.batch_chunk"
    assert job.args[0]["start"] == 0 and job.args[0]["stop"] == 10  # the rows themselves stay in storage
