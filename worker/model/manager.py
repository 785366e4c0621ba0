"""The manager of every model version a worker serves (TF Serving's manager, in small): it asks each model's
source for its aspired versions (`ModelConfig.aspired_versions`), lets the pure policy (`lifecycle.plan`)
decide, loads and warms new versions on a loader thread, and unloads a version only once no claim in hand
holds it. States follow TF Serving: LOADING → AVAILABLE → UNLOADING → END, or END with an error.

Only the model thread calls `poll`, between micro-batches; `resolve` is called while claiming (the claim
thread or the model thread, never both at once). The loader thread only runs the load function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.model_registry import ModelStatus, VersionState, VersionStatus, version_order
from worker.model.lifecycle import Action, InHand, Step, plan
from worker.model.serving_config import ModelConfig

log = logging.getLogger(__name__)

# load(path, model name, version) → a loaded, warmed model (worker.model.loader.LoadedModel in the worker).
Load = Callable[[str, str, str], Any]


@dataclass
class ServedVersion:
    """A loaded version; a claim bound to it holds it (the way a handle does) until its rows have run."""

    model: str
    version: str
    loaded: Any  # worker.model.loader.LoadedModel


@dataclass
class _Version:
    state: VersionState
    error: str = ""
    served: ServedVersion | None = None
    loading: Future | None = None


@dataclass
class _Model:
    config: ModelConfig
    queue: str
    bulk_queue: str
    versions: dict[str, _Version] = field(default_factory=dict)


class ModelManager:
    """Versions of the worker's models: loads, unloads and the state of each; see the module docstring."""

    def __init__(self, models: Iterable[tuple[ModelConfig, str, str]], load: Load, poll_s: float) -> None:
        """`models`: each model's config with its interactive and bulk queue."""
        self._models = {c.name: _Model(c, q, b) for c, q, b in models}
        self._load = load
        self.poll_s = poll_s
        self._next_poll = 0.0
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader")

    @classmethod
    def preloaded(cls, model: Any, queue: str, bulk_queue: str) -> ModelManager:
        """A manager serving one model loaded already (tests, benches): never watched, never unloaded."""
        config = ModelConfig(model.signature.name, fixed_path="(in memory)", fixed_version=model.signature.version)
        manager = cls([(config, queue, bulk_queue)], lambda _path, _name, _version: model, poll_s=0.0)
        manager.start()
        return manager

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def start(self) -> dict[str, str]:
        """Load every model's aspired versions now, waiting for them; returns model → why none is AVAILABLE."""
        self.poll(set())
        for model in self._models.values():
            for entry in model.versions.values():
                if entry.loading is not None:
                    entry.loading.exception()  # wait: done() below sees it finished
        self.poll(set())
        return {
            name: "; ".join(f"version {v}: {e.error}" for v, e in m.versions.items() if e.error) or "no version found"
            for name, m in self._models.items()
            if not any(e.state is VersionState.AVAILABLE for e in m.versions.values())
        }

    def poll_if_due(self, held: set[tuple[str, str]]) -> bool:
        """`poll` at most every poll_s seconds (never with poll_s 0); True when a state changed."""
        if not self.poll_s or time.monotonic() < self._next_poll:
            return False
        return self.poll(held)

    def poll(self, held: set[tuple[str, str]]) -> bool:
        """Finish loads, apply the policy to what each source aspires to, end unloads nobody holds.

        `held`: (model, version) of every claim in hand bound to a version. Returns True when a state changed.
        """
        self._next_poll = time.monotonic() + self.poll_s
        changed = False
        for model in self._models.values():
            changed |= self._finish_loads(model)
            aspired = model.config.aspired_versions()
            in_hand = {v: InHand(e.state, bool(e.error)) for v, e in model.versions.items()}
            for action in plan(set(aspired), in_hand):
                self._apply(model, action, aspired)
                changed = True
            for version, entry in model.versions.items():
                if entry.state is VersionState.UNLOADING and (model.config.name, version) not in held:
                    entry.state, entry.served = VersionState.END, None  # the last reference: TF frees it
                    log.info("model %s version %s unloaded", model.config.name, version)
                    changed = True
        return changed

    def resolve(self, model: str, version: str | None) -> ServedVersion | str:
        """The version a claim runs on: the one asked for, or the newest AVAILABLE; else why there is none."""
        entry = self._models.get(model)
        if entry is None:
            return f"this worker does not serve model {model!r} (it serves {', '.join(self._models)})"
        available = sorted(
            (v for v, e in entry.versions.items() if e.state is VersionState.AVAILABLE), key=version_order
        )
        if version is None:
            chosen = available[-1] if available else None
        else:
            chosen = version if version in available else None
        if chosen is None:
            asked = f"version {version}" if version is not None else "a version"
            return f"model {model!r} has no {asked} available (available: {', '.join(available) or 'none'})"
        served = entry.versions[chosen].served
        assert served is not None
        return served

    def statuses(self) -> list[ModelStatus]:
        """Every model with its queues, labels and versions, for the registry."""
        return [
            ModelStatus(
                m.config.name,
                m.queue,
                m.bulk_queue,
                dict(m.config.labels),
                {
                    v: VersionStatus(v, e.state, e.error, e.served.loaded.signature if e.served else None)
                    for v, e in sorted(m.versions.items(), key=lambda item: version_order(item[0]))
                },
            )
            for m in self._models.values()
        ]

    def stop(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)

    def _apply(self, model: _Model, action: Action, aspired: dict[str, str]) -> None:
        name = model.config.name
        if action.step is Step.LOAD:
            log.info("model %s version %s: loading from %s", name, action.version, aspired[action.version])
            future = self._loader.submit(self._load, aspired[action.version], name, action.version)
            model.versions[action.version] = _Version(VersionState.LOADING, loading=future)
        elif action.step is Step.UNLOAD:
            log.info("model %s version %s: unloading once no claim holds it", name, action.version)
            model.versions[action.version].state = VersionState.UNLOADING
        else:
            del model.versions[action.version]

    def _finish_loads(self, model: _Model) -> bool:
        changed = False
        for version, entry in model.versions.items():
            if entry.loading is None or not entry.loading.done():
                continue
            future, entry.loading = entry.loading, None
            changed = True
            error = future.exception()
            if error is None:
                entry.state = VersionState.AVAILABLE
                entry.served = ServedVersion(model.config.name, version, future.result())
                log.info("model %s version %s: AVAILABLE", model.config.name, version)
            else:
                entry.state, entry.error = VersionState.END, f"{type(error).__name__}: {error}"
                log.error("model %s version %s failed to load: %s", model.config.name, version, entry.error)
        return changed
