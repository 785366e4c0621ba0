-- Put the chunks whose wait (retry_later.lua) is over back at the head of their queue (RQ's `origin`: their
-- key's sub-queue, which rejoins the lane's ring if it had left it; needs lib/ring.lua); a chunk whose batch
-- ended meanwhile (cancelled, expired) is marked canceled instead, as the batch's end marks its queued chunks.
-- KEYS: [1] scheduled registry, [2] the lane's ring.
-- ARGV: [1] now (Unix), [2] job key prefix, [3] batch key prefix, [4] TTL of a cancelled chunk job (s),
--       [5] the lane (the queue of a job with no origin), [6] RQ's queue key prefix, [7] extra-rows key prefix.
-- Returns how many went back to the queue.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local released = 0
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  local f = redis.call('HMGET', key, JOB.STATUS, JOB.BATCH, JOB.ROWS, JOB.ORIGIN)
  if f[1] == RQ_STATUS.SCHEDULED then
    local batch = redis.call('HGET', ARGV[3] .. (f[2] or ''), BATCH.STATUS)
    if batch == BATCH_STATUS.QUEUED or batch == BATCH_STATUS.IN_PROGRESS then
      redis.call('HSET', key, JOB.STATUS, RQ_STATUS.QUEUED)
      local origin = f[4] or ARGV[5]
      if redis.call('LPUSH', ARGV[6] .. origin, id) == 1 then ring_join(KEYS[2], origin) end
      local rows = tonumber(f[3] or '1') or 1
      if rows > 1 then redis.call('INCRBY', ARGV[7] .. origin, rows - 1) end
      released = released + 1
    else
      redis.call('HSET', key, JOB.STATUS, RQ_STATUS.CANCELED)
      redis.call('EXPIRE', key, tonumber(ARGV[4]))
    end
  end
end
return released
