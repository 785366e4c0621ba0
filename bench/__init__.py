"""`make bench`: the service against the model's raw limit and the classic Flask recipe."""
