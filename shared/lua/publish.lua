-- Publish the ended jobs of one micro-batch, each only if its lease is still this worker's: removing the
-- lease from the started registry is the fence (recovery removes it too before it requeues a job, and a
-- Lua call runs alone, so exactly one of them acts). Needs lib/webhook.lua, lib/batch.lua, lib/zadd.lua.
-- KEYS: [1] expiry index, [2] webhook deliveries set, then per queue in the worker's order: started registry,
--       finished registry, failed registry.
-- ARGV: [1] now (RQ time), [2] now (ISO), [3] now (Unix), [4] result expiry (Unix), [5] webhook TTL (s),
--       [6] results channel, [7] job key prefix, [8] data of an ended job (its input payload is dropped;
--       a chunk job's payload is a few numbers naming rows in storage, and is kept), then 11 values per job: id, lease, queue index (1-based), RQ status (finished|failed), result JSON,
--       callback URL or '', webhook member, webhook key, batch key or '', rows done, rows failed.
-- Returns one flag per job: 1 published, 0 skipped (its lease lapsed and recovery took it back).
local HEAD, PER, SLICE = 8, 11, 4000
local now, now_iso, now_ts, expires, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local prefix = ARGV[7]
local flags, lines, ended, expiring = {}, {}, {}, {}

-- The fence, two commands per started registry whatever the number of jobs (one for a single job): which
-- leases are still held (ZMSCORE), then remove those (ZREM). The script runs alone, so this is the same as
-- a ZREM per lease answering 1. Returns the set of leases held.
local function fence()
  local leases = {}  -- started registry → its leases in this call
  for i = HEAD + 1, #ARGV, PER do
    local registry = KEYS[3 + (tonumber(ARGV[i + 2]) - 1) * 3]
    leases[registry] = leases[registry] or {}
    table.insert(leases[registry], ARGV[i + 1])
  end
  local held = {}
  for registry, mine in pairs(leases) do
    if #mine == 1 then
      if redis.call('ZREM', registry, mine[1]) == 1 then held[mine[1]] = true end
    else
      for from = 1, #mine, SLICE do
        local slice = {unpack(mine, from, math.min(from + SLICE - 1, #mine))}
        local kept = {}
        for k, score in ipairs(redis.call('ZMSCORE', registry, unpack(slice))) do
          if score then
            held[slice[k]] = true
            kept[#kept + 1] = slice[k]
          end
        end
        if #kept > 0 then redis.call('ZREM', registry, unpack(kept)) end
      end
    end
  end
  return held
end

local held = fence()
for i = HEAD + 1, #ARGV, PER do
  local id, lease, q, status, doc = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local url, member, hook, batch = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local base = 3 + (q - 1) * 3
  if held[lease] then
    flags[#flags + 1] = 1
    if batch == '' then
      redis.call('HSET', prefix .. id, JOB.STATUS, status, JOB.ENDED_AT, now, JOB.RESULT, doc, JOB.DATA, ARGV[8])
    else
      redis.call('HSET', prefix .. id, JOB.STATUS, status, JOB.ENDED_AT, now, JOB.RESULT, doc)
    end
    local registry = status == RQ_STATUS.FINISHED and KEYS[base + 1] or KEYS[base + 2]
    ended[registry] = ended[registry] or {}
    table.insert(ended[registry], expires)
    table.insert(ended[registry], id)
    expiring[#expiring + 1] = expires
    expiring[#expiring + 1] = id
    if batch ~= '' then
      chunk_done(batch, tonumber(ARGV[i + 9]), tonumber(ARGV[i + 10]), now_iso, now_ts, KEYS[2], member, hook, ttl)
    else
      lines[#lines + 1] = id .. ' ' .. doc
      if url ~= '' then enqueue_delivery(hook, KEYS[2], member, url, ttl, now_ts) end
    end
  else
    flags[#flags + 1] = 0
  end
end
for registry, pairs in pairs(ended) do zadd_all(registry, pairs) end
if #expiring > 0 then zadd_all(KEYS[1], expiring) end
if #lines > 0 then redis.call('PUBLISH', ARGV[6], table.concat(lines, '\n')) end
return flags
