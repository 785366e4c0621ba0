"""Work beside the micro-batch loop, on one background thread of each worker: send due webhooks (with retries)
and retire batches past BATCH_TTL (deleting their files; their status becomes `expired`).

A thread, not the loop, so a slow or dead webhook receiver never delays a model call; the work itself
lives in Redis (deliveries, retirement times), so several workers share it and a crashed one loses nothing.
"""

from __future__ import annotations

import logging
import threading

import orjson
import redis

from shared import keys, rq_keys
from shared.batch_records import BatchRecords
from shared.batches import BatchStatus, status_document
from shared.config import Settings
from shared.storage import Storage, StoreUnreachable
from shared.webhooks import SIGNATURE_HEADER, Delivery, DeliveryQueue, post, sign
from worker.chunk_retries import release_due

log = logging.getLogger(__name__)

TICK_S = 0.5  # how often the thread looks for due deliveries and batches to retire


class BackgroundThread:
    """The background thread; `start()` it once, `stop()` it on shutdown."""

    def __init__(
        self,
        connection: redis.Redis,
        settings: Settings,
        storage: Storage,
        records: BatchRecords,
        bulk_queues: list[str] | None = None,
    ) -> None:
        """`bulk_queues`: the bulk queues of the worker's models (default BULK_QUEUE_NAME)."""
        self.connection = connection
        self.bulk_queues = bulk_queues or [settings.bulk_queue_name]
        self.settings = settings
        self.storage = storage
        self.records = records
        # A delivery is held for longer than one call can take; if this worker dies mid-call,
        # another worker sends it once the hold ends.
        self.deliveries = DeliveryQueue(
            connection,
            settings.webhook_max_attempts,
            settings.webhook_backoff_s,
            hold_s=settings.webhook_timeout_s + 30,
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the call in hand (at most WEBHOOK_TIMEOUT_S), then return."""
        self._stopping.set()
        self._thread.join(self.settings.webhook_timeout_s + 5)

    def _run(self) -> None:
        while not self._stopping.wait(TICK_S):
            try:
                self.deliver_due()
                self.retire_due()
                for queue in self.bulk_queues:  # chunks waiting after a storage failure
                    release_due(self.connection, queue)
            except redis.RedisError as exc:  # Redis restarting: try again next tick
                log.warning("background thread skipped a turn: %s", exc)
            except Exception:
                log.exception("background thread failed; trying again next tick")

    def deliver_due(self) -> None:
        """Send every due webhook once; failures are rescheduled or given up."""
        for delivery in self.deliveries.take_due():
            if self._stopping.is_set():
                return  # its hold runs out and another worker (or the next start) sends it
            body = self._document(delivery)
            if body is None:
                self.deliveries.finish(delivery.member)  # the job or batch is gone: nothing to report
                continue
            self._send(delivery, body)

    def _send(self, delivery: Delivery, body: bytes) -> None:
        status = orjson.loads(body).get("status", "")
        headers = {
            "X-Webhook-Id": delivery.member,
            "X-Webhook-Attempt": str(delivery.attempts + 1),
            "X-Webhook-Event": f"{delivery.kind}.{status}",
        }
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(body, self.settings.webhook_secret)
        try:
            post(delivery.url, body, headers, self.settings.webhook_timeout_s)
        except Exception as exc:  # any network or HTTP error: the receiver did not take it
            again = self.deliveries.failed(delivery)
            log.warning(
                "webhook %s to %s failed on attempt %d (%s); %s",
                delivery.member,
                delivery.url,
                delivery.attempts + 1,
                exc,
                "will retry" if again else "giving up",
            )
            return
        self.deliveries.finish(delivery.member, delivered=True)
        log.info("webhook %s delivered to %s", delivery.member, delivery.url)

    def _document(self, delivery: Delivery) -> bytes | None:
        """The current status document of the delivery's job or batch, as sent."""
        if delivery.kind == "job":
            return self.connection.hget(rq_keys.job(delivery.item_id), keys.JOB_RESULT)
        record = self.records.find(delivery.item_id)
        return orjson.dumps(status_document(delivery.item_id, record)) if record else None

    def retire_due(self) -> None:
        """Retire batches past BATCH_TTL: remaining chunks are cancelled, files deleted, status `expired`."""
        for batch_id in self.records.due_for_retirement():
            if self.records.take_for_retirement(batch_id):  # several workers may see it; one sweeps it
                self.records.end(batch_id, BatchStatus.EXPIRED)
                try:
                    self.storage.delete_prefix(batch_id)
                except StoreUnreachable as exc:  # the bucket's lifecycle rule removes them in the end
                    log.warning(
                        "batch %s retired (status expired), but its files could not be deleted: %s", batch_id, exc
                    )
                    continue
                log.info("batch %s retired (status expired); its files were deleted", batch_id)
