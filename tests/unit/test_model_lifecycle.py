"""The version policy (pure), the manager with fake loaders, and TF Serving's model config file."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from shared.config import Settings
from shared.model_registry import ModelStatus, VersionState, VersionStatus, merge
from shared.signature import ModelRef
from worker.__main__ import model_manager
from worker.claim import Claim
from worker.microbatcher import Segment
from worker.model.lifecycle import Action, InHand, Step, plan
from worker.model.manager import ModelManager, ServedVersion
from worker.model.serving_config import (
    ModelConfig,
    ServingConfigError,
    VersionPolicy,
    parse_config_file,
    served_models,
)
from worker.runner import run_microbatch

AVAILABLE, LOADING, END = InHand(VersionState.AVAILABLE), InHand(VersionState.LOADING), InHand(VersionState.END)
FAILED = InHand(VersionState.END, failed=True)


def test_a_new_version_is_loaded_before_the_old_one_is_unloaded():
    assert plan({"2"}, {"1": AVAILABLE}) == [Action(Step.LOAD, "2")]  # 1 keeps serving meanwhile
    assert plan({"2"}, {"1": AVAILABLE, "2": LOADING}) == []
    assert plan({"2"}, {"1": AVAILABLE, "2": AVAILABLE}) == [Action(Step.UNLOAD, "1")]


def test_a_version_that_failed_never_replaces_the_one_serving_and_is_not_retried():
    assert plan({"2"}, {"1": AVAILABLE, "2": FAILED}) == []
    assert plan({"1"}, {"1": AVAILABLE, "2": FAILED}) == [Action(Step.FORGET, "2")]  # its directory went


def test_only_the_newest_version_in_hand_stays_while_nothing_aspired_answers():
    assert plan(set(), {"1": AVAILABLE, "2": AVAILABLE}) == [Action(Step.UNLOAD, "1")]
    assert plan({"3"}, {"1": AVAILABLE, "2": AVAILABLE}) == [Action(Step.LOAD, "3"), Action(Step.UNLOAD, "1")]


def test_an_unloaded_version_is_loaded_again_when_it_is_aspired_again():
    assert plan({"1"}, {"1": END}) == [Action(Step.LOAD, "1")]


def test_version_policies_pick_as_tf_serving_does():
    present = {1, 2, 3}
    assert VersionPolicy().aspired(present) == {3}
    assert VersionPolicy("latest", latest=2).aspired(present) == {2, 3}
    assert VersionPolicy("all").aspired(present) == {1, 2, 3}
    assert VersionPolicy("specific", specific=(1, 7)).aspired(present) == {1}


class FakeLoads:
    """A loader whose loads finish when the test says so; a version directory holding a "broken" file fails."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()

    def __call__(self, path: str, name: str, version: str) -> object:
        self.release.wait(10)
        if (Path(path) / "broken").exists():
            raise ValueError(f"cannot load {path}")
        return type("Loaded", (), {"signature": None, "version": version})()


def _versions(base: Path, *names: str) -> None:
    for name in names:
        (base / name).mkdir()
        (base / name / "saved_model.pb").write_bytes(b"")


def _manager(tmp_path: Path, loads: FakeLoads) -> ModelManager:
    config = ModelConfig("m", base_path=str(tmp_path))
    return ModelManager([(config, "predict", "predict-bulk")], loads, poll_s=0.0)


def _states(manager: ModelManager) -> dict[str, str]:
    return {v: s.state.value for v, s in manager.statuses()[0].versions.items()}


def test_the_manager_serves_the_newest_version_and_unloads_the_old_one_once_no_claim_holds_it(tmp_path):
    loads = FakeLoads()
    _versions(tmp_path, "1")
    manager = _manager(tmp_path, loads)
    assert manager.start() == {}
    first = manager.resolve("m", None)
    assert not isinstance(first, str) and first.version == "1"
    loads.release.clear()
    _versions(tmp_path, "2")
    manager.poll({("m", "1")})
    assert _states(manager) == {"1": "AVAILABLE", "2": "LOADING"}
    assert not isinstance(served := manager.resolve("m", None), str) and served.version == "1"
    loads.release.set()
    manager._loader.submit(lambda: None).result()  # the load in hand has finished
    manager.poll({("m", "1")})  # a claim still holds version 1
    assert _states(manager) == {"1": "UNLOADING", "2": "AVAILABLE"}
    assert isinstance(manager.resolve("m", "1"), str)  # no new claim may bind to it
    manager.poll(set())
    assert _states(manager) == {"1": "END", "2": "AVAILABLE"}
    manager.stop()


