"""Each Lua script under shared/lua/, called through its Python wrapper against the real Redis.

The recovery tests (test_recovery.py) drive the scripts together through the worker's modules; these
stage one script at a time, so a broken script fails here with its own name.
"""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
import redis

from api.idempotency import IdempotencyKeys, Record
from api.jobs.redis_jobs import DEPTH_REFRESH_S, REGISTER_EVERY_S, RedisJobs, _cancel
from shared import keys, lua, rq_keys
from shared.batch_records import BatchEnd, BatchRecords, StoredUpload
from shared.batches import BatchStatus, chunk_job_id
from shared.config import Settings
from shared.errors import QueueFull
from shared.fair import DeficitRoundRobin, Job, sub_queue
from shared.payload import ENDED_DATA
from shared.schema import JobStatus
from shared.tenants import Tenant, Tenants, fingerprint
from shared.webhooks import DeliveryQueue, delivery_id
from worker.chunk_retries import release_due, schedule_retry
from worker.claim import Claim
from worker.publish import Ending, publish_endings
from worker.recovery import Recovered, purge_results, recover_leases, tidy_queue
from worker.redis_source import claim_jobs

pytestmark = pytest.mark.integration

QUEUE, BULK = "predict", "predict-bulk"


@pytest.fixture
def settings(redis_db) -> Settings:
    url = "redis://{host}:{port}/{db}".format(**redis_db.connection_pool.connection_kwargs)
    return Settings.from_env({}).replace(redis_url=url, max_attempts=2)


@pytest.fixture
def jobs(redis_db, settings) -> RedisJobs:
    return RedisJobs(redis_db, settings)


def submit(jobs: RedisJobs, rows: int = 1, **kwargs) -> str:
    return jobs.submit({"x": np.zeros((rows, 2), dtype=np.float32)}, **kwargs)


def claim(
    redis_db,
    most: int = 10,
    busy: bool = False,
    token: str = "t1",
    queues=(QUEUE,),
    caps=None,
    quantum=64,
    weights=None,
    room=1_000_000,
):
    return claim_jobs(
        redis_db,
        list(queues),
        caps or [most] * len(queues),
        quanta=[quantum] * len(queues),
        weights=weights or {},
        most=most,
        room=room,
        token=token,
        lease_until=time.time() + 60,
        worker_name="w1",
        busy=busy,
    )


def test_claim_marks_jobs_started_with_a_lease_and_takes_their_extra_rows_off_the_depth(redis_db, jobs):
    one, three = submit(jobs), submit(jobs, rows=3)
    jobs = claim(redis_db)
    assert [j.id for j in jobs] == [one, three] and [j.rows for j in jobs] == [1, 3]
    assert redis_db.llen(rq_keys.queue(QUEUE)) == 0 and int(redis_db.get(keys.extra_rows(QUEUE))) == 0
    assert redis_db.hget(rq_keys.job(one), "status") == b"started"
    assert set(redis_db.zrange(rq_keys.started(QUEUE), 0, -1)) == {f"{one}:t1".encode(), f"{three}:t1".encode()}


def test_claim_takes_from_a_list_of_lanes_in_order_with_their_caps_and_says_which_lane_each_job_came_from(
    redis_db, jobs
):
    first, other = "predict", "predict-half_plus_two"
    a = [submit(jobs, queue=first) for _ in range(2)]
    b = [submit(jobs, queue=other, version="123") for _ in range(2)]
    claimed = claim(redis_db, most=3, queues=(other, first), caps=[1, 3])
    assert [(j.id, j.lane) for j in claimed] == [(b[0], 0), (a[0], 1), (a[1], 1)]
    assert redis_db.zcard(rq_keys.started(other)) == 1 and redis_db.zcard(rq_keys.started(first)) == 2
    assert rq_keys.job_args(claimed[0].data)[0]["version"] == "123"  # the job is pinned in its payload


