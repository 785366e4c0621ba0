-- End a batch early: cancelled by its owner, or expired. Needs lib/webhook.lua.
-- Chunk jobs still queued are marked canceled, so a worker drops them when it claims them.
-- KEYS: [1] batch record, [2] webhook deliveries set, [3] the batch's webhook record.
-- ARGV: [1] new status (cancelled|expired), [2] now (ISO), [3] now (Unix), [4] webhook member,
--       [5] webhook TTL (s), [6] key prefix of the batch's chunk jobs, [7] TTL of cancelled chunk jobs (s).
-- Returns the number of chunks stopped; -1: unknown batch; -2: the batch had already ended (an expiry still
-- marks it expired).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'validating' and status ~= 'queued' and status ~= 'in_progress' then
  if ARGV[1] == 'expired' then redis.call('HSET', KEYS[1], 'status', 'expired') end
  return -2
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2])
local stopped = 0
local chunks = tonumber(redis.call('HGET', KEYS[1], 'chunks_total') or '0')
for i = 0, chunks - 1 do
  local job = ARGV[6] .. i
  if redis.call('HGET', job, 'status') == 'queued' then
    redis.call('HSET', job, 'status', 'canceled')
    redis.call('EXPIRE', job, tonumber(ARGV[7]))
    stopped = stopped + 1
  end
end
local url = redis.call('HGET', KEYS[1], 'callback_url')
if url and url ~= '' then enqueue_delivery(KEYS[3], KEYS[2], ARGV[4], url, tonumber(ARGV[5]), ARGV[3]) end
return stopped
