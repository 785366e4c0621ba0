-- Count one ended chunk of a batch (needs lib/webhook.lua). The last chunk ends the batch: `completed`, or
-- `failed` if no row got a result, and schedules the batch's webhook if it has a callback URL.
-- Returns 0 for an unknown batch, 1 for a counted chunk, 2 when this chunk ended the batch.
local function chunk_done(batch_key, done_rows, failed_rows, now_iso, now_ts, webhook_set, member, record_key, ttl)
  if redis.call('EXISTS', batch_key) == 0 then return 0 end
  redis.call('HINCRBY', batch_key, 'done_rows', done_rows)
  redis.call('HINCRBY', batch_key, 'failed_rows', failed_rows)
  local left = redis.call('HINCRBY', batch_key, 'chunks_left', -1)
  local status = redis.call('HGET', batch_key, 'status')
  if left > 0 or (status ~= 'queued' and status ~= 'in_progress') then return 1 end
  local final = 'completed'
  if tonumber(redis.call('HGET', batch_key, 'done_rows')) == 0 then final = 'failed' end
  redis.call('HSETNX', batch_key, 'started_at', now_iso)
  redis.call('HSET', batch_key, 'status', final, 'finished_at', now_iso)
  local url = redis.call('HGET', batch_key, 'callback_url')
  if url and url ~= '' then enqueue_delivery(record_key, webhook_set, member, url, ttl, now_ts) end
  return 2
end
