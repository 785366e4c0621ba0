-- Enqueue one job on its key's sub-queue, in one call: the API's submit. Needs lib/ring.lua.
-- KEYS: [1] job hash, [2] sub-queue, [3] its extra-rows counter, [4] its lane's ring.
-- ARGV: [1] rows, [2] the sub-queue's name (its ring member), [3] job id, then the job hash's fields and values.
-- Returns the sub-queue's jobs and its extra-rows counter after the push.
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
local jobs = redis.call('RPUSH', KEYS[2], ARGV[3])
if jobs == 1 then ring_join(KEYS[4], ARGV[2]) end
local extra = 0
if tonumber(ARGV[1]) > 1 then extra = redis.call('INCRBY', KEYS[3], tonumber(ARGV[1]) - 1) end
return {jobs, extra}
