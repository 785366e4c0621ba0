"""What models to serve, in TF Serving's terms: MODEL_CONFIG_FILE (TF Serving's `--model_config_file`, a text
protobuf `model_config_list`), else MODEL_NAME + MODEL_BASE_PATH (TF Serving's image), else MODEL_PATH.

The config file is parsed with the protos tensorflow-serving-api ships, so a TF Serving user's file works
unchanged. Supported per model: name, base_path (absolute, or relative to the file's directory),
model_platform "tensorflow" (or empty), model_version_policy latest N / all / specific, version_labels.
Not supported (refused with a message naming the field): other platforms, logging_config, model_type,
and a `custom_model_config` instead of a list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings
from worker.model.path import ModelPathError, locate_model, version_dirs


class ServingConfigError(ValueError):
    """The model configuration cannot be served; the message names the file or variable and the field."""


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: the newest `latest` versions, all of them, or the `specific` ones."""

    kind: str = "latest"  # latest, all or specific
    latest: int = 1
    specific: tuple[int, ...] = ()

    def aspired(self, present: set[int]) -> set[int]:
        """The versions to serve, out of the version directories present."""
        if self.kind == "all":
            return set(present)
        if self.kind == "specific":
            return present & set(self.specific)
        return set(sorted(present, reverse=True)[: self.latest])


@dataclass(frozen=True)
class ModelConfig:
    """One model to serve: its base path holds numbered version directories (TF Serving's layout).

    `fixed_path` is set instead for MODEL_PATH naming one model file or directory: one version, never watched.
    """

    name: str
    base_path: str = ""
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, str] = field(default_factory=dict)
    fixed_path: str = ""
    fixed_version: str = ""

    def aspired_versions(self) -> dict[str, str]:
        """Version → directory of every version the policy serves now (the source of aspired versions).

        A base path that is missing or unreadable aspires to nothing (the versions loaded stay served).
        """
        if self.fixed_path:
            return {self.fixed_version: self.fixed_path}
        try:
            present = version_dirs(self.base_path)
        except OSError:
            return {}
        return {str(v): present[v] for v in sorted(self.policy.aspired(set(present)))}


def served_models(settings: Settings) -> list[ModelConfig]:
    """Every model of the configuration, in its order (the first keeps QUEUE_NAME and BULK_QUEUE_NAME).

    Raises:
        ServingConfigError: the file cannot be read or parsed, or asks for something not supported.
    """
    if settings.model_config_file:
        return parse_config_file(settings.model_config_file)
    if settings.model_base_path:
        name = settings.model_name or os.path.basename(os.path.normpath(settings.model_base_path)) or "model"
        return [ModelConfig(name, base_path=settings.model_base_path)]
    return [_from_model_path(settings)]


def _from_model_path(settings: Settings) -> ModelConfig:
    """MODEL_PATH: a base directory of numbered versions is watched (latest 1); anything else is one version."""
    path = os.path.normpath(settings.model_path)
    if os.path.isdir(path) and not settings.model_version:
        try:
            if version_dirs(path) and not os.path.isfile(os.path.join(path, "saved_model.pb")):
                return ModelConfig(settings.model_name or os.path.basename(path) or "model", base_path=path)
        except OSError:
            pass
    try:
        where = locate_model(settings.model_path, settings.model_name, settings.model_version)
    except ModelPathError as exc:
        raise ServingConfigError(str(exc)) from None
    return ModelConfig(where.name, fixed_path=where.path, fixed_version=where.version)


def parse_config_file(path: str) -> list[ModelConfig]:
    """TF Serving's model config file (text protobuf ModelServerConfig with a model_config_list)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        raise ServingConfigError(f"MODEL_CONFIG_FILE {path!r} cannot be used: {exc}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ServingConfigError(
            f"MODEL_CONFIG_FILE {path!r}: expected a model_config_list (custom configs are not supported)"
        )
    models = [_model(path, c) for c in config.model_config_list.config]
    names = [m.name for m in models]
    if not models or len(set(names)) != len(names):
        raise ServingConfigError(
            f"MODEL_CONFIG_FILE {path!r}: expected one or more models with distinct names, got {names}"
        )
    return models


def _model(path: str, c: Any) -> ModelConfig:
    """One ModelConfig proto, checked for what is not supported."""
    where = f"MODEL_CONFIG_FILE {path!r}, model {c.name!r}"
    if not c.name or any(ch in c.name for ch in "/:~"):  # '~' separates a queue from its key (shared/fair.py)
        raise ServingConfigError(f"{where}: expected a name without '/', ':' or '~'")
    if c.model_platform not in ("", "tensorflow"):
        raise ServingConfigError(f"{where}: model_platform {c.model_platform!r} is not supported (only tensorflow)")
    if c.HasField("logging_config") or c.model_type:
        raise ServingConfigError(f"{where}: logging_config and model_type are not supported")
    base = os.path.join(os.path.dirname(os.path.abspath(path)), c.base_path)
    labels = {str(k): str(v) for k, v in c.version_labels.items()}
    return ModelConfig(c.name, base_path=os.path.normpath(base), policy=_policy(c.model_version_policy), labels=labels)


def _policy(policy: Any) -> VersionPolicy:
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        return VersionPolicy("specific", specific=tuple(policy.specific.versions))
    if choice == "latest":
        return VersionPolicy("latest", latest=max(1, policy.latest.num_versions))
    return VersionPolicy()
