"""The service's version: pyproject.toml's (a unit test keeps them equal); on GET / and in /openapi.json."""

SERVICE_NAME = "batched-inference-queue"
VERSION = "0.1.0"