def test_claim_drops_cancelled_ids_without_spending_its_cap_and_puts_a_rerun_back_for_a_busy_worker(redis_db, jobs):
    cancelled, kept = submit(jobs), submit(jobs)
    redis_db.hset(rq_keys.job(cancelled), "status", "canceled")
    assert [j.id for j in claim(redis_db, most=1)] == [kept]
    rerun = submit(jobs)
    redis_db.hset(rq_keys.job(rerun), "started_at", "2026-01-01T00:00:00.000000Z")
    assert claim(redis_db, busy=True) == []
    assert redis_db.lrange(rq_keys.queue(QUEUE), 0, -1) == [rerun.encode()]  # back at the head, still queued
    [job] = claim(redis_db)
    assert job.id == rerun and job.rerun  # an idle worker takes it, alone


def test_publish_ends_only_the_jobs_whose_lease_is_still_held_and_announces_them(redis_db, jobs, settings):
    ours, lost = submit(jobs), submit(jobs)
    claim(redis_db)
    redis_db.zrem(rq_keys.started(QUEUE), f"{lost}:t1")  # recovery took this one back
    pubsub = redis_db.pubsub()
    pubsub.subscribe(keys.results_channel())
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    endings = [
        Ending(Claim(job_id, 0, f"{job_id}:t1", 1), JobStatus.FINISHED, orjson.dumps({"id": job_id}))
        for job_id in (ours, lost)
    ]
    assert publish_endings(redis_db, [QUEUE], endings, settings.result_ttl) == [True, False]
    assert redis_db.zcard(rq_keys.started(QUEUE)) == 0  # the fence (ZMSCORE, then one ZREM) removed ours
    assert publish_endings(redis_db, [QUEUE], endings, settings.result_ttl) == [False, False]  # once only
    assert redis_db.hget(rq_keys.job(ours), "status") == b"finished"
    assert redis_db.hget(rq_keys.job(ours), "data") == ENDED_DATA  # the input rows are dropped
    assert redis_db.zscore(rq_keys.finished(QUEUE), ours) is not None
    assert redis_db.zscore(keys.purge_index(), ours) is not None and redis_db.zscore(keys.purge_index(), lost) is None
    message = pubsub.get_message(timeout=5)
    assert message["data"] == f'{ours} {{"id":"{ours}"}}'.encode()


def test_recover_requeues_a_lapsed_lease_with_attempts_left_and_fails_one_without(redis_db, jobs, settings):
    job_id = submit(jobs, rows=2, callback_url="http://127.0.0.1:9/hook")
    for attempt in range(settings.max_attempts):
        claim(redis_db, token=f"t{attempt}")
        lease = f"{job_id}:t{attempt}"
        redis_db.zadd(rq_keys.started(QUEUE), {lease: 1}, xx=True)  # its worker stopped renewing it
        recovered = recover_leases(redis_db, QUEUE, [lease.encode()], message="gone", result_ttl=60)
        assert recovered == (Recovered(1, 0, []) if attempt == 0 else Recovered(0, 1, []))
    result = orjson.loads(redis_db.hget(rq_keys.job(job_id), keys.JOB_RESULT))
    assert result["status"] == "failed" and result["error"] == {"code": "worker_lost", "message": "gone"}
    assert redis_db.zscore(rq_keys.failed(QUEUE), job_id) is not None
    member = delivery_id("job", job_id)  # its webhook is scheduled under the member Python names
    assert redis_db.zscore(keys.webhooks(), member) is not None
    assert redis_db.hget(keys.webhook(member), keys.WebhookField.URL) == b"http://127.0.0.1:9/hook"


def test_a_renewed_lease_is_not_recovered(redis_db, jobs):
    job_id = submit(jobs)
    claim(redis_db)
    assert recover_leases(redis_db, QUEUE, [f"{job_id}:t1".encode()], message="gone", result_ttl=60) == Recovered(
        0, 0, []
    )


