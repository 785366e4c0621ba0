"""Idempotency keys for POST /predict and POST /batches: a submit sent again with the same `Idempotency-Key`
(after a timeout, a 503, a failover) gets the job or batch the first one created, never a second one.

A key belongs to the caller's owner (its API key's fingerprint, see api/auth.py), so two API keys never
share one. Its Redis record (keys.idempotency) goes through two states:

    reservation  {"route", "token"}               SET NX by the first request; TTL RESERVATION_S, renewed
                                                  while a batch upload is read, so a crashed holder frees it
    final        {"route", "fingerprint", "id"}   written by the holder once the job or batch exists; TTL RESULT_TTL

A request that finds a record waits (up to WAIT_FOR_FIRST_S) for it to become final, then answers with its
id if its own fingerprint (SHA-256 of the route, the options and the body) is the same, 409 `conflict` if
not, and 409 `request_in_progress` (with Retry-After) if the first request is still running. Keys are
checked only once a request is valid: a refused request does not use its key up.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from flask import request

from shared import keys, lua
from shared.config import Settings
from shared.errors import Conflict, InvalidInput, RequestInProgress

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")  # 1-255 printable ASCII characters
RESERVATION_S = 30  # a reservation's life if not renewed: how long a crashed first request holds its key
RENEW_EVERY_S = 5.0  # how often a batch upload being read renews its reservation
WAIT_FOR_FIRST_S = 5.0  # how long a duplicate waits for the first request to finish before answering 409
POLL_S = 0.05  # how often it looks while it waits


@dataclass(frozen=True)
class Record:
    """A key's record: who holds it (`token`, while in progress) or what it created (`id`, once final)."""

    route: str
    token: str = ""
    fingerprint: str = ""
    id: str = ""

    def encode(self) -> bytes:
        return orjson.dumps({k: v for k, v in vars(self).items() if v})

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        return cls(**orjson.loads(raw))


def requested_key() -> str | None:
    """The request's Idempotency-Key header, None if absent; 400 naming the header if it is not valid."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not _VALID_KEY.match(value):
        raise InvalidInput(
            f"{HEADER} {value[:32]!r} is not a valid idempotency key",
            field=HEADER,
            expected="1-255 printable ASCII characters, e.g. a UUID",
        )
    return value


class Fingerprint:
    """SHA-256 of what makes two submits the same: the route, its options (query string and form fields,
    less `wait`, which changes nothing created) and the body, fed in pieces as they are read."""

    def __init__(self, route: str) -> None:
        self._hash = hashlib.sha256(route.encode() + b"\0")

    def add(self, piece: bytes) -> None:
        self._hash.update(piece)

    def pieces(self, pieces: Iterable[bytes], keep: Callable[[], None] = lambda: None) -> Iterator[bytes]:
        """`pieces`, hashed on the way through; `keep` is called every RENEW_EVERY_S of reading."""
        renewed = time.monotonic()
        for piece in pieces:
            self._hash.update(piece)
            if time.monotonic() - renewed >= RENEW_EVERY_S:
                keep()
                renewed = time.monotonic()
            yield piece

    def finish(self, *options: dict[str, Any]) -> str:
        for values in options:
            self._hash.update(b"\0" + orjson.dumps({k: v for k, v in sorted(values.items()) if k != "wait"}))
        return self._hash.hexdigest()


class Reservation:
    """One request's reservation of a key: `won` if it is the first (then `finish` or, by leaving its `with`
    block early, release it); otherwise `replay` gives the first request's id."""

    def __init__(self, registry: IdempotencyKeys, key: str, mine: Record, won: bool) -> None:
        self.registry, self.key, self.mine, self.won = registry, key, mine, won
        self._held = won

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._held:  # the job or batch was not created: a retry may try again at once
            self.registry.replace_if_held(self.key, self.mine, None)

    def renew(self) -> None:
        """Keep the reservation while a long upload is read."""
        self.registry.replace_if_held(self.key, self.mine, self.mine, RESERVATION_S)

    def finish(self, fingerprint: str, created_id: str) -> None:
        """Record what the first request created, for RESULT_TTL."""
        final = Record(self.mine.route, fingerprint=fingerprint, id=created_id)
        self.registry.replace_if_held(self.key, self.mine, final, self.registry.settings.result_ttl)
        self._held = False

    def replay(self, fingerprint: str) -> str:
        """The id the first request created, once it has one (waiting up to WAIT_FOR_FIRST_S).

        Raises:
            Conflict: the key was used with another route or another body or options.
            RequestInProgress: the first request is still running (or failed meanwhile): send again later.
        """
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while True:
            record = self.registry.read(self.key)
            if record is not None and record.route != self.mine.route:
                raise Conflict(
                    f"{HEADER} was already used for {record.route}, not {self.mine.route}",
                    field=HEADER,
                    expected="a new key for each different request",
                )
            if record is not None and record.id:
                if record.fingerprint != fingerprint:
                    raise Conflict(
                        f"{HEADER} was already used with a different request body or options (it created {record.id})",
                        field=HEADER,
                        expected="the same request as the first one with this key, or a new key",
                    )
                return record.id
            if record is None or time.monotonic() >= deadline:
                raise RequestInProgress(
                    f"the first request with this {HEADER} has not finished yet",
                    field=HEADER,
                    expected="the same request again after Retry-After seconds",
                    retry_after=1,
                )
            time.sleep(POLL_S)


class IdempotencyKeys:
    """The Redis side: reserve a key for a route, read it, change it only while holding it."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection, self.settings = connection, settings

    def reserve(self, owner: str, key: str, route: str) -> Reservation:
        """Reserve `key` for this request (won), or find it taken by an earlier one (not won)."""
        redis_key = keys.idempotency(owner, hashlib.sha256(key.encode()).hexdigest())
        mine = Record(route, token=uuid.uuid4().hex)
        won = bool(self.connection.set(redis_key, mine.encode(), nx=True, ex=RESERVATION_S))
        return Reservation(self, redis_key, mine, won)

    def read(self, redis_key: str) -> Record | None:
        raw = self.connection.get(redis_key)
        return Record.decode(raw) if raw is not None else None

    def replace_if_held(self, redis_key: str, held: Record, new: Record | None, ttl_s: int = 1) -> bool:
        """Write `new` (None: delete) if the record is still `held`; False if it expired or changed hands."""
        replace = lua.script("idempotency_replace")
        args = [held.encode(), new.encode() if new else b"", ttl_s]
        return bool(replace(keys=[redis_key], args=args, client=self.connection))
