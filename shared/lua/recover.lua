-- Take back the jobs of lapsed leases (their worker stopped renewing them: it died, or lost Redis for too
-- long). Needs lib/webhook.lua, lib/batch.lua, lib/ring.lua. Each lease is acted on only if it is still in the started
-- registry and lapsed (removing it is the fence shared with publish.lua and a heartbeat's renewal).
-- A job with attempts left (RQ's `retries_left`) goes back to the head of its queue (RQ's `origin`: its key's
-- sub-queue, which rejoins the lane's ring if it had left it) and keeps its
-- `started_at`, which marks it a rerun (claim.lua runs it alone); one without fails as `worker_lost`.
-- KEYS: [1] started registry, [2] the lane's ring, [3] failed registry, [4] purge index,
--       [5] webhook deliveries set.
-- ARGV: [1] now (Unix), [2] now (RQ time), [3] now (ISO), [4] result expiry (Unix), [5] webhook TTL (s),
--       [6] results channel, [7] job key prefix, [8] batch key prefix, [9] webhook key prefix,
--       [10] the failure message, [11] data of an ended job, [12] a job's webhook member without its id,
--       [13] a batch's webhook member without its id (shared/webhooks.py `delivery_id`), [14] the lane (the
--       queue of a job with no origin), [15] RQ's queue key prefix, [16] extra-rows key prefix, then the leases.
-- Returns {requeued, failed, ids of failed chunk jobs...}.
local now_ts, now, now_iso, expires, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local prefix, message = ARGV[7], ARGV[10]
local requeued, failed, chunks, lines = 0, 0, {}, {}
for i = 17, #ARGV do
  local lease = ARGV[i]
  local score = tonumber(redis.call('ZSCORE', KEYS[1], lease) or 'inf')
  if score <= now_ts and redis.call('ZREM', KEYS[1], lease) == 1 then
    local id = string.match(lease, '^([^:]+)')
    local key = prefix .. id
    local f = redis.call('HMGET', key, JOB.STATUS, JOB.RETRIES_LEFT, JOB.ROWS, JOB.META, JOB.BATCH, JOB.ORIGIN)
    if f[1] == RQ_STATUS.STARTED then
      local left = tonumber(f[2] or '0') or 0
      local rows = tonumber(f[3] or '1') or 1
      if left > 0 then
        redis.call('HSET', key, JOB.STATUS, RQ_STATUS.QUEUED, JOB.RETRIES_LEFT, left - 1)
        local origin = f[6] or ARGV[14]
        if redis.call('LPUSH', ARGV[15] .. origin, id) == 1 then ring_join(KEYS[2], origin) end
        if rows > 1 then redis.call('INCRBY', ARGV[16] .. origin, rows - 1) end
        requeued = requeued + 1
      else
        local doc = cjson.encode({id = id, status = JOB_STATUS.FAILED, error = {code = ERROR.WORKER_LOST, message = message}})
        redis.call('HSET', key, JOB.STATUS, RQ_STATUS.FAILED, JOB.ENDED_AT, now, JOB.RESULT, doc, JOB.DATA, ARGV[11])
        redis.call('ZADD', KEYS[3], expires, id)
        redis.call('ZADD', KEYS[4], expires, id)
        failed = failed + 1
        local batch = f[5] or ''
        if batch ~= '' then
          local member = ARGV[13] .. batch
          chunk_done(ARGV[8] .. batch, 0, rows, now_iso, now_ts, KEYS[5], member, ARGV[9] .. member, ttl)
          chunks[#chunks + 1] = id
        else
          lines[#lines + 1] = id .. ' ' .. doc
          local ok, meta = pcall(cjson.decode, f[4] or '')
          local url = ok and type(meta) == 'table' and meta.callback_url or nil
          if type(url) == 'string' and url ~= '' then
            enqueue_delivery(ARGV[9] .. ARGV[12] .. id, KEYS[5], ARGV[12] .. id, url, ttl, now_ts)
          end
        end
      end
    end
  end
end
if #lines > 0 then redis.call('PUBLISH', ARGV[6], table.concat(lines, '\n')) end
local out = {requeued, failed}
for _, id in ipairs(chunks) do out[#out + 1] = id end
return out
