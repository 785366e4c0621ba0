"""Code common to the API and the worker: settings, Redis keys, payloads, errors."""
