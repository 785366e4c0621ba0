-- Cancel a job that no worker has claimed: it leaves the queue (its key's sub-queue, which leaves its lane's
-- ring if this emptied it) and ends `canceled`. Needs lib/webhook.lua, lib/ring.lua.
-- KEYS: [1] queue, [2] job hash, [3] RQ canceled registry, [4] extra-rows counter, [5] expiry index,
--       [6] webhook deliveries set, [7] the job's webhook record, [8] the lane's ring, [9] its deficits.
-- ARGV: [1] job id, [2] result JSON, [3] now (RQ time), [4] now (Unix), [5] result expiry (Unix),
--       [6] webhook TTL (s), [7] results channel, [8] webhook member, [9] data of an ended job,
--       [10] the queue's name (its ring member).
-- Returns 1 if cancelled, 0 if the job was no longer in the queue.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('LLEN', KEYS[1]) == 0 then ring_leave(KEYS[8], KEYS[9], ARGV[10]) end
local f = redis.call('HMGET', KEYS[2], JOB.ROWS, JOB.META)
local rows = tonumber(f[1] or '1') or 1
if rows > 1 then redis.call('DECRBY', KEYS[4], rows - 1) end
redis.call('HSET', KEYS[2], JOB.STATUS, RQ_STATUS.CANCELED, JOB.ENDED_AT, ARGV[3], JOB.RESULT, ARGV[2], JOB.DATA, ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
redis.call('PUBLISH', ARGV[7], ARGV[1] .. ' ' .. ARGV[2])
local ok, meta = pcall(cjson.decode, f[2] or '')
local url = ok and type(meta) == 'table' and meta.callback_url or nil
if type(url) == 'string' and url ~= '' then enqueue_delivery(KEYS[7], KEYS[6], ARGV[8], url, tonumber(ARGV[6]), ARGV[4]) end
return 1
