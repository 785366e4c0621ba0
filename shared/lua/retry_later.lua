-- A chunk that failed on storage and has attempts left waits, then runs again: its lease ends (only if it
-- is still this worker's, the same fence as publish.lua), it spends one attempt, and it waits in RQ's
-- scheduled registry of its queue until `due`.
-- KEYS: [1] started registry, [2] scheduled registry, [3] the job hash. ARGV: [1] lease, [2] job id, [3] due (Unix).
-- Returns 1 if scheduled, 0 if the lease was no longer this worker's.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], JOB.STATUS, RQ_STATUS.SCHEDULED)
redis.call('HINCRBY', KEYS[3], JOB.RETRIES_LEFT, -1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