def test_cancel_takes_a_queued_job_out_with_its_rows_and_refuses_a_claimed_one(redis_db, jobs, settings):
    job_id = submit(jobs, rows=4)
    assert int(redis_db.get(keys.extra_rows(QUEUE))) == 3
    assert _cancel(redis_db, settings, job_id, b'{"status":"canceled"}', QUEUE) is True
    assert int(redis_db.get(keys.extra_rows(QUEUE))) == 0 and redis_db.llen(rq_keys.queue(QUEUE)) == 0
    assert redis_db.zscore(rq_keys.canceled(QUEUE), job_id) is not None
    claimed = submit(jobs)
    claim(redis_db)
    assert _cancel(redis_db, settings, claimed, b'{"status":"canceled"}', QUEUE) is False


def test_purge_deletes_the_hashes_of_results_past_their_ttl(redis_db, jobs):
    old, fresh = submit(jobs), submit(jobs)
    redis_db.zadd(keys.purge_index(), {old: time.time() - 1, fresh: time.time() + 600})
    assert purge_results(redis_db, 100) == 1
    assert not redis_db.exists(rq_keys.job(old)) and redis_db.exists(rq_keys.job(fresh))
    assert redis_db.zrange(keys.purge_index(), 0, -1) == [fresh.encode()]


def test_tidy_queue_zeroes_the_counter_of_an_empty_queue_only_and_rings_a_queue_rq_filled(redis_db, jobs):
    redis_db.set(keys.extra_rows(QUEUE), 7)
    submit(jobs)
    assert tidy_queue(redis_db, QUEUE, QUEUE) == 0
    redis_db.delete(rq_keys.queue(QUEUE))
    assert tidy_queue(redis_db, QUEUE, QUEUE) == 1 and redis_db.get(keys.extra_rows(QUEUE)) == b"0"
    redis_db.delete(keys.ring(QUEUE))
    redis_db.rpush(rq_keys.queue(QUEUE), "from-rq")  # RQ's own enqueue: no ring
    assert tidy_queue(redis_db, QUEUE, QUEUE) == 2 and redis_db.lrange(keys.ring(QUEUE), 0, -1) == [QUEUE.encode()]
    assert tidy_queue(redis_db, QUEUE, QUEUE) == 0


def test_webhook_hold_takes_due_deliveries_so_a_second_take_gets_none(redis_db):
    redis_db.hset(keys.webhook("job:a"), mapping={"url": "http://127.0.0.1:9/", "attempts": 0})
    redis_db.zadd(keys.webhooks(), {"job:a": time.time() - 1})
    deliveries = DeliveryQueue(redis_db, max_attempts=3, backoff_s=1, hold_s=30)
    assert [d.member for d in deliveries.take_due()] == ["job:a"]
    assert deliveries.take_due() == []


def test_idempotency_replace_changes_a_record_only_while_its_holder_still_holds_it(redis_db, settings):
    registry = IdempotencyKeys(redis_db, settings)
    reservation = registry.reserve("", "key-1", "POST /predict")
    final = Record("POST /predict", id="job-1")
    assert registry.replace_if_held(reservation.key, reservation.mine, final, ttl_s=60)
    assert registry.read(reservation.key) == final
    assert not registry.replace_if_held(reservation.key, reservation.mine, None)  # no longer its reservation
    assert registry.read(reservation.key) == final


def _batch(redis_db, settings: Settings, batch_id: str = "b1", rows: int = 10) -> BatchRecords:
    records = BatchRecords(redis_db, settings.replace(batch_chunk_rows=5))
    records.begin(batch_id, "http://127.0.0.1:9/hook", None)
    records.enqueue(batch_id, StoredUpload(rows, rows, ["x"]), 0, "http://127.0.0.1:9/hook", None)
    return records


def test_batch_end_cancels_queued_chunks_once_and_schedules_the_batch_webhook(redis_db, settings):
    records = _batch(redis_db, settings)
    assert records.end("b1", BatchStatus.CANCELLED) is BatchEnd.ENDED
    assert redis_db.hget(rq_keys.job(chunk_job_id("b1", 0)), "status") == b"canceled"
    assert redis_db.zscore(keys.webhooks(), "batch:b1") is not None
    assert records.end("b1", BatchStatus.CANCELLED) is BatchEnd.ALREADY_ENDED
    assert records.end("nope", BatchStatus.CANCELLED) is BatchEnd.UNKNOWN


