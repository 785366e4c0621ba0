"""The inference worker: loads the model once, claims queued jobs into micro-batches, runs them, publishes results."""
