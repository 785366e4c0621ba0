-- Claim up to N queued jobs and mark them started, in one call: the worker's claim of a micro-batch.
-- Needs lib/zadd.lua.
-- KEYS: per queue, in priority order: the queue, its started registry, its extra-rows counter.
-- ARGV: [1] most jobs to take in all, [2] job key prefix, [3] lease suffix (":" .. claim token),
--       [4] lease expiry (Unix), [5] now (RQ time), [6] worker name, [7] '1' if the worker holds unfinished
--       work, [8] now (ISO, for batch records), [9] batch key prefix, then the most jobs to take from each queue.
-- Returns 10 values per claimed job: id, started_at before this claim ('' unless a rerun), rows, data,
--   deadline, meta, enqueued_at, batch id ('' unless a chunk job), attempts left after this one, and the
--   number of the queue it came from (1 for the first queue in KEYS).
--
-- A job with a `started_at` was started before and is queued again because its worker died: it may be what
-- killed it. It is claimed only alone, by a worker holding nothing, so that if it kills this worker too it
-- takes no batch-mates down with it (they would each be charged an attempt). A job that is no longer
-- queued (cancelled, ended, a duplicate id) is dropped from the queue and not returned.
local HEAD, MAX_DROPPED = 9, 10000
local want = tonumber(ARGV[1])
local prefix, suffix, lapse, now, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local busy = ARGV[7] == '1'
local out, alone, dropped = {}, false, 0

-- Take one queued job: mark it started and add its values to `out`; returns its extra rows.
local function take(id, f, queue)
  redis.call('HSET', prefix .. id, JOB.STATUS, RQ_STATUS.STARTED, JOB.STARTED_AT, now, JOB.WORKER_NAME, worker)
  local rows = tonumber(f[3] or '1') or 1
  local batch = f[8] or ''
  if batch ~= '' then
    local record = ARGV[9] .. batch
    if redis.call('HGET', record, BATCH.STATUS) == BATCH_STATUS.QUEUED then
      redis.call('HSET', record, BATCH.STATUS, BATCH_STATUS.IN_PROGRESS, BATCH.STARTED_AT, ARGV[8])
    end
  end
  for _, v in ipairs({id, f[2] or '', rows, f[4] or '', f[5] or '', f[6] or '', f[7] or '', batch, f[9] or '0', queue}) do
    out[#out + 1] = v
  end
  return math.max(rows - 1, 0)
end

for k = 1, #KEYS, 3 do
  if want <= 0 or alone then break end
  local cap = math.min(want, tonumber(ARGV[HEAD + 1 + (k - 1) / 3]))
  local leases, extra, taken = {}, 0, 0
  local more = true
  while more and taken < cap and not alone do
    local asked = cap - taken
    local ids = redis.call('LPOP', KEYS[k], asked)
    if not ids then break end
    more = #ids == asked  -- fewer than asked: the queue is empty now, no need to ask again
    local back = nil
    for i, id in ipairs(ids) do
      local f = redis.call('HMGET', prefix .. id, JOB.STATUS, JOB.STARTED_AT, JOB.ROWS, JOB.DATA, JOB.DEADLINE,
                           JOB.META, JOB.ENQUEUED_AT, JOB.BATCH, JOB.RETRIES_LEFT)
      if f[1] == RQ_STATUS.QUEUED then
        local rerun = f[2] and f[2] ~= ''
        if rerun and (busy or #out > 0) then back = i break end
        extra = extra + take(id, f, (k + 2) / 3)
        leases[#leases + 1] = lapse
        leases[#leases + 1] = id .. suffix
        taken = taken + 1
        if rerun then alone = true back = i + 1 break end
      else
        dropped = dropped + 1  -- cancelled, ended, or a duplicate id: nothing to run
      end
    end
    if back then
      if back <= #ids then  -- the rest goes back to the head of the queue, in its order
        local rest = {}
        for i = #ids, back, -1 do rest[#rest + 1] = ids[i] end
        redis.call('LPUSH', KEYS[k], unpack(rest))
      end
      want = 0
      break
    end
    if dropped >= MAX_DROPPED then break end
  end
  want = want - taken
  if #leases > 0 then zadd_all(KEYS[k + 1], leases) end
  if extra > 0 then redis.call('DECRBY', KEYS[k + 2], extra) end
end
return out