def test_a_chunk_retried_later_waits_in_the_scheduled_registry_then_returns_to_the_head_of_its_queue(
    redis_db, settings
):
    _batch(redis_db, settings)
    [job, _] = claim(redis_db, queues=(BULK,), caps=[2])
    chunk = Claim(job.id, 0, f"{job.id}:t1", 5, retries_left=job.retries_left)
    assert schedule_retry(redis_db, BULK, chunk, delay_s=-1) is True
    assert redis_db.hget(rq_keys.job(chunk.id), "status") == b"scheduled"
    assert release_due(redis_db, BULK) == 1
    assert redis_db.lindex(rq_keys.queue(BULK), 0) == chunk.id.encode()
    assert redis_db.hget(rq_keys.job(chunk.id), "retries_left") == b"0"


def test_the_names_library_gives_the_scripts_the_names_python_defines(redis_db):
    tables = ", ".join(f"{table} = {table}" for table in lua.names())
    source = lua.names_library() + f"\nreturn cjson.encode({{{tables}}})".encode()
    assert orjson.loads(redis_db.eval(source, 0)) == lua.names()


# Fair share between keys (shared/fair.py, lib/fair.lua): the same inputs give the same order as the model.
TENANTS = Tenants({fingerprint(n): Tenant(n, fingerprint(n), weight=w) for n, w in (("a", 1), ("b", 2), ("c", 1))})


@pytest.fixture
def tenant_jobs(redis_db, settings) -> RedisJobs:
    return RedisJobs(redis_db, settings, TENANTS)


def test_claim_serves_keys_in_the_order_of_the_python_model_on_the_same_inputs(redis_db, tenant_jobs):
    model = DeficitRoundRobin(quantum=3, weights=TENANTS.weights())
    schedule = [("a", 1, 7), ("b", 2, 4), ("c", 5, 1), ("a", 4, 1), ("c", 1, 3)]  # (key, rows, jobs), in turn
    got, want = [], []
    for step, caps in enumerate(([4, 5], [6], [3, 3, 10], [20, 20])):
        if step < len(schedule) - 1:
            for name, rows, count in schedule[step : step + 2]:
                for _ in range(count):
                    job_id = submit(tenant_jobs, rows, owner=fingerprint(name))
                    model.push(sub_queue(QUEUE, name), [Job(job_id, rows)])
        for cap in caps:
            got += [j.id for j in claim(redis_db, most=cap, quantum=3, weights=TENANTS.weights())]
            want += [job.id for _, job in model.claim(cap)]
    assert got == want and len(got) == len(set(got)) == 22  # every job pushed, once
    assert redis_db.llen(keys.ring(QUEUE)) == len(model.ring)


def test_a_key_over_its_own_limit_gets_429_naming_it_while_another_key_is_accepted(redis_db, settings):
    jobs = RedisJobs(redis_db, settings.replace(max_queued_rows_per_key=5), TENANTS)
    for _ in range(5):
        jobs.check_capacity(fingerprint("a"))
        submit(jobs, owner=fingerprint("a"))
    with pytest.raises(QueueFull, match="key 'a'.*MAX_QUEUED_ROWS_PER_KEY=5"):
        jobs.check_capacity(fingerprint("a"))
    jobs.check_capacity(fingerprint("b"))  # B is not held back by A's backlog
    assert redis_db.llen(rq_keys.queue(sub_queue(QUEUE, "a"))) == 5


def test_with_keys_off_the_per_key_limit_holds_anonymous_traffic_as_one_key_and_says_so(redis_db, settings):
    jobs = RedisJobs(redis_db, settings.replace(max_queued_rows_per_key=2))
    for _ in range(2):
        jobs.check_capacity("")
        submit(jobs)
    with pytest.raises(QueueFull, match=r"2 rows of anonymous traffic \(API keys are off.*=2\)$"):
        jobs.check_capacity("")


