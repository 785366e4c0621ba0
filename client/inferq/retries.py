"""When the clients send a call again and after how long, and what they raise when no answer comes. No I/O:
`sync.py` and `aio.py` ask these functions and do the waiting themselves."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from inferq import errors
from inferq.core import Call


@dataclass(frozen=True)
class Retries:
    """When to send a call again, and after how long: exponential backoff with full jitter.

    Each wait is uniform in [0, min(max_backoff_s, backoff_s × 2^attempt)], so clients refused together
    (an outage, a full queue) come back spread out, not in lockstep; a Retry-After the server gave is
    waited first.
    """

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def backoff(
        self, attempt: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return min(self.max_retry_after_s, retry_after or 0.0) + rand() * ceiling

    def after_answer(self, error: errors.APIError, attempt: int) -> float | None:
        """Seconds to wait before resending after an error answer, or None to raise it.

        429, 503 and an Idempotency-Key still in progress mean the server did nothing with the call.
        """
        if attempt >= self.max_retries or not isinstance(error, RETRIED_ANSWERS):
            return None
        return self.backoff(attempt, error.retry_after)

    def after_no_answer(self, call: Call, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before resending after no answer came, or None to raise.

        A connection never made carried nothing, so any call may go again; after that, only resendable ones.
        """
        if attempt >= self.max_retries or not (call.resendable or nothing_sent(exc)):
            return None
        return self.backoff(attempt)


RETRIED_ANSWERS = (errors.QueueFull, errors.NotReady, errors.RequestInProgress)


def nothing_sent(exc: Exception) -> bool:
    """Whether the request surely never reached the server (the connection was not made)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol)


def transport_error(exc: Exception, method: str, url: str, attempts: int) -> errors.TransportError:
    """The client's own error for an exchange that ended with no answer (httpx's TransportError)."""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a connection",
        }.get(type(exc), "waiting for the answer")
        return errors.RequestTimedOut(f"{method} {url}: timed out {what} ({tries})", url=url, attempts=attempts)
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        message = f"{method} {url}: could not connect: {detail} ({tries})"
    else:
        message = f"{method} {url}: the connection broke before the answer: {detail} ({tries})"
    return errors.ConnectionFailed(message, url=url, attempts=attempts)
