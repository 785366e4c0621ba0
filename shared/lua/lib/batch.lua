-- Count one ended chunk of a batch (needs lib/webhook.lua). The last chunk ends the batch: `completed`, or
-- `failed` if no row got a result, and schedules the batch's webhook if it has a callback URL.
-- Returns 0 for an unknown batch, 1 for a counted chunk, 2 when this chunk ended the batch.
local function chunk_done(batch_key, done_rows, failed_rows, now_iso, now_ts, webhook_set, member, record_key, ttl)
  if redis.call('EXISTS', batch_key) == 0 then return 0 end
  redis.call('HINCRBY', batch_key, BATCH.DONE_ROWS, done_rows)
  redis.call('HINCRBY', batch_key, BATCH.FAILED_ROWS, failed_rows)
  local left = redis.call('HINCRBY', batch_key, BATCH.CHUNKS_LEFT, -1)
  local status = redis.call('HGET', batch_key, BATCH.STATUS)
  if left > 0 or (status ~= BATCH_STATUS.QUEUED and status ~= BATCH_STATUS.IN_PROGRESS) then return 1 end
  local final = BATCH_STATUS.COMPLETED
  if tonumber(redis.call('HGET', batch_key, BATCH.DONE_ROWS)) == 0 then final = BATCH_STATUS.FAILED end
  redis.call('HSETNX', batch_key, BATCH.STARTED_AT, now_iso)
  redis.call('HSET', batch_key, BATCH.STATUS, final, BATCH.FINISHED_AT, now_iso)
  local url = redis.call('HGET', batch_key, BATCH.CALLBACK_URL)
  if url and url ~= '' then enqueue_delivery(record_key, webhook_set, member, url, ttl, now_ts) end
  return 2
end