def test_the_global_depth_counts_every_keys_rows(redis_db, settings):
    jobs = RedisJobs(redis_db, settings.replace(max_queue_depth=6), TENANTS)
    submit(jobs, rows=3, owner=fingerprint("a"))
    submit(jobs, rows=3, owner=fingerprint("b"))
    with pytest.raises(QueueFull, match="MAX_QUEUE_DEPTH=6"):
        jobs.check_capacity(fingerprint("c"))


@pytest.mark.counts_commands
def test_one_thread_renews_a_stale_depth_while_the_others_trust_the_last_one(redis_db, settings):
    jobs = RedisJobs(redis_db, settings.replace(max_queue_depth=100), TENANTS)

    def reads(owner: str) -> int:
        """How many depth.lua calls `check_capacity` made."""
        before = redis_db.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        jobs.check_capacity(owner)
        return redis_db.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) - before

    assert reads(fingerprint("a")) == 1 and reads(fingerprint("a")) == 0  # read, then remembered
    last = jobs._depths[QUEUE, "a"]
    last.at -= DEPTH_REFRESH_S
    last.renewing = True  # another thread is reading it now
    assert reads(fingerprint("a")) == 0
    last.renewing = False
    jobs.connection = redis.Redis(port=1)  # the renewing read fails: the next check reads again
    with pytest.raises(redis.ConnectionError):
        jobs.check_capacity(fingerprint("a"))
    jobs.connection = redis_db
    assert not last.renewing and reads(fingerprint("a")) == 1 and not jobs._depths[QUEUE, "a"].renewing


def test_recovery_and_cancel_act_on_the_jobs_own_sub_queue(redis_db, settings, tenant_jobs):
    owner, sub = fingerprint("b"), sub_queue(QUEUE, "b")
    lost, queued = submit(tenant_jobs, 2, owner=owner), submit(tenant_jobs, 3, owner=owner)
    claim(redis_db, most=1)  # `lost`: its worker dies
    tenant_jobs.cancel(queued, owner)
    assert redis_db.llen(rq_keys.queue(sub)) == 0 and int(redis_db.get(keys.extra_rows(sub))) == 0
    assert redis_db.llen(keys.ring(QUEUE)) == 0  # the sub-queue the cancel emptied left the ring at once
    assert claim(redis_db) == []
    lease = f"{lost}:t1"
    redis_db.zadd(rq_keys.started(QUEUE), {lease: 1}, xx=True)
    assert recover_leases(redis_db, QUEUE, [lease.encode()], message="gone", result_ttl=60).requeued == 1
    assert (
        redis_db.lrange(rq_keys.queue(sub), 0, -1) == [lost.encode()] and int(redis_db.get(keys.extra_rows(sub))) == 1
    )
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode()]  # back in the ring
    [job] = claim(redis_db)
    assert (job.id, job.queue) == (lost, sub)  # the claim names the job's sub-queue


def test_bulk_chunks_of_two_keys_alternate_one_chunk_per_turn(redis_db, settings):
    records = BatchRecords(redis_db, settings.replace(batch_chunk_rows=5))
    for batch_id, tenant in (("big", "a"), ("small", "b")):
        records.begin(batch_id, None, None)
        records.enqueue(
            batch_id,
            StoredUpload(20 if tenant == "a" else 10, 20 if tenant == "a" else 10, ["x"]),
            0,
            None,
            None,
            tenant=tenant,
        )
    order = [j.batch_id for j in claim(redis_db, queues=(BULK,), caps=[6], most=6, quantum=5)]
    assert order == ["big", "small", "big", "small", "big", "big"]


def test_only_the_submit_that_finds_its_sub_queue_empty_joins_the_ring_and_the_claim_that_empties_it_leaves(
    redis_db, tenant_jobs
):
    sub = sub_queue(QUEUE, "a")
    for _ in range(3):
        submit(tenant_jobs, owner=fingerprint("a"))
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode()]  # once: the invariant, no lookup
    assert len(claim(redis_db, most=2)) == 2 and redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode()]
    assert len(claim(redis_db, most=2)) == 1 and not redis_db.exists(keys.ring(QUEUE), keys.deficits(QUEUE))
    submit(tenant_jobs, owner=fingerprint("a"))
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode()]


