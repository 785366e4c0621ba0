"""Random ids: uuid4 in hex, made without a UUID object."""

from __future__ import annotations

import os

# uuid4's fixed bits (RFC 4122): version 4 in bits 76-79, the variant 0b10 in bits 62-63.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (4 << 76) | (0x8000 << 48)


def uuid4_hex() -> str:
    """`uuid.uuid4().hex`: the same 122 random bits and fixed bits, without UUID's constructor and `hex`
    property, which are Python code (2 us an id; /predict makes two, its request id and its job id)."""
    return f"{int.from_bytes(os.urandom(16)) & _CLEAR | _SET:032x}"
