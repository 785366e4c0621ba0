-- A job's submit (the API's hot path), in one call: write the job's hash (RQ's format), push its id onto its
-- key's sub-queue, and if that push made the sub-queue non-empty, put the sub-queue at the back of its lane's
-- ring (shared/fair.py). So the job can be claimed as soon as this returns, and the ring's invariant (a
-- sub-queue is in its ring, once, iff it has jobs waiting) holds at every instant, with no lookup.
-- KEYS: [1] the job's hash, [2] the sub-queue, [3] the lane's ring, [4] the sub-queue's extra-rows counter.
-- ARGV: [1] the job id, [2] the sub-queue's name (its ring member), [3] the job's rows beyond its first,
--       then the job hash's fields and values.
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if redis.call('RPUSH', KEYS[2], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[3], ARGV[2]) end
if ARGV[3] ~= '0' then redis.call('INCRBY', KEYS[4], ARGV[3]) end
return 1