@pytest.mark.counts_commands
def test_a_lone_keys_job_costs_one_command_more_to_submit_and_one_more_to_claim_than_without_fair_share(
    redis_db, tenant_jobs
):
    redis_db.config_resetstat()
    submit(tenant_jobs, owner=fingerprint("a"))
    claim(redis_db, most=1)
    stats = redis_db.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
    for ours in ("info", "config", "config|resetstat"):  # the test's own
        calls.pop(ours, None)
    # submit: SADD (the first time only: rq:queues), HSET, RPUSH, RPUSH on the ring (the sub-queue was empty);
    # claim: EVALSHA, LPOP of the ring (not put back: the sub-queue emptied), LPOP, HMGET, HSET (started),
    # ZADD (lease): no deficit read or write for a key alone, no LLEN
    assert calls == {"sadd": 1, "hset": 2, "rpush": 2, "evalsha": 1, "lpop": 2, "hmget": 1, "zadd": 1}


def test_a_process_registers_its_sub_queue_again_each_period_so_a_lost_set_of_queues_comes_back(redis_db, tenant_jobs):
    sub = sub_queue(QUEUE, "a")
    submit(tenant_jobs, owner=fingerprint("a"))
    assert rq_keys.queue(sub).encode() in redis_db.smembers(rq_keys.QUEUES)
    redis_db.delete(rq_keys.QUEUES)  # Redis lost it: a restart without persistence, say
    submit(tenant_jobs, owner=fingerprint("a"))  # within the period: no SADD on the hot path
    assert not redis_db.exists(rq_keys.QUEUES)
    tenant_jobs._registered[sub] -= REGISTER_EVERY_S
    submit(tenant_jobs, owner=fingerprint("a"))
    assert redis_db.smembers(rq_keys.QUEUES) == {rq_keys.queue(sub).encode()}


def test_a_submit_whose_ring_join_fails_is_accepted_and_the_recovery_sweep_rings_its_sub_queue(
    redis_db, tenant_jobs, monkeypatch
):
    sent = tenant_jobs.writes.execute
    trips: list[int] = []

    def second_trip_fails(commands, count):
        trips.append(count)
        if len(trips) == 2:  # the ring join: Redis went away between the two round trips
            raise redis.exceptions.ConnectionError("gone")
        return sent(commands, count)

    monkeypatch.setattr(tenant_jobs.writes, "execute", second_trip_fails)
    job_id, sub = submit(tenant_jobs, owner=fingerprint("a")), sub_queue(QUEUE, "a")
    assert redis_db.lrange(rq_keys.queue(sub), 0, -1) == [job_id.encode()] and not redis_db.exists(keys.ring(QUEUE))
    assert tidy_queue(redis_db, QUEUE, sub) == 2  # what the workers' sweep does every HEARTBEAT_S
    assert [j.id for j in claim(redis_db)] == [job_id]


def test_a_ring_longer_than_a_claims_visits_keeps_its_order_the_turned_keys_going_behind_the_unvisited(redis_db, jobs):
    subs = [sub_queue(QUEUE, f"k{n}") for n in range(70)]
    first = {}
    for sub in subs:  # two one-row jobs each, moved by hand to the key's sub-queue
        ids = [submit(jobs) for _ in range(2)]
        redis_db.delete(rq_keys.queue(QUEUE))
        redis_db.rpush(rq_keys.queue(sub), *ids)
        first[sub] = ids[0]
    redis_db.delete(keys.ring(QUEUE))
    redis_db.rpush(keys.ring(QUEUE), *subs)
    claimed = claim(redis_db, most=100, quantum=1)
    assert [j.id for j in claimed] == [first[sub] for sub in subs[:64]]  # 64 visits, one row each
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode() for sub in subs[64:] + subs[:64]]
    assert len(claim(redis_db, most=100, quantum=1)) == 64  # k64-k69's first, then k0-k57's second (they leave)
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub.encode() for sub in subs[58:]]