def test_the_manager_keeps_serving_when_a_new_version_fails_and_reports_its_error(tmp_path):
    _versions(tmp_path, "1")
    manager = _manager(tmp_path, FakeLoads())
    manager.start()
    _versions(tmp_path, "2")
    (tmp_path / "2" / "broken").write_bytes(b"")
    manager.poll(set())
    manager._loader.submit(lambda: None).result()  # the load in hand has finished
    manager.poll(set())
    status = manager.statuses()[0].versions
    assert status["1"].state is VersionState.AVAILABLE
    assert (status["2"].state, status["2"].error) == (VersionState.END, f"ValueError: cannot load {tmp_path / '2'}")
    assert not isinstance(served := manager.resolve("m", None), str) and served.version == "1"
    manager.stop()


def test_a_tf_serving_config_file_is_read_with_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(
        "model_config_list {\n"
        '  config { name: "a" base_path: "/models/a" model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 versions: 2 } }\n"
        '    version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }\n'
        '  config { name: "b" base_path: "b" model_version_policy { latest { num_versions: 2 } } }\n'
        "}\n"
    )
    a, b = parse_config_file(str(path))
    assert (a.name, a.base_path, a.policy, a.labels) == (
        "a",
        "/models/a",
        VersionPolicy("specific", specific=(1, 2)),
        {"stable": "1", "canary": "2"},
    )
    assert (b.base_path, b.policy) == (str(tmp_path / "b"), VersionPolicy("latest", latest=2))


@pytest.mark.parametrize(
    "config, words",
    [
        ('model_config_list { config { name: "a" base_path: "/a" model_platform: "pytorch" } }', "not supported"),
        ('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" base_path: "/b" } }', "distinct"),
        ("model_config_list { config { nme: 1 } }", "cannot be used"),
        ('custom_model_config { type_url: "x" }', "model_config_list"),
    ],
)
def test_a_config_file_that_cannot_be_served_is_refused_naming_the_field(tmp_path, config, words):
    path = tmp_path / "models.config"
    path.write_text(config)
    with pytest.raises(ServingConfigError, match=words):
        parse_config_file(str(path))


def test_merged_status_shows_each_version_in_its_best_state_across_workers():
    def model(**states: VersionState) -> list[ModelStatus]:
        return [ModelStatus("m", "q", "b", {}, {v: VersionStatus(v, s) for v, s in states.items()})]

    merged = merge(
        [model(**{"1": VersionState.AVAILABLE, "2": VersionState.LOADING}), model(**{"2": VersionState.AVAILABLE})]
    )
    assert merged["m"].available() == ["2", "1"]


class FakeVersion:
    """A loaded version that answers its number and records each call's rows."""

    def __init__(self, number: int, calls: list[tuple[int, int]]) -> None:
        self.number, self.calls = number, calls

    def input_names(self, signature: str) -> list[str]:
        return ["x"]

    def predict(self, inputs: dict, signature: str) -> dict:
        self.calls.append((self.number, len(inputs["x"])))
        return {"y": np.full((len(inputs["x"]), 1), float(self.number))}


def test_a_micro_batch_never_mixes_versions_and_each_claim_runs_on_the_version_it_holds():
    calls: list[tuple[int, int]] = []
    one, two = (ServedVersion("m", str(n), FakeVersion(n, calls)) for n in (1, 2))
    claims = [
        Claim(id=str(i), queue_index=0, lease="l", rows=1, inputs={"x": np.zeros((1, 1))}, model="m", served=held)
        for i, held in enumerate([one, two, one])
    ]
    stats = run_microbatch(None, [Segment(c, 0, 1) for c in claims])
    assert sorted(calls) == [(1, 2), (2, 1)] and stats.model_calls == 2
    assert [float(c.outputs[0]["y"][0][0]) for c in claims] == [1.0, 2.0, 1.0]
    assert [c.model_ref for c in claims] == [ModelRef("m", v) for v in ("1", "2", "1")]


def test_model_base_path_serves_its_newest_version_named_after_model_name(tmp_path):
    _versions(tmp_path, "1", "2")
    (model,) = served_models(Settings().replace(model_base_path=str(tmp_path), model_name="sentiment"))
    assert (model.name, model.aspired_versions()) == ("sentiment", {"2": str(tmp_path / "2")})


def test_worker_models_picks_models_of_the_config_file_each_with_its_own_queues(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "a" base_path: "a" } config { name: "b" base_path: "b" } }')
    settings = Settings().replace(model_config_file=str(path), worker_models="b")
    manager = model_manager(settings)
    assert [(m.name, m.queue, m.bulk_queue) for m in manager.statuses()] == [("b", "predict-b", "predict-bulk-b")]
    manager.stop()
    with pytest.raises(ServingConfigError, match="WORKER_MODELS names c"):
        model_manager(settings.replace(worker_models="c"))
