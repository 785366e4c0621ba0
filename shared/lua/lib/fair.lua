-- Deficit round robin over one lane's sub-queues (one per API key), in rows: shared/fair.py's
-- DeficitRoundRobin.claim, step for step (its docstring explains the rules).
-- `lane`: {ring = key, deficits = key, queue_prefix = RQ's queue key prefix, quantum = rows, weights = {name = w}}.
-- `serve(queue_key, ids, limit, deficit)` takes jobs of the first `limit` of `ids` (popped from the head of
-- `queue_key`) while `deficit` stays > 0 and returns: jobs taken, rows taken, the index of the first id it did
-- not use (nil: all used), and true if the claim must stop here. Ids not used go back to the head of the
-- sub-queue, in order. Returns the number of jobs taken, and true if `serve` stopped the claim.
--
-- What it costs (commands): the ring is read once (LRANGE): Lua runs alone, so the script then knows the ring
-- from its own steps. A sub-queue alone in its ring keeps no deficit (it owes nothing and is owed nothing),
-- so a lone key costs no deficit read or write. A pop asks for one id more than the turn may take: fewer back
-- means the sub-queue is empty now (no LLEN); an id too many goes back with the unused ones.
local FAIR_MAX_VISITS = 64

local function fair_quantum(lane, sub)
  local tenant = string.match(sub, '~(.*)$')
  return lane.quantum * (tenant and lane.weights[tenant] or 1)
end

-- `sub` (emptied) leaves the ring, every copy of it (a copy made outside our scripts heals here), and its
-- deficit goes; a ring left with one member (alone: owes nothing) or none keeps no deficits at all.
-- `ring` is the script's view of the ring's head (all of it if `whole`); returns the view without `sub`.
local function fair_leave(lane, ring, whole, sub, stored)
  local kept = {}
  for _, s in ipairs(ring) do
    if s ~= sub then kept[#kept + 1] = s end
  end
  if whole and #kept == 0 then
    redis.call('DEL', lane.ring, lane.deficits)
    return kept
  end
  redis.call('LREM', lane.ring, 0, sub)
  if whole and #kept == 1 then
    redis.call('DEL', lane.deficits)
  elseif stored then
    redis.call('HDEL', lane.deficits, sub)
  end
  return kept
end

local function fair_claim(lane, cap, serve)
  local ring = redis.call('LRANGE', lane.ring, 0, FAIR_MAX_VISITS)
  local whole = #ring <= FAIR_MAX_VISITS  -- the view holds the whole ring (else its first 65: 64 visits at most)
  local known = {}  -- deficits this claim read or wrote: {value} (value false: none stored)
  local taken, visits = 0, 0
  while taken < cap and visits < FAIR_MAX_VISITS and #ring > 0 do
    visits = visits + 1
    local sub = ring[1]
    local alone = whole and #ring == 1
    local quantum = fair_quantum(lane, sub)
    local deficit, stored = math.huge, false
    if not alone then
      if known[sub] == nil then known[sub] = {redis.call('HGET', lane.deficits, sub)} end
      stored = known[sub][1]
      deficit = tonumber(stored or quantum)
    end
    local rotate = true
    if deficit > 0 then
      local asked = math.min(cap - taken, deficit)
      local queue = lane.queue_prefix .. sub
      local ids = redis.call('LPOP', queue, asked + 1) or {}
      local got, rows, back, halt = 0, 0, nil, false
      if #ids > 0 then got, rows, back, halt = serve(queue, ids, asked, deficit) end
      local pushed = back and back <= #ids
      if pushed then
        local rest = {}
        for i = #ids, back, -1 do rest[#rest + 1] = ids[i] end
        redis.call('LPUSH', queue, unpack(rest))
      end
      taken, deficit = taken + got, deficit - rows
      if not pushed and #ids <= asked then  -- emptied: leaves the ring now (an idle worker waits on it)
        ring, rotate = fair_leave(lane, ring, whole, sub, stored), false
        known[sub] = nil
        if halt then return taken, true end
      else
        if halt then
          if not alone then redis.call('HSET', lane.deficits, sub, deficit) end
          return taken, true
        end
        if deficit > 0 then  -- cut short by `cap`, or by cancelled jobs dropped: stays at the head
          if not alone then
            redis.call('HSET', lane.deficits, sub, deficit)
            known[sub] = {deficit}
          end
          rotate = false
        end
      end
    end
    if rotate then  -- the turn is over (never for a sub-queue alone): to the back, with one more quantum
      redis.call('LMOVE', lane.ring, lane.ring, 'LEFT', 'RIGHT')
      redis.call('HSET', lane.deficits, sub, deficit + quantum)
      known[sub] = {deficit + quantum}
      table.remove(ring, 1)
      if whole then ring[#ring + 1] = sub end
    end
  end
  return taken, false
end
