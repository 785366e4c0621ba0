"""The fair-share scheduler as a pure state machine (shared/fair.py): order of service, weights, keys joining
and leaving, a key deleted mid-batch; and, on a fake clock, that one key's wait does not depend on
another key's backlog. tests/integration/test_lua_scripts.py checks that claim.lua takes the same order."""

from __future__ import annotations

from collections import Counter

from shared.fair import (
    TURNS_PER_MICROBATCH,
    DeficitRoundRobin,
    Job,
    interactive_quantum,
    lane_of,
    sub_queue,
    tenant_of,
)

LANE = "predict"
A, B, C = (sub_queue(LANE, t) for t in ("a", "b", "c"))


def jobs(prefix: str, n: int, rows: int = 1) -> list[Job]:
    return [Job(f"{prefix}{i}", rows) for i in range(n)]


def ids(claimed: list[tuple[str, Job]]) -> list[str]:
    return [job.id for _, job in claimed]


def test_sub_queue_names_round_trip_and_anonymous_traffic_keeps_the_lanes_own_queue():
    assert sub_queue(LANE, "") == LANE
    assert sub_queue(LANE, "team-a") == "predict~team-a"
    assert tenant_of("predict~team-a") == "team-a" and lane_of("predict~team-a") == LANE
    assert tenant_of(LANE) == ""


def test_keys_with_waiting_work_are_served_in_turn_one_quantum_each():
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, jobs("a", 6))
    drr.push(B, jobs("b", 6))
    assert ids(drr.claim(8)) == ["a0", "a1", "b0", "b1", "a2", "a3", "b2", "b3"]
    assert ids(drr.claim(8)) == ["a4", "a5", "b4", "b5"]
    assert not drr.ring and not drr.deficits  # emptied sub-queues leave the ring and forget their deficit


def test_a_key_alone_gets_the_whole_capacity():
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, jobs("a", 10))
    assert len(drr.claim(10)) == 10  # work-conserving: no quantum holds it back


def test_a_key_alone_keeps_no_deficit_and_a_key_left_alone_is_forgiven_its_debt():
    alone = DeficitRoundRobin(quantum=2)
    alone.push(A, jobs("a", 5))
    assert len(alone.claim(3)) == 3 and not alone.deficits  # nothing to read or write for a key alone
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, [Job("big", 6), *jobs("a", 1)])
    drr.push(B, jobs("b", 1))
    assert ids(drr.claim(1)) == ["big"] and drr.deficits == {A: -2}  # overdrew by 4: a debt, to the back
    assert ids(drr.claim(1)) == ["b0"] and not drr.deficits  # B emptied and left: A alone owes nothing
    assert ids(drr.claim(1)) == ["a0"] and not drr.ring


def test_a_claim_cut_short_resumes_the_same_turn():
    drr = DeficitRoundRobin(quantum=4)
    drr.push(A, jobs("a", 8))
    drr.push(B, jobs("b", 8))
    assert ids(drr.claim(3)) == ["a0", "a1", "a2"]
    assert ids(drr.claim(3)) == ["a3", "b0", "b1"]  # A had one row of its turn left


def test_weights_share_rows_in_proportion():
    drr = DeficitRoundRobin(quantum=1, weights={"a": 3})
    drr.push(A, jobs("a", 100))
    drr.push(B, jobs("b", 100))
    served = Counter(sub for sub, _ in drr.claim(40))
    assert served == {A: 30, B: 10}


def test_fairness_is_in_rows_not_jobs():
    drr = DeficitRoundRobin(quantum=8)
    drr.push(A, jobs("a", 10, rows=8))  # big jobs
    drr.push(B, jobs("b", 100, rows=1))  # single rows
    claimed = drr.claim(30)
    rows = Counter()
    for sub, job in claimed:
        rows[sub] += job.rows
    assert rows[A] == rows[B] or abs(rows[A] - rows[B]) <= 8


def test_a_job_larger_than_the_quantum_runs_and_its_key_pays_the_debt_in_later_turns():
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, [Job("big", 6), *jobs("a", 4)])
    drr.push(B, jobs("b", 10))
    order = ids(drr.claim(9))
    assert order[0] == "big"
    # A owes 4 rows: B gets its turns while A's debt is paid (two skipped turns), then they alternate.
    assert order[1:] == ["b0", "b1", "b2", "b3", "b4", "b5", "a0", "a1"]


def test_a_key_joining_waits_at_most_one_round_not_behind_the_backlog():
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, jobs("a", 1000))
    drr.claim(4)
    drr.push(B, jobs("b", 2))
    assert ids(drr.claim(4)) == ["a4", "a5", "b0", "b1"]


def test_a_key_leaving_and_joining_again_starts_a_fresh_turn():
    drr = DeficitRoundRobin(quantum=2)
    drr.push(A, jobs("a", 1))
    drr.push(B, jobs("b", 6))
    drr.claim(3)  # a0, b0, b1: A emptied and left
    assert A not in drr.ring and A not in drr.deficits
    drr.push(A, jobs("x", 3))
    assert ids(drr.claim(6)) == ["b2", "b3", "x0", "x1", "b4", "b5"]


def test_a_key_deleted_mid_batch_still_drains_at_weight_one():
    drr = DeficitRoundRobin(quantum=1, weights={"a": 3, "b": 1})
    drr.push(A, jobs("a", 20))
    drr.push(B, jobs("b", 20))
    drr.claim(4)  # a0-a2, b0: A's next turn (3 rows) is granted already
    drr.weights = {"b": 1}  # A removed from the keys file while its work waits: weight 1 from now on
    served = Counter(sub for sub, _ in drr.claim(20))
    assert served == {A: 3 + 8, B: 9}  # the turn granted, then one row each
    assert len(drr.claim(100)) == 40 - 24  # and all of it drains


def test_on_a_fake_clock_a_small_keys_wait_does_not_depend_on_a_big_keys_backlog():
    """One claim of 8 rows per tick: B's 16 rows finish in the same number of ticks whether A waits
    with 100 rows or with 10,000 (it depends only on the number of active keys)."""

    def ticks_for_b(backlog_of_a: int) -> int:
        drr = DeficitRoundRobin(quantum=4)
        drr.push(A, jobs("a", backlog_of_a))
        drr.claim(8)  # the service is busy with A when B arrives
        drr.push(B, jobs("b", 16))
        for tick in range(1, 10_000):
            drr.claim(8)
            if not drr.queues[B]:
                return tick
        raise AssertionError("B never finished")

    idle = DeficitRoundRobin(quantum=4)
    idle.push(B, jobs("b", 16))
    assert ticks_for_b(100) == ticks_for_b(10_000) == 4  # 16 rows at half of 8 rows a tick
    assert len(idle.claim(8)) == 8  # alone, B would take 2 ticks: within 3x with A flooding


def test_a_key_behind_a_backlogged_key_is_in_the_next_claim_with_interactive_turns():
    """A turn of an eighth of a micro-batch: B's one row is claimed beside A's backlog, not after A's whole
    micro-batch (with a turn of a whole micro-batch, A's turn fills the claim and B waits for the next)."""
    quantum = interactive_quantum(256)
    assert quantum == 256 // TURNS_PER_MICROBATCH and interactive_quantum(4) == 1
    for turn, b_claimed in ((quantum, True), (256, False)):
        drr = DeficitRoundRobin(quantum=turn)
        drr.push(A, jobs("a", 16, rows=32))  # 512 rows: A floods
        drr.push(B, jobs("b", 1))
        claimed = ids(drr.claim(8))  # a micro-batch's room: 256 rows, 8 of A's jobs
        assert ("b0" in claimed) is b_claimed
