"""Result lines of a batch: the fast single-output path writes exactly what row-by-row encoding writes."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from api.bulk.result_files import ndjson_lines


def row_by_row(rows, outputs):
    names = list(outputs)
    lines = b""
    for i, row in enumerate(rows):
        prediction = outputs[names[0]][i] if len(names) == 1 else {n: outputs[n][i] for n in names}
        lines += orjson.dumps({"row": row, "prediction": prediction}, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    return lines


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).random((7, 10), dtype=np.float32),
        np.array([[np.nan, 1e-30, -3.5]], dtype=np.float32),
        np.arange(5, dtype=np.int64),
        np.array([True, False, True]),
        np.zeros((3, 0), np.float32),
        np.random.default_rng(1).random((4, 2, 3)),
    ],
)
def test_a_single_output_is_written_as_row_by_row_encoding_would(array):
    rows = list(range(100, 100 + len(array)))
    assert ndjson_lines(rows, {"probabilities": array}) == row_by_row(rows, {"probabilities": array})


def test_several_outputs_give_an_object_per_row():
    outputs = {"a": np.arange(3, dtype=np.float32), "b": np.ones((3, 2), np.int32)}
    text = ndjson_lines([0, 2, 5], outputs)
    assert text == row_by_row([0, 2, 5], outputs)
    assert orjson.loads(text.splitlines()[1]) == {"row": 2, "prediction": {"a": 1.0, "b": [1, 1]}}


def test_every_line_parses_and_names_its_file_row():
    array = np.random.default_rng(2).random((1024, 10), dtype=np.float32)
    lines = ndjson_lines(list(range(3, 1027)), {"p": array}).splitlines()
    assert len(lines) == 1024
    last = orjson.loads(lines[-1])
    assert last["row"] == 1026 and np.allclose(last["prediction"], array[-1])
