-- Claim up to N queued jobs and mark them started, in one call: the worker's claim of a micro-batch.
-- Needs lib/zadd.lua, lib/fair.lua (which sub-queue of a lane goes next: deficit round robin between keys).
-- KEYS: per lane (a model's interactive or bulk queue), in priority order: its ring, its deficits hash, its
--       started registry.
-- ARGV: [1] most jobs to take in all, [2] job key prefix, [3] lease suffix (":" .. claim token),
--       [4] lease expiry (Unix), [5] now (RQ time), [6] worker name, [7] '1' if the worker holds unfinished
--       work, [8] now (ISO, for batch records), [9] batch key prefix, [10] RQ's queue key prefix,
--       [11] extra-rows key prefix, [12] weights of the keys that weigh more than 1 (JSON: {name: weight}),
--       [13] most rows to take in all (the worker's room; the last job taken may pass it: a job runs whole),
--       then per lane: the most jobs to take from it, its quantum (rows per turn at weight 1).
-- Returns 11 values per claimed job: id, started_at before this claim ('' unless a rerun), rows, data,
--   deadline, meta, enqueued_at, batch id ('' unless a chunk job), attempts left after this one, its queue
--   (RQ's origin: its key's sub-queue), and the number of its lane (1 for the first lane in KEYS).
--
-- A job with a `started_at` was started before and is queued again because its worker died: it may be what
-- killed it. It is claimed only alone, by a worker holding nothing, so that if it kills this worker too it
-- takes no batch-mates down with it (they would each be charged an attempt). A job that is no longer
-- queued (cancelled, ended, a duplicate id) is dropped from the queue and not returned.
local HEAD, MAX_DROPPED = 13, 10000
local want, room = tonumber(ARGV[1]), tonumber(ARGV[13])
local prefix, suffix, lapse, now, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local busy = ARGV[7] == '1'
local out, alone, dropped = {}, false, 0
local weights = cjson.decode(ARGV[12])

-- Take one queued job: mark it started and add its values to `out`; returns its extra rows.
local function take(id, f, lane)
  redis.call('HSET', prefix .. id, JOB.STATUS, RQ_STATUS.STARTED, JOB.STARTED_AT, now, JOB.WORKER_NAME, worker)
  local rows = tonumber(f[3] or '1') or 1
  local batch = f[8] or ''
  if batch ~= '' then
    local record = ARGV[9] .. batch
    if redis.call('HGET', record, BATCH.STATUS) == BATCH_STATUS.QUEUED then
      redis.call('HSET', record, BATCH.STATUS, BATCH_STATUS.IN_PROGRESS, BATCH.STARTED_AT, ARGV[8])
    end
  end
  for _, v in ipairs({id, f[2] or '', rows, f[4] or '', f[5] or '', f[6] or '', f[7] or '', batch, f[9] or '0',
                      f[10] or '', lane}) do
    out[#out + 1] = v
  end
  return math.max(rows - 1, 0)
end

for k = 1, #KEYS, 3 do
  if want <= 0 or room <= 0 or alone then break end
  local n = (k - 1) / 3
  local cap = math.min(want, tonumber(ARGV[HEAD + 1 + 2 * n]))
  local lane = {ring = KEYS[k], deficits = KEYS[k + 1], queue_prefix = ARGV[10],
                quantum = tonumber(ARGV[HEAD + 2 + 2 * n]), weights = weights}
  local leases = {}
  -- Takes up to `limit` jobs of `ids` (popped from `queue`) while `deficit` > 0: see lib/fair.lua.
  local function serve(queue, ids, limit, deficit)
    local got, rows, extra, back, halt = 0, 0, 0, nil, false
    for i, id in ipairs(ids) do
      if got >= limit or deficit - rows <= 0 then back = i break end
      local f = redis.call('HMGET', prefix .. id, JOB.STATUS, JOB.STARTED_AT, JOB.ROWS, JOB.DATA, JOB.DEADLINE,
                           JOB.META, JOB.ENQUEUED_AT, JOB.BATCH, JOB.RETRIES_LEFT, JOB.ORIGIN)
      if f[1] == RQ_STATUS.QUEUED then
        local rerun = f[2] and f[2] ~= ''
        if rerun and (busy or #out > 0) then back, halt = i, true break end
        local more = take(id, f, n + 1)
        extra, rows, got = extra + more, rows + more + 1, got + 1
        leases[#leases + 1] = lapse
        leases[#leases + 1] = id .. suffix
        if rerun then alone, back, halt = true, i + 1, true break end
      else
        dropped = dropped + 1  -- cancelled, ended, or a duplicate id: nothing to run
        if dropped >= MAX_DROPPED then back, halt = i + 1, true break end
      end
    end
    if extra > 0 then redis.call('DECRBY', ARGV[11] .. string.sub(queue, #ARGV[10] + 1), extra) end
    return got, rows, back, halt
  end
  if cap > 0 then  -- a lane this claim may take nothing from costs nothing: its ring is not even read
    local taken, rows, halted = fair_claim(lane, cap, room, serve)
    want, room = halted and 0 or want - taken, room - rows
    if #leases > 0 then zadd_all(KEYS[k + 2], leases) end
  end
end
return out