def test_a_ring_member_copied_outside_our_scripts_leaves_with_every_copy_when_its_sub_queue_empties(
    redis_db, tenant_jobs
):
    a = sub_queue(QUEUE, "a")
    mine = {key: [submit(tenant_jobs, owner=fingerprint(key)) for _ in range(2)] for key in ("a", "b")}
    redis_db.rpush(keys.ring(QUEUE), a)  # a copy, as a hand edit or RQ's tools might leave
    assert [j.id for j in claim(redis_db, most=4, quantum=1)] == [
        mine["a"][0],
        mine["b"][0],
        mine["a"][1],
        mine["b"][1],
    ]
    assert not redis_db.exists(keys.ring(QUEUE)) and not redis_db.exists(keys.deficits(QUEUE))


def test_a_claim_takes_about_its_room_in_rows_so_a_lone_keys_many_row_jobs_are_not_claimed_in_one_go(
    redis_db, tenant_jobs
):
    a = [submit(tenant_jobs, 64, owner=fingerprint("a")) for _ in range(10)]
    claimed = claim(redis_db, most=256, room=100)  # the worker's room: 100 rows; the last job may pass it
    assert [j.id for j in claimed] == a[:2]
    assert redis_db.llen(rq_keys.queue(sub_queue(QUEUE, "a"))) == 8
    b = submit(tenant_jobs, owner=fingerprint("c"))
    assert [j.id for j in claim(redis_db, most=256, room=100)] == [a[2], b, a[3]]  # b's job in the next claim


def test_a_claim_takes_as_many_chunks_as_its_room_needs_over_every_models_bulk_lane(redis_db, jobs):
    lanes = [BULK, f"{BULK}-m2", f"{BULK}-m3"]
    for lane in lanes:
        for _ in range(2):
            submit(jobs, 1024, queue=lane)  # stands for a chunk of 1,024 rows in each model's bulk lane
    claimed = claim(redis_db, most=1, queues=lanes, caps=[1, 1, 1], quantum=1024, room=256)
    assert [(j.lane, j.rows) for j in claimed] == [(0, 1024)]  # one chunk in all, not one per model


def test_a_ring_copy_counts_once_in_the_depth_and_the_next_claim_drops_it_so_a_key_gets_one_turn_a_round(
    redis_db, settings
):
    jobs = RedisJobs(redis_db, settings.replace(max_queue_depth=7), TENANTS)
    a, c = sub_queue(QUEUE, "a"), sub_queue(QUEUE, "c")
    for key in ("a", "c"):
        for _ in range(3):
            submit(jobs, owner=fingerprint(key))
    redis_db.rpush(keys.ring(QUEUE), a)  # the recovery sweep's join, racing the API's
    jobs.check_capacity(fingerprint("b"))  # 6 rows wait, not 9: below MAX_QUEUE_DEPTH=7
    assert [j.queue for j in claim(redis_db, most=4, quantum=1)] == [a, c, a, c]
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [a.encode(), c.encode()]


def test_a_cancelled_batch_s_chunks_are_dropped_within_one_turn_and_leave_its_keys_backlog_at_once(redis_db, settings):
    records = BatchRecords(redis_db, settings.replace(batch_chunk_rows=4))
    for batch_id, tenant, rows in (("big", "a", 4 * 300), ("small", "b", 8)):
        records.begin(batch_id, None, None)
        records.enqueue(batch_id, StoredUpload(rows, rows, ["x"]), 0, None, None, tenant=tenant)
    big = sub_queue(BULK, "a")
    assert records.end("big", BatchStatus.CANCELLED) is BatchEnd.ENDED
    assert redis_db.llen(rq_keys.queue(big)) == 300 and int(redis_db.get(keys.extra_rows(big))) == 0
    [job] = claim(redis_db, queues=(BULK,), caps=[1], most=1, quantum=4)  # a worker's bulk claim: one chunk
    assert (job.batch_id, job.queue) == ("small", sub_queue(BULK, "b"))  # 300 dropped ids spent nobody's turn
    assert not redis_db.exists(rq_keys.queue(big)) and redis_db.lrange(keys.ring(BULK), 0, -1) == [
        sub_queue(BULK, "b").encode()
    ]


