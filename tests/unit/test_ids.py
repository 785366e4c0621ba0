"""Random ids are uuid4 hex."""

from __future__ import annotations

import uuid

from shared.ids import uuid4_hex


def test_ids_are_version_4_rfc_4122_uuids_in_hex():
    ids = [uuid4_hex() for _ in range(2000)]
    for made in ids:
        parsed = uuid.UUID(hex=made)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == made
    assert len(set(ids)) == len(ids)
    assert {made[12] for made in ids} == {"4"} and {made[16] for made in ids} == set("89ab")
    assert len({made[0] for made in ids}) == 16  # the random bits vary
