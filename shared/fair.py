"""FAIR SHARE between API keys: each lane's sub-queues, one per key, served by deficit round robin in rows.

A *lane* is one RQ queue name the workers claim from in priority order: each model's interactive queue, then
each model's bulk queue (QUEUE_NAME and BULK_QUEUE_NAME for the first model, shared/model_registry.py).
Within a lane every key has its own *sub-queue*, a real RQ queue (so `rq info` lists each key's waiting
jobs): the lane's own name for anonymous traffic (API keys off), `<lane>~<key name>` for a named key. The
lane's *ring* (a Redis list) holds the sub-queues with waiting work, in turn order; its *deficits* hash holds
each one's allowance in rows.

`DeficitRoundRobin` is the scheduler as a pure state machine: shared/lua/lib/fair.lua runs the same steps
inside claim.lua, on the same inputs in the same order (tests/integration/test_lua_scripts.py checks it).

A claim for up to `cap` jobs looks at the head of the ring:
- absent from the deficits hash: a new turn with a full quantum (QUANTUM × weight rows);
- deficit ≤ 0 (a debt from a job larger than its allowance): the turn is skipped, the sub-queue goes to
  the back with one more quantum;
- else it takes jobs while its deficit stays > 0 (a job may overdraw it; the debt is paid in later turns);
  an emptied sub-queue leaves the ring and forgets its deficit; one whose deficit ran out goes to the back
  with one more quantum; one cut short by `cap` stays at the head with what it has left.
A sub-queue alone in its lane owes nothing and is owed nothing: it takes up to `cap` jobs and keeps no
deficit (a ring left with one member forgets every deficit), so the scheduler is work-conserving and a lone
key costs no deficit reads or writes. Invariant (every script that fills or empties a sub-queue keeps it): a
sub-queue is in its lane's ring, once, iff it has jobs waiting; so a submit that makes a sub-queue non-empty
joins it to the ring without looking for it there.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis

from shared import rq_keys

SEPARATOR = "~"
# A key's name: in queue names, metric labels and logs, so plain and short.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # whole names only: NAME.fullmatch
MAX_VISITS = 64  # sub-queues one claim looks at, at most (each costs a few commands): O(1) per claim
# A key's turn in an interactive lane is this fraction of a micro-batch, so that one claim serves up to this
# many keys' turns: a key that comes behind others with a backlog runs in the next micro-batch, beside them,
# instead of after a whole micro-batch of each (a turn of a whole micro-batch made a one-row request wait for
# one more micro-batch of the flooding key's).
TURNS_PER_MICROBATCH = 8


def interactive_quantum(max_microbatch_rows: int) -> int:
    """A key's turn in an interactive lane, in rows at weight 1: 1/TURNS_PER_MICROBATCH of a micro-batch."""
    return max(1, max_microbatch_rows // TURNS_PER_MICROBATCH)


def sub_queue(lane: str, tenant: str) -> str:
    """The RQ queue holding `tenant`'s jobs in `lane` ("" is the anonymous tenant: the lane's own name)."""
    return f"{lane}{SEPARATOR}{tenant}" if tenant else lane


def tenant_of(queue_name: str) -> str:
    """The tenant whose sub-queue `queue_name` is ("" for a lane's own queue)."""
    return queue_name.partition(SEPARATOR)[2]


def lane_of(queue_name: str) -> str:
    """The lane a sub-queue belongs to."""
    return queue_name.partition(SEPARATOR)[0]


def sub_queues(connection: redis.Redis, lane: str) -> list[str]:
    """Every sub-queue of `lane` RQ knows (`rq:queues`, where the API registers each), the lane's own first."""
    prefix = rq_keys.queue("")
    names = (m.decode()[len(prefix) :] for m in connection.smembers(rq_keys.QUEUES))
    return [lane, *sorted(n for n in names if n.startswith(lane + SEPARATOR))]


@dataclass
class Job:
    """A job waiting in a sub-queue, as the scheduler sees it."""

    id: str
    rows: int = 1


@dataclass
class DeficitRoundRobin:
    """One lane's scheduler state: the ring, the deficits and the sub-queues (sub-queue name → its jobs).

    `weights` maps a tenant name to its weight; a tenant absent from it (a key deleted from the keys file
    while its work waits, say) weighs 1, so its work still drains.
    """

    quantum: int
    weights: Mapping[str, int] = field(default_factory=dict)
    ring: deque[str] = field(default_factory=deque)
    deficits: dict[str, int] = field(default_factory=dict)
    queues: dict[str, deque[Job]] = field(default_factory=dict)

    def push(self, sub: str, jobs: Iterable[Job]) -> None:
        """Submit: append to the sub-queue; a sub-queue that was empty joins the back of the ring."""
        queue = self.queues.setdefault(sub, deque())
        was_empty = not queue
        queue.extend(jobs)
        if queue and was_empty and sub not in self.ring:
            self.ring.append(sub)

    def quantum_of(self, sub: str) -> int:
        return self.quantum * self.weights.get(tenant_of(sub), 1)

    def claim(self, cap: int) -> list[tuple[str, Job]]:
        """Take up to `cap` jobs, in the order claim.lua takes them; returns (sub-queue, job) pairs."""
        out: list[tuple[str, Job]] = []
        visits = 0
        while len(out) < cap and self.ring and visits < MAX_VISITS:
            visits += 1
            sub = self.ring[0]
            alone = len(self.ring) == 1  # owes nothing, is owed nothing: no deficit, up to `cap`
            quantum = self.quantum_of(sub)
            deficit = math.inf if alone else self.deficits.get(sub, quantum)
            queue = self.queues.get(sub) or deque()
            if deficit > 0:
                asked = min(cap - len(out), deficit)
                popped = [queue.popleft() for _ in range(int(min(asked, len(queue))))]
                taken = 0
                for job in popped:
                    if deficit <= 0:
                        break
                    out.append((sub, job))
                    deficit -= job.rows
                    taken += 1
                queue.extendleft(reversed(popped[taken:]))  # not taken: back at the head, in order
                if taken == len(popped) and not queue:  # emptied: leaves the ring
                    self._leave(sub)
                    continue
                if deficit > 0:  # cut short by `cap`: stays at the head
                    if not alone:
                        self.deficits[sub] = int(deficit)
                    continue
            self.ring.rotate(-1)  # the turn is over: to the back, with one more quantum
            self.deficits[sub] = int(deficit) + quantum
        return out

    def _leave(self, sub: str) -> None:
        """An emptied sub-queue leaves the ring and forgets its deficit; a ring left with one member (alone:
        it owes nothing) or none keeps no deficits at all."""
        while sub in self.ring:
            self.ring.remove(sub)
        if len(self.ring) <= 1:
            self.deficits.clear()
        else:
            self.deficits.pop(sub, None)
