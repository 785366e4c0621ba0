"""Webhooks: when a job or batch with a `callback_url` ends, POST its status document there, signed.

Deliveries are durable: whoever ends the job or batch adds a delivery to a Redis sorted set (due now) in
the same round trip that records the end, so a crash cannot lose it. The workers' housekeeping thread
takes due deliveries on hold (a crashed sender's hold ends and the delivery is due again), reads the current
status document, and POSTs it; a failure is retried after WEBHOOK_BACKOFF_S, doubling, until
WEBHOOK_MAX_ATTEMPTS, then dropped with a warning. A failing receiver never touches the job's outcome.

The body is signed with HMAC-SHA256 over its exact bytes, keyed by WEBHOOK_SECRET:
`X-Webhook-Signature: sha256=<hex digest>`. RQ's own `rq.Webhook` does not fit: it posts RQ's payload
rather than ours, cannot sign a body it builds itself, never retries, sends from inside the worker's job
loop, and knows nothing of batches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import redis

from shared import keys, lua, worker_metrics
from shared.errors import InvalidInput

SIGNATURE_HEADER = "X-Webhook-Signature"
MAX_URL_LENGTH = 2048
# What a usable callback URL looks like, also the OpenAPI document's pattern for it (so a client generated
# from the document sends only URLs this accepts): http(s), a host name or IPv4 address, an optional port,
# then any printable ASCII. No user:password@ part and no [IPv6] literal (urlparse refuses some of those).
CALLBACK_URL_PATTERN = r"^https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?([/?#][\x21-\x7e]*)?$"
_CALLBACK_URL = re.compile(CALLBACK_URL_PATTERN.removeprefix("^").removesuffix("$"))


def check_callback_url(url: object, allowed_hosts: frozenset[str] = frozenset()) -> str | None:
    """The callback URL if it is usable (http or https with a host, one of `allowed_hosts` or a subdomain of
    one when that set is not empty), None if absent; raises InvalidInput otherwise."""
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or not _CALLBACK_URL.fullmatch(url):
        raise InvalidInput(
            f"callback_url {str(url)[:100]!r} is not usable",
            field="callback_url",
            expected=f"an http:// or https:// URL of at most {MAX_URL_LENGTH} printable ASCII "
            "characters, with a host name or IPv4 address",
        )
    parsed = urlparse(url)
    host = (parsed.hostname or "").rstrip(".")
    if allowed_hosts and not any(host == h or host.endswith("." + h) for h in allowed_hosts):
        raise InvalidInput(
            f"callback_url host {host[:100]!r} is not allowed on this server",
            field="callback_url",
            expected="a host in WEBHOOK_ALLOWED_HOSTS: " + ", ".join(sorted(allowed_hosts)),
        )
    return url


def sign(body: bytes, secret: str) -> str:
    """The signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(body, secret), header)


def delivery_id(kind: str, item_id: str) -> str:
    """`job:<id>` or `batch:<id>`: one delivery per job or batch."""
    return f"{kind}:{item_id}"


def enqueue(pipe: Any, kind: str, item_id: str, url: str, ttl: int) -> None:
    """Add a delivery, due now, to `pipe` (the pipeline that records the end of the job or batch).

    The batch scripts in `shared/batch_records.py` do the same three writes in Lua.
    """
    member = delivery_id(kind, item_id)
    pipe.hset(keys.webhook(member), mapping={keys.WebhookField.URL: url, keys.WebhookField.ATTEMPTS: 0})
    pipe.expire(keys.webhook(member), ttl)
    pipe.zadd(keys.webhooks(), {member: time.time()})


@dataclass
class Delivery:
    """One delivery on hold: what to call and how many attempts were made before this one."""

    member: str
    kind: str
    item_id: str
    url: str
    attempts: int


class DeliveryQueue:
    """The Redis side of deliveries: take what is due (on hold), then finish or reschedule each."""

    def __init__(self, connection: redis.Redis, max_attempts: int, backoff_s: float, hold_s: float) -> None:
        self.connection = connection
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.hold_s = hold_s

    def take_due(self, limit: int = 16) -> list[Delivery]:
        """Take up to `limit` due deliveries, each on hold (not removed) until finished."""
        now = time.time()
        held = lua.script("webhook_hold")(
            keys=[keys.webhooks()], args=[now, now + self.hold_s, limit], client=self.connection
        )
        members = [m.decode() for m in held]
        if not members:
            return []
        with self.connection.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hgetall(keys.webhook(member))
            records = pipe.execute()
        deliveries = []
        for member, record in zip(members, records):
            if not record:  # its record expired: nothing left to send
                self.finish(member)
                continue
            kind, _, item_id = member.partition(":")
            url, attempts = record[keys.WebhookField.URL.encode()], record[keys.WebhookField.ATTEMPTS.encode()]
            deliveries.append(Delivery(member, kind, item_id, url.decode(), int(attempts)))
        return deliveries

    def finish(self, member: str, delivered: bool = False) -> None:
        """Forget a delivery: it succeeded (`delivered`, counted in the metrics), was given up, or is moot."""
        with self.connection.pipeline() as pipe:
            pipe.zrem(keys.webhooks(), member)
            pipe.delete(keys.webhook(member))
            if delivered:
                pipe.hincrby(keys.metrics(), worker_metrics.webhook_call_field("delivered"), 1)
            pipe.execute()

    def failed(self, delivery: Delivery) -> bool:
        """Record a failed attempt; returns True if it will be retried, False if it was given up."""
        attempts = delivery.attempts + 1
        self.connection.hincrby(keys.metrics(), worker_metrics.webhook_call_field("failed"), 1)
        if attempts >= self.max_attempts:
            self.connection.hincrby(keys.metrics(), worker_metrics.WEBHOOK_GIVEN_UP, 1)
            self.finish(delivery.member)
            return False
        with self.connection.pipeline() as pipe:
            pipe.hset(keys.webhook(delivery.member), keys.WebhookField.ATTEMPTS, attempts)
            pipe.zadd(keys.webhooks(), {delivery.member: time.time() + self.backoff_s * 2 ** (attempts - 1)})
            pipe.execute()
        return True


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the body: treat it as a failed call instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST `body`; returns the HTTP status, raising for anything but 2xx or for a network error."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    with _opener.open(request, timeout=timeout_s) as response:
        return response.status