def test_a_long_ring_left_with_one_member_by_a_claim_forgets_every_deficit(redis_db, settings):
    names = ["x", *(f"k{n:02d}" for n in range(64))]  # 65 keys: one more than a claim's visits
    jobs = RedisJobs(redis_db, settings, Tenants({fingerprint(n): Tenant(n, fingerprint(n)) for n in names}))
    model = DeficitRoundRobin(quantum=32)
    for name, rows in [("x", 100), ("x", 1), *((n, 1) for n in names[1:])]:
        job_id = submit(jobs, rows, owner=fingerprint(name))
        model.push(sub_queue(QUEUE, name), [Job(job_id, rows)])
    for cap in (1, 64):  # x overdraws its turn with 100 rows; then the 64 others take their job and leave
        assert [j.id for j in claim(redis_db, most=cap, quantum=32)] == [j.id for _, j in model.claim(cap)]
    assert redis_db.lrange(keys.ring(QUEUE), 0, -1) == [sub_queue(QUEUE, "x").encode()]
    assert not redis_db.exists(keys.deficits(QUEUE)) and model.deficits == {}  # x alone owes nothing


def test_each_models_lane_has_its_own_ring_and_a_claim_names_each_jobs_sub_queue_and_lane(redis_db, tenant_jobs):
    first, other = QUEUE, "predict-half_plus_two"
    a, c = fingerprint("a"), fingerprint("c")  # both of weight 1
    mine = {
        (lane, key): [submit(tenant_jobs, owner=key, queue=lane) for _ in range(3)]
        for lane in (first, other)
        for key in (a, c)
    }
    for lane in (first, other):
        assert redis_db.lrange(keys.ring(lane), 0, -1) == [sub_queue(lane, "a").encode(), sub_queue(lane, "c").encode()]
    claimed = claim(redis_db, most=6, queues=(other, first), caps=[4, 2], quantum=1)
    assert [(j.id, j.queue, j.lane) for j in claimed] == [
        (mine[other, a][0], sub_queue(other, "a"), 0),
        (mine[other, c][0], sub_queue(other, "c"), 0),
        (mine[other, a][1], sub_queue(other, "a"), 0),
        (mine[other, c][1], sub_queue(other, "c"), 0),
        (mine[first, a][0], sub_queue(first, "a"), 1),
        (mine[first, c][0], sub_queue(first, "c"), 1),
    ]
    assert redis_db.zcard(rq_keys.started(other)) == 4 and redis_db.zcard(rq_keys.started(first)) == 2
    tenant_jobs.cancel(mine[other, a][2], a)  # out of its own sub-queue, into its model's lane's registry
    assert redis_db.llen(rq_keys.queue(sub_queue(other, "a"))) == 0
    assert redis_db.zscore(rq_keys.canceled(other), mine[other, a][2]) is not None


@pytest.mark.counts_commands
def test_a_lane_the_claim_may_take_nothing_from_costs_no_command(redis_db, jobs):
    kept = submit(jobs, queue=BULK)
    one = submit(jobs)
    redis_db.config_resetstat()
    assert [j.id for j in claim(redis_db, queues=(QUEUE, BULK), caps=[10, 0])] == [one]
    calls = redis_db.info("commandstats")
    assert calls["cmdstat_lpop"]["calls"] == 2 and "cmdstat_lpush" not in calls  # the interactive ring, its queue
    assert redis_db.lrange(keys.ring(BULK), 0, -1) == [BULK.encode()]
    assert [j.id for j in claim(redis_db, queues=(QUEUE, BULK))] == [kept]
