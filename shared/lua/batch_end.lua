-- End a batch early: cancelled by its owner, or expired. Needs lib/webhook.lua.
-- Chunk jobs still queued are marked canceled, so a worker drops them when it claims them; their rows leave
-- their sub-queue's extra-rows counter now (the claim that drops an id does not know its rows).
-- KEYS: [1] batch record, [2] webhook deliveries set, [3] the batch's webhook record.
-- ARGV: [1] new status (cancelled|expired), [2] now (ISO), [3] now (Unix), [4] webhook member,
--       [5] webhook TTL (s), [6] key prefix of the batch's chunk jobs, [7] TTL of cancelled chunk jobs (s),
--       [8] extra-rows key prefix.
-- Returns the number of chunks stopped; -1: unknown batch; -2: the batch had already ended (an expiry still
-- marks it expired).
local status = redis.call('HGET', KEYS[1], BATCH.STATUS)
if not status then return -1 end
if status ~= BATCH_STATUS.VALIDATING and status ~= BATCH_STATUS.QUEUED and status ~= BATCH_STATUS.IN_PROGRESS then
  if ARGV[1] == BATCH_STATUS.EXPIRED then redis.call('HSET', KEYS[1], BATCH.STATUS, BATCH_STATUS.EXPIRED) end
  return -2
end
redis.call('HSET', KEYS[1], BATCH.STATUS, ARGV[1], BATCH.FINISHED_AT, ARGV[2])
local stopped = 0
local chunks = tonumber(redis.call('HGET', KEYS[1], BATCH.CHUNKS_TOTAL) or '0')
for i = 0, chunks - 1 do
  local job = ARGV[6] .. i
  local f = redis.call('HMGET', job, JOB.STATUS, JOB.ROWS, JOB.ORIGIN)
  if f[1] == RQ_STATUS.QUEUED then
    local extra = (tonumber(f[2] or '1') or 1) - 1
    if extra > 0 and f[3] then redis.call('DECRBY', ARGV[8] .. f[3], extra) end
    redis.call('HSET', job, JOB.STATUS, RQ_STATUS.CANCELED)
    redis.call('EXPIRE', job, tonumber(ARGV[7]))
    stopped = stopped + 1
  end
end
local url = redis.call('HGET', KEYS[1], BATCH.CALLBACK_URL)
if url and url ~= '' then enqueue_delivery(KEYS[3], KEYS[2], ARGV[4], url, tonumber(ARGV[5]), ARGV[3]) end
return stopped
