"""The inference worker: loads the model once, claims queued jobs in batches, runs them, publishes results."""
