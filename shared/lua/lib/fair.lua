-- Deficit round robin over one lane's sub-queues (one per API key), in rows: shared/fair.py's
-- DeficitRoundRobin.claim, step for step (its docstring explains the rules).
-- `lane`: {ring = key, deficits = key, queue_prefix = RQ's queue key prefix, quantum = rows, weights = {name = w}}.
-- `serve(queue_key, ids, limit, deficit)` takes up to `limit` jobs of `ids` (popped from the head of
-- `queue_key`) while `deficit` stays > 0, dropping the ids of jobs no longer queued (cancelled chunks, say),
-- and returns: jobs taken, rows taken, the index of the first id it did not use (nil: all used), and true if
-- the claim must stop here. Ids not used go back to the head of the sub-queue, in order. Returns the number
-- of jobs taken, and true if `serve` stopped the claim.
--
-- What it costs (commands): the claim takes the ring's head out in one LPOP (all of it unless it is longer than
-- a claim's visits), turns it in Lua (Lua runs alone: nobody sees the ring meanwhile), and puts back what is
-- left in one push; a ring emptied by the claim is not written again. A sub-queue alone in its ring keeps no
-- deficit (it owes nothing and is owed nothing), so a lone key costs no deficit read or write: a lone key's
-- claim that empties its sub-queue costs one command for the ring.
local FAIR_MAX_VISITS = 64

local function fair_quantum(lane, sub)
  local tenant = string.match(sub, '~(.*)$')
  return lane.quantum * (tenant and lane.weights[tenant] or 1)
end

local function fair_without(list, sub)
  local kept = {}
  for _, s in ipairs(list) do
    if s ~= sub then kept[#kept + 1] = s end
  end
  return kept
end

-- The ring's head, taken out of Redis by `fair_ring_take` and put back by `fair_ring_put`: `head` (in order),
-- then in Redis whatever the claim did not take (`rest`: only if the ring is longer than 65), then `turned`
-- (the sub-queues whose turn ended, in order). With no `rest`, turned ones simply go to the end of `head`.
-- A copy of a member in the head is dropped here (the recovery sweep's join can race the API's, which pushes
-- without looking), so a key never gets two turns a round for long.
local function fair_ring_take(lane)
  local popped = redis.call('LPOP', lane.ring, FAIR_MAX_VISITS + 1) or {}
  local head, seen = {}, {}
  for _, sub in ipairs(popped) do
    if not seen[sub] then
      seen[sub] = true
      head[#head + 1] = sub
    end
  end
  return {head = head, rest = #popped > FAIR_MAX_VISITS, turned = {}}
end

local function fair_ring_put(lane, ring)
  if ring.rest and #ring.head + #ring.turned + redis.call('LLEN', lane.ring) <= 1 then
    -- a long ring that this claim left with one member or none: its deficits go, as `fair_leave`'s do for a
    -- short one (a member alone is not even read, so a deficit left behind would outlive its sub-queue)
    redis.call('DEL', lane.deficits)
  end
  if #ring.head > 0 then
    local reversed = {}
    for i = #ring.head, 1, -1 do reversed[#reversed + 1] = ring.head[i] end
    redis.call('LPUSH', lane.ring, unpack(reversed))
  end
  if #ring.turned > 0 then redis.call('RPUSH', lane.ring, unpack(ring.turned)) end
end

-- `sub` (emptied) leaves the ring, every copy of it (a copy made outside our scripts heals here), and its
-- deficit goes; a ring left with one member (alone: owes nothing) or none keeps no deficits at all.
local function fair_leave(lane, ring, sub, stored)
  ring.head, ring.turned = fair_without(ring.head, sub), fair_without(ring.turned, sub)
  if ring.rest then
    redis.call('LREM', lane.ring, 0, sub)
    if stored then redis.call('HDEL', lane.deficits, sub) end
  elseif #ring.head + #ring.turned <= 1 then
    if stored or #ring.head + #ring.turned == 1 then redis.call('DEL', lane.deficits) end
  elseif stored then
    redis.call('HDEL', lane.deficits, sub)
  end
end

-- One visit to sub-queue `queue`: pops ids and serves them until `asked` jobs are taken, `deficit` is spent,
-- the sub-queue is empty or `serve` stops the claim. A pop asks for one id more than it may take: fewer back
-- means the sub-queue is empty now (no LLEN); ids not used go back to its head. Dropped ids do not count
-- against `asked` (a turn spent on a cancelled batch's chunks would serve nobody): after a pop whose ids were
-- all used it pops again, asking for twice as many spare ids each time; claim.lua's MAX_DROPPED bounds the
-- drops of one claim. Returns jobs taken, rows taken, true if the sub-queue is empty now, and true if `serve`
-- stopped the claim.
local function fair_visit(queue, asked, deficit, serve)
  local got, rows, spare = 0, 0, 1
  while true do
    local want = asked - got
    local ids = redis.call('LPOP', queue, want + spare) or {}
    if #ids == 0 then return got, rows, true, false end
    local g, r, back, halt = serve(queue, ids, want, deficit - rows)
    got, rows = got + g, rows + r
    if back and back <= #ids then
      local rest = {}
      for i = #ids, back, -1 do rest[#rest + 1] = ids[i] end
      redis.call('LPUSH', queue, unpack(rest))
      return got, rows, false, halt
    end
    if #ids < want + spare then return got, rows, true, halt end  -- fewer than asked for: empty now
    if halt then return got, rows, false, halt end
    spare = math.min(spare * 2, 1024)  -- every id used, so some were dropped: it may hold more
  end
end

-- Takes up to `cap` jobs and about `room` rows (the last job taken may pass it) from the lane; returns the
-- jobs and rows taken, and true if `serve` stopped the claim. A key cut short by `cap` or `room` keeps its
-- place at the head and what is left of its deficit; a key alone keeps none, and takes up to `room`.
local function fair_claim(lane, cap, room, serve)
  local ring = fair_ring_take(lane)
  local known = {}  -- deficits this claim read or wrote: {value} (value false: none stored)
  local taken, used, visits, halted = 0, 0, 0, false
  while taken < cap and used < room and visits < FAIR_MAX_VISITS and #ring.head > 0 do
    visits = visits + 1
    local sub = ring.head[1]
    local alone = not ring.rest and #ring.head + #ring.turned == 1
    local quantum = fair_quantum(lane, sub)
    local deficit, stored = math.huge, false
    if not alone then
      if known[sub] == nil then known[sub] = {redis.call('HGET', lane.deficits, sub)} end
      stored = known[sub][1]
      deficit = tonumber(stored or quantum)
    end
    local turn_over = true
    if deficit > 0 then
      local queue = lane.queue_prefix .. sub
      local budget = math.min(deficit, room - used)
      local got, rows, emptied, halt = fair_visit(queue, math.min(cap - taken, budget), budget, serve)
      taken, used, deficit, halted = taken + got, used + rows, deficit - rows, halt
      if emptied then  -- leaves the ring now (an idle worker waits on it)
        fair_leave(lane, ring, sub, stored)
        known[sub], turn_over = nil, false
      elseif halt or deficit > 0 then  -- stopped, or cut short by `cap` or `room`: stays at the head
        if not alone then
          redis.call('HSET', lane.deficits, sub, deficit)
          known[sub] = {deficit}
        end
        turn_over = false
      end
      if halted then break end
    end
    if turn_over then  -- the turn is over (never for a sub-queue alone): to the back, with one more quantum
      redis.call('HSET', lane.deficits, sub, deficit + quantum)
      known[sub] = {deficit + quantum}
      table.remove(ring.head, 1)
      if ring.rest then ring.turned[#ring.turned + 1] = sub else ring.head[#ring.head + 1] = sub end
    end
  end
  fair_ring_put(lane, ring)
  return taken, used, halted
end
