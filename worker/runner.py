"""RUNNING: stack a micro-batch's rows, make one model call, hand each job its slice of the outputs.

If the micro-batch's call raises, each job's rows are retried on their own so that a job whose input breaks
the model fails alone and the other jobs of its micro-batch still finish.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from shared.schema import ErrorCode
from worker.microbatcher import Segment
from worker.model.loader import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What one micro-batch cost: rows, model calls (more than one after a fallback) and seconds in the model."""

    rows: int
    model_calls: int
    model_s: float

    def __add__(self, other: RunStats) -> RunStats:
        return RunStats(self.rows + other.rows, self.model_calls + other.model_calls, self.model_s + other.model_s)


def run_microbatch(model: LoadedModel | None, segments: list[Segment]) -> RunStats:
    """Run `segments` through their model versions and record outputs (or errors) on their claims.

    A claim runs on the version it is bound to (`Claim.served`), else on `model`. Claims of different
    models, versions or signatures (TF Serving's classify, regress, or a named predict signature) never
    share a model call: each group is a micro-batch of its own.
    """
    segments = [s for s in segments if s.claim.error is None]
    groups: dict[tuple[int, str], tuple[LoadedModel, list[Segment]]] = {}
    for s in segments:
        runs_on = s.claim.served.loaded if s.claim.served is not None else model
        assert runs_on is not None, f"claim {s.claim.id} is bound to no model version"
        groups.setdefault((id(runs_on), s.claim.signature), (runs_on, []))[1].append(s)
    return sum((_run_group(m, group) for m, group in groups.values()), RunStats(0, 0, 0.0))


def _run_group(model: LoadedModel, segments: list[Segment]) -> RunStats:
    """One model call for segments of one signature, then one call per claim if that raised."""
    rows = sum(s.rows for s in segments)
    if not segments:
        return RunStats(0, 0, 0.0)
    started = time.monotonic()
    try:
        _call(model, segments)
    except Exception as exc:
        log.warning(
            "micro-batch of %d rows failed (%s: %s); retrying its %d jobs one by one",
            rows,
            type(exc).__name__,
            exc,
            len(segments),
        )
        for segment in segments:
            try:
                _call(model, [segment])
            except Exception as job_exc:
                segment.claim.fail(
                    ErrorCode.INFERENCE_FAILED,
                    f"the model failed on this job's input: {type(job_exc).__name__}: {job_exc}",
                )
        return RunStats(rows, 1 + len(segments), time.monotonic() - started)
    return RunStats(rows, 1, time.monotonic() - started)


def _call(model: LoadedModel, segments: list[Segment]) -> None:
    """One model call over the segments; outputs are handed out only if the call succeeded for all."""
    signature = segments[0].claim.signature
    names = model.input_names(signature)
    if len(segments) == 1:
        inputs = {n: _rows(segments[0], n) for n in names}
    else:
        inputs = {n: np.concatenate([_rows(s, n) for s in segments]) for n in names}
    rows = sum(s.rows for s in segments)
    outputs = model.predict(inputs, signature)
    for name, array in outputs.items():
        if len(array) != rows:
            raise RuntimeError(f"output {name!r} has {len(array)} rows for {rows} input rows")
    offset = 0
    for s in segments:
        s.claim.outputs.append({k: v[offset : offset + s.rows] for k, v in outputs.items()})
        s.claim.done_rows += s.rows
        offset += s.rows


def _rows(segment: Segment, name: str) -> np.ndarray:
    """The segment's rows of input `name`."""
    inputs = segment.claim.inputs
    assert inputs is not None, f"claim {segment.claim.id} reached the model without inputs"
    return inputs[name][segment.start : segment.stop]
