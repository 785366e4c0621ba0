"""A rollout under load (scripts/rollout_drill.py, short): traffic on a model while a new version directory
appears, the old version's directory is removed and a broken version appears. No accepted job is lost, none
is answered by a version it was not pinned to, and every answer's value is its version's."""

from __future__ import annotations

import httpx
import pytest

from scripts.model_versions import add_constant_version, write_config
from scripts.rollout_drill import MODEL, drill, version_state

pytestmark = pytest.mark.e2e


def test_a_new_version_goes_live_under_load_with_no_job_lost_or_answered_by_the_wrong_version(make_service, tmp_path):
    base = tmp_path / MODEL
    add_constant_version(base, 1)
    config = write_config(tmp_path / "models.config", [(MODEL, base, "")])
    service = make_service(model_config_file=str(config), model_poll_s=0.2)
    tally, delays = drill(service.base_url, base, new_versions=1)
    print(
        f"rollout drill: {dict(tally.counts)}, answers per version {dict(tally.versions)}, "
        f"{delays[0]:.2f} s from the version directory to its first answer"
    )
    assert tally.counts["lost"] == tally.counts["wrong_version"] == tally.counts["failed_otherwise"] == 0
    assert tally.versions["1"] and tally.versions["2"]
    with httpx.Client(base_url=service.base_url) as client:
        assert version_state(client, "2") == ("AVAILABLE", "")  # the broken version 3 did not replace it
        state, error = version_state(client, "3")
        assert state == "END" and error, (state, error)  # its load error, in the status
        assert version_state(client, "1")[0] == "END"
